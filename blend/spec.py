"""What to sample: one validated description per method, shared by the sampler, the runner and the tables.

``BlendSpec`` is plain data; what depends on the method (validation, per-step rule, label, display name, cost,
figure style, run_DB.py specs, sampling) lives in its module of ``blend.methods`` (the registry, ``get_method``).
The built-in methods:

========  ==============================================  =====================================
method    noise prediction at every step                  UNet evaluations per step (CFG = 1)
========  ==============================================  =====================================
base      ε_pre (every adapter disabled)                  1
single    ε_a of one adapter (also the MORL oracle)       1
mpa       Σ_i w_i ε_i,  Σ w_i = 1            (DB-MPA)     number of non-zero w_i
kla       (1−λ) ε_pre + λ Σ_i w_i ε_i        (DB-KLA)     + 1 for the base when λ ≠ 1
mpa_ls    ε_i with i ~ w, drawn per step and image (LS)   1 (one routed UNet call per step)
soup      ε of one adapter with ΔW = Σ w_i ΔW_i (RS)       1
soup_factors  ε of one adapter with A = Σ w_i A_i, B = Σ w_i B_i (RS as the reference code)  1
hybrid_late   DB-MPA on the last half of the steps, the ΔW soup on the first  m on half, 1 on half
========  ==============================================  =====================================

Hybrids (``HYBRIDS``, ``blend.hybrid``) run DB-MPA on a range [start, stop) of the trajectory (fractions of
the steps, 0 = the noisiest) and a soup elsewhere: ``hybrid_late`` costs m·T/2 + T/2 UNet evaluations per
image over T steps (1.5·T for m = 2; odd T: DB-MPA on the last ⌊T/2⌋ steps, ``mpa_step_mask``).

Inference-time baselines (``blend.baselines``; their cost is counted per image, see ``blend.baselines.costs``):
``bon`` (best-of-N over base samples), ``bon_mpa`` / ``bon_ls`` (best-of-N with DB-MPA / DB-MPA-LS as the
proposal), ``code`` (CoDe, blockwise best-of-N), ``rgg`` (reward-gradient guidance) and ``smc`` (DAS-style SMC).
``bon``, ``code``, ``rgg`` and ``smc`` sample the base model and take their weights over ``rewards``;
``bon_mpa`` and ``bon_ls`` take them over the adapters and select with the same weights over ``rewards``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from blend.methods import REGISTRY, Method, baseline_names, get_method, method_names
from blend.methods.hybrid import HYBRIDS, mpa_step_mask
from blend.methods.kla import KLA_WARN_ABOVE
from blend.methods.registry import WEIGHT_TOL

# Views of the registry (blend.methods) for older callers; new code asks get_method(name).
BASELINE_METHODS = baseline_names()
REWARD_GUIDED = tuple(m for m in BASELINE_METHODS if REGISTRY[m].reward_guided)  # weights over ``rewards``
HYBRID_OTHERS = method_names(lambda m: m.is_soup)  # what a hybrid run through blend.sampler may use off its range
METHODS = method_names()


class _PaperNames(Mapping):
    """{method: display name} of every registered method, read from the registry at each lookup."""

    def __getitem__(self, key: str) -> str:
        if key not in REGISTRY:
            raise KeyError(key)
        return REGISTRY[key].display_name

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)


PAPER_NAMES = _PaperNames()
__all__ = ["BASELINE_METHODS", "HYBRIDS", "HYBRID_OTHERS", "KLA_WARN_ABOVE", "METHODS", "PAPER_NAMES", "REWARD_GUIDED",
           "WEIGHT_TOL", "BlendSpec", "mpa_step_mask"]


@dataclass(frozen=True)
class BlendSpec:
    """A validated sampling method.

    ``adapters`` names the adapters (in the UNet) the method uses and ``weights`` gives one weight per
    adapter. ``lam`` is DB-KLA's λ. ``role`` is a free label (e.g. ``"oracle"``) used in tables.
    Baselines only: ``rewards`` names the rewards of the selection/guidance objective Σ w_i r_i (one per
    weight) and ``options`` holds their sizes and settings as sorted (key, value) pairs (e.g. N, B, K).
    """

    method: str
    adapters: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    lam: float = 1.0
    role: str = ""
    rewards: tuple[str, ...] = ()
    options: tuple[tuple[str, float | str], ...] = ()
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapters", tuple(self.adapters))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        object.__setattr__(self, "rewards", tuple(self.rewards))
        object.__setattr__(self, "options", tuple(sorted((str(k), v) for k, v in dict(self.options).items())))
        if self.method not in REGISTRY or REGISTRY[self.method].plan_only:
            raise ValueError(f"unknown method {self.method!r}; choose from {', '.join(method_names())}")
        self.info.validate(self)

    # ------------------------------------------------------------------ derived

    def option(self, key: str, default: float | None = None) -> float | None:
        return dict(self.options).get(key, default)

    @property
    def info(self) -> Method:
        """The registered method (``blend.methods``): everything that depends on ``method``."""
        return get_method(self.method)

    @property
    def is_baseline(self) -> bool:
        return self.info.is_baseline

    @property
    def is_stochastic_choice(self) -> bool:
        return self.info.draws_per_step

    @property
    def is_soup(self) -> bool:
        return self.info.is_soup

    @property
    def hybrid_parts(self) -> tuple[float, float, str] | None:
        """(start, stop, other) of a named hybrid (``HYBRIDS``), else None."""
        return self.info.hybrid_parts

    def coefficients_at(self, i: int, steps: int) -> dict[str, float]:
        """{model: coefficient} at step ``i`` of ``steps`` (a hybrid's change per step; other methods: fixed)."""
        return self.info.coefficients_at(self, i, steps)

    @property
    def soup_spec(self) -> BlendSpec | None:
        """The soup whose merged adapter must be in the UNet before sampling (``blend.soup.ensure_soup_adapter``):
        the spec itself for a soup, the off-range method of a soup hybrid; None when no merge is needed."""
        return self.info.soup_spec(self)

    @property
    def soup_adapter_name(self) -> str:
        if not self.is_soup:
            raise ValueError(f"{self.method!r} is not a soup; its merged adapter is soup_spec.soup_adapter_name")
        return self.info.adapter_name(self)

    def coefficients(self) -> dict[str, float]:
        """{model: coefficient} of the deterministic rule, zero terms dropped (not for per-step draws)."""
        return self.info.coefficients(self)

    def unet_evals_per_step(self, steps: int | None = None) -> float:
        """UNet evaluations per step and image (CFG pair = 1); a hybrid's average needs ``steps``."""
        return self.info.unet_evals_per_step(self, steps)

    @property
    def label(self) -> str:
        """A filesystem-safe, human-readable name, e.g. ``mpa_t2i0.5_vila0.5`` or ``kla_lam1.5_t2i1``."""
        core = self.info.label(self)
        if self.schedule is not None:
            core += "_" + self.schedule.label
        return core

    @property
    def schedule(self):
        """A per-step weight schedule w(p) (``blend.schedule``) or None: ``weights`` is then w(0)."""
        return self.extra.get("schedule")

    def with_weights(self, weights) -> BlendSpec:
        """The same method with other weights (validated again); the schedule is not carried over."""
        extra = {k: v for k, v in self.extra.items() if k != "schedule"}
        return BlendSpec(self.method, self.adapters, tuple(weights), self.lam, self.role, rewards=self.rewards,
                         options=self.options, extra=extra)

    @property
    def display_name(self) -> str:
        return self.info.display(self)

    def to_dict(self) -> dict:
        out = {"method": self.method, "adapters": list(self.adapters), "weights": list(self.weights),
               "lam": self.lam, "role": self.role, "label": self.label}
        extra = self.info.to_dict(self)
        if self.is_baseline:
            out.update(extra)
        if self.schedule is not None:
            out["schedule"] = self.schedule.to_dict()
        if not self.is_baseline:
            out.update(extra)
        return out
