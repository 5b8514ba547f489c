"""What to sample: one validated description per method, shared by the sampler, the runner and the tables.

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

import math
import re
import warnings
from dataclasses import dataclass, field

from blend.eps import BASE, mixture_coefficients

BASELINE_METHODS = ("bon", "bon_mpa", "bon_ls", "code", "rgg", "smc")
REWARD_GUIDED = ("bon", "code", "rgg", "smc")  # the base model steered by rewards: weights are over ``rewards``
# named hybrid schedules: method -> (start, stop, other); blend.hybrid.NAMED is built from this. On the toy
# (scripts/toy_hybrid.py) hybrid_late kept 1.03 ± 0.14 of DB-MPA's gain over the ΔW soup at 1.5× the base cost.
HYBRIDS = {"hybrid_late": (0.5, 1.0, "soup")}
HYBRID_OTHERS = ("soup", "soup_factors")  # what a hybrid run through blend.sampler may use off its DB-MPA range
METHODS = ("base", "single", "mpa", "kla", "mpa_ls", "soup", "soup_factors", *HYBRIDS, *BASELINE_METHODS)
WEIGHT_TOL = 1e-6
KLA_WARN_ABOVE = 2.0

PAPER_NAMES = {"base": "Base model", "single": "Single adapter", "mpa": "DB-MPA", "kla": "DB-KLA",
               "mpa_ls": "DB-MPA-LS", "soup": "Rewarded soup (ΔW)", "soup_factors": "Rewarded soup (factors)",
               "hybrid_late": "Hybrid (DB-MPA late half, ΔW soup early)",
               "bon": "Best-of-N", "bon_mpa": "Best-of-N over DB-MPA", "bon_ls": "Best-of-N over DB-MPA-LS",
               "code": "CoDe", "rgg": "RGG", "smc": "SMC (DAS)"}


def mpa_step_mask(start: float, stop: float, steps: int) -> list[bool]:
    """Per step index i ∈ [0, steps) (0 = the first, noisiest step): is it in the DB-MPA range [start, stop) of a
    hybrid (fractions of the trajectory, 0 ≤ start ≤ stop ≤ 1; the step bounds round half up)?"""
    lo, hi = math.floor(start * steps + 0.5), math.floor(stop * steps + 0.5)
    return [lo <= i < hi for i in range(steps)]


def _fmt(x: float) -> str:
    return f"{x:g}"


def _opt(key: str, value: float | str) -> str:
    """One baseline option in a label: ``N20``, ``gamma0.024``, ``surrogate-toy_jpeg_z-toy_smoothness``."""
    if isinstance(value, str):
        return f"{key}-" + re.sub(r"[^A-Za-z0-9_.]+", "-", value)
    return f"{key}{_fmt(value)}"


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
        m, n = self.method, len(self.adapters)
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
        if m in BASELINE_METHODS:
            self._check_baseline()
            return
        if self.rewards or self.options:
            raise ValueError(f"rewards and options apply to the baselines {BASELINE_METHODS} only, not {m!r}")
        if BASE in self.adapters:
            raise ValueError(f"{BASE!r} is reserved for the pretrained model; rename the adapter")
        if m == "base":
            if n:
                raise ValueError("method 'base' takes no adapters")
            return
        if m == "single":
            if n != 1:
                raise ValueError(f"method 'single' takes exactly one adapter, got {n}")
            object.__setattr__(self, "weights", (1.0,))
            return
        if n == 0:
            raise ValueError(f"method {m!r} needs at least one adapter (pass --lora NAME=PATH)")
        if len(self.weights) != n:
            raise ValueError(f"{n} adapters {list(self.adapters)} but {len(self.weights)} weights {list(self.weights)}")
        if not all(math.isfinite(w) for w in self.weights):
            raise ValueError(f"weights must be finite numbers, got {list(self.weights)}")
        total = sum(self.weights)
        if abs(total - 1.0) > WEIGHT_TOL:
            fixed = ", ".join(_fmt(w / total) for w in self.weights) if total > 0 else "…"
            raise ValueError(f"{PAPER_NAMES[m]} weights must sum to 1 (within {WEIGHT_TOL:g}); {list(self.weights)} "
                             f"sums to {total:g}. Normalised they would be ({fixed}).")
        if m == "mpa_ls" and any(w < 0 for w in self.weights):
            raise ValueError(f"DB-MPA-LS draws adapter i with probability w_i, so weights must be ≥ 0; got "
                             f"{list(self.weights)}. Use method 'mpa' to extrapolate with negative weights.")
        if m == "kla":
            if not math.isfinite(self.lam) or self.lam < 0:
                raise ValueError(f"DB-KLA needs λ ≥ 0 (λ = 0 is the base model, 1 the fine-tuned one), got {self.lam}")
            if self.lam > KLA_WARN_ABOVE:
                warnings.warn(f"DB-KLA with λ = {self.lam:g} > {KLA_WARN_ABOVE:g} extrapolates far beyond the "
                              "fine-tuned model (weak KL); expect reward hacking and a large Jensen gap "
                              "(docs/method.md §2.4, Remark 2)", stacklevel=2)
        elif self.lam != 1.0:
            raise ValueError(f"λ applies to method 'kla' only, not {m!r}")

    def _check_baseline(self) -> None:
        m, k = self.method, len(self.rewards)
        if m in REWARD_GUIDED and self.adapters:
            raise ValueError(f"{PAPER_NAMES[m]} samples the base model; it takes no adapters (got {list(self.adapters)})")
        if m not in REWARD_GUIDED and not self.adapters:
            raise ValueError(f"{PAPER_NAMES[m]} needs the adapters of its proposal (pass --lora NAME=PATH)")
        if not k:
            raise ValueError(f"{PAPER_NAMES[m]} needs the rewards of its objective (one per weight)")
        n_w = k if m in REWARD_GUIDED else len(self.adapters)
        if len(self.weights) != n_w or (m not in REWARD_GUIDED and k != n_w):
            raise ValueError(f"{PAPER_NAMES[m]}: {len(self.weights)} weights {list(self.weights)} for rewards "
                             f"{list(self.rewards)} and adapters {list(self.adapters)}; give one weight per reward "
                             f"(and, for {m}, one adapter per reward)")
        if not all(math.isfinite(w) for w in self.weights) or abs(sum(self.weights) - 1.0) > WEIGHT_TOL:
            raise ValueError(f"{PAPER_NAMES[m]} weights must be finite and sum to 1, got {list(self.weights)}")
        if m == "bon_ls" and any(w < 0 for w in self.weights):
            raise ValueError(f"{PAPER_NAMES[m]} draws adapter i with probability w_i, so weights must be ≥ 0")
        if self.lam != 1.0:
            raise ValueError(f"λ applies to method 'kla' only, not {m!r}")

    # ------------------------------------------------------------------ derived

    def option(self, key: str, default: float | None = None) -> float | None:
        return dict(self.options).get(key, default)

    @property
    def is_baseline(self) -> bool:
        return self.method in BASELINE_METHODS

    @property
    def is_stochastic_choice(self) -> bool:
        return self.method == "mpa_ls"

    @property
    def is_soup(self) -> bool:
        return self.method in ("soup", "soup_factors")

    @property
    def hybrid_parts(self) -> tuple[float, float, str] | None:
        """(start, stop, other) of a named hybrid (``HYBRIDS``), else None."""
        return HYBRIDS.get(self.method)

    def coefficients_at(self, i: int, steps: int) -> dict[str, float]:
        """{model: coefficient} at step ``i`` of ``steps`` of a soup hybrid: DB-MPA's on its range, else
        {merged soup adapter: 1} (as ``blend.hybrid.HybridSchedule.coefficients_at``); other methods: fixed."""
        if self.hybrid_parts is None:
            return self.coefficients()
        start, stop, other = self.hybrid_parts
        if other not in ("soup", "soup_factors"):
            raise ValueError(f"{self.method}: off its DB-MPA range it draws per step ({other}); use blend.hybrid")
        if mpa_step_mask(start, stop, steps)[i]:
            return mixture_coefficients(dict(zip(self.adapters, self.weights)))
        return {self.soup_spec.soup_adapter_name: 1.0}

    @property
    def soup_spec(self) -> BlendSpec | None:
        """The soup whose merged adapter must be in the UNet before sampling (``blend.soup.ensure_soup_adapter``):
        the spec itself for a soup, the off-range method of a soup hybrid; None when no merge is needed."""
        if self.is_soup:
            return self
        if self.hybrid_parts is not None and self.hybrid_parts[2] in ("soup", "soup_factors"):
            return BlendSpec(self.hybrid_parts[2], self.adapters, self.weights)
        return None

    @property
    def soup_adapter_name(self) -> str:
        if not self.is_soup:
            raise ValueError(f"{self.method!r} is not a soup; its merged adapter is soup_spec.soup_adapter_name")
        tag = "delta" if self.method == "soup" else "factors"
        return f"soup_{tag}_" + "_".join(f"{a}{_fmt(w)}".replace(".", "p").replace("-", "m")
                                         for a, w in zip(self.adapters, self.weights))

    def coefficients(self) -> dict[str, float]:
        """{model: coefficient} of the deterministic rule, zero terms dropped (not for ``mpa_ls``)."""
        if self.method == "base":
            return {BASE: 1.0}
        if self.method == "single":
            return {self.adapters[0]: 1.0}
        if self.is_soup:
            return {self.soup_adapter_name: 1.0}
        if self.method in REWARD_GUIDED:
            return {BASE: 1.0}
        if self.method in ("mpa_ls", "bon_ls"):
            raise ValueError("DB-MPA-LS draws one model per step; it has no fixed coefficients")
        if self.hybrid_parts is not None:
            raise ValueError(f"{PAPER_NAMES[self.method]} changes its coefficients per step; use "
                             "spec.hybrid.coefficients_at(i, steps)")
        lam = self.lam if self.method == "kla" else 1.0
        return mixture_coefficients(dict(zip(self.adapters, self.weights)), lam)

    def unet_evals_per_step(self, steps: int | None = None) -> float:
        """UNet evaluations per step and image (CFG pair = 1); a hybrid's average needs ``steps``."""
        if self.hybrid_parts is not None:
            if steps is None:
                raise ValueError(f"{PAPER_NAMES[self.method]}: evaluations per step depend on the number of steps")
            n_mpa = sum(mpa_step_mask(*self.hybrid_parts[:2], steps))
            m = len(mixture_coefficients(dict(zip(self.adapters, self.weights))))
            return (n_mpa * m + steps - n_mpa) / steps
        return 1 if self.method in ("mpa_ls", "bon_ls") else len(self.coefficients())

    @property
    def label(self) -> str:
        """A filesystem-safe, human-readable name, e.g. ``mpa_t2i0.5_vila0.5`` or ``kla_lam1.5_t2i1``."""
        if self.method == "base":
            core = "base"
        elif self.method == "single":
            core = f"{self.role or 'single'}_{self.adapters[0]}"
        elif self.is_baseline:
            names = self.rewards if self.method in REWARD_GUIDED else self.adapters
            core = "_".join([self.method, *(_opt(k, v) for k, v in self.options)])
            core += "_" + "_".join(f"{a}{_fmt(w)}" for a, w in zip(names, self.weights))
        else:
            core = self.method
            if self.method == "kla":
                core += f"_lam{_fmt(self.lam)}"
            core += "_" + "_".join(f"{a}{_fmt(w)}" for a, w in zip(self.adapters, self.weights))
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
        if self.method == "single":
            if self.role == "oracle":
                return f"MORL oracle {self.extra.get('target', self.adapters[0])}"
            return f"Single adapter {self.adapters[0]}"
        name = PAPER_NAMES[self.method]
        if self.is_baseline and self.options:
            name += " (" + ", ".join(f"{k}={v if isinstance(v, str) else _fmt(v)}" for k, v in self.options) + ")"
        if self.method == "kla":
            name += f" λ={_fmt(self.lam)}"
        if self.method not in ("base",):
            name += " w=(" + ", ".join(_fmt(w) for w in self.weights) + ")"
        return name

    def to_dict(self) -> dict:
        out = {"method": self.method, "adapters": list(self.adapters), "weights": list(self.weights),
               "lam": self.lam, "role": self.role, "label": self.label}
        if self.is_baseline:
            out.update(rewards=list(self.rewards), options=dict(self.options))
        if self.schedule is not None:
            out["schedule"] = self.schedule.to_dict()
        if self.hybrid_parts is not None:
            out["hybrid"] = dict(zip(("start", "stop", "other"), self.hybrid_parts))
        return out
