"""The method registry: every sampling method by name, what it takes, what it costs and how it samples.

A method is a :class:`Method` (one module per method, ``blend/methods/*.py``) registered under its name with
:func:`register_method`. :class:`blend.spec.BlendSpec` is plain data (method name, adapters, weights, λ, role,
rewards, options); everything that depends on the method — validation, the {model: coefficient} rule per step,
the label and display name, the cost, the figure style, which specs ``run_DB.py --methods NAME`` makes, and (for
chain-level methods such as the baselines) the sampling call — is asked of ``get_method(spec.method)``.

Importing this module loads no model and no torch (``run_DB.py --help`` lists the methods from it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    import torch

    from blend.spec import BlendSpec

WEIGHT_TOL = 1e-6


def fmt(x: float) -> str:
    return f"{x:g}"


def check_weight_vector(weights: Sequence[float], what: str, fix: str = "") -> None:
    """Raise ValueError unless every weight is finite and they sum to 1 within ``WEIGHT_TOL``: the one check of a
    weight vector, for the command line's ``--weights``/``--weights_end`` and for every method's spec. ``what`` names
    the vector in the message ("--weights 0.7,0.7", "DB-MPA weights [0.7, 0.7]"); ``fix`` prefixes the normalised
    vector offered as the fix ("--weights " on the command line)."""
    if not all(math.isfinite(w) for w in weights):
        raise ValueError(f"{what}: weights must be finite numbers")
    total = sum(weights)
    if abs(total - 1.0) > WEIGHT_TOL:
        normalised = f"; normalised: {fix}" + ",".join(fmt(w / total) for w in weights) if total > 0 else ""
        raise ValueError(f"{what} sums to {total:g}; a weight vector must sum to 1 (within {WEIGHT_TOL:g}){normalised}")


@dataclass
class PlanContext:
    """What ``run_DB.py`` knows when it turns one ``--methods`` entry into specs (``blend.run_plan.build_specs``).

    ``weights``: the --weights vectors (over the adapters, or over the rewards for reward-guided baselines);
    ``lambdas``: DB-KLA's λ values; ``oracle_specs``: the MORL oracles of ``--oracle``; ``baseline_args``: the
    baselines' flags (``blend.baselines.options``); ``guide_rewards`` / ``guide_scales``: what the baselines select
    or guide with."""

    adapters: list[str]
    weights: list[tuple[float, ...]]
    lambdas: list[float] = field(default_factory=list)
    oracle_specs: list = field(default_factory=list)
    reward_names: list[str] = field(default_factory=list)
    baseline_args: argparse.Namespace | None = None
    steps: int = 50
    scales: dict[str, float] | None = None
    guide_rewards: list[str] | None = None
    guide_scales: dict[str, float] | None = None


class Method:
    """One sampling method. Subclasses set the class attributes and override the hooks they change.

    The defaults describe a deterministic ε blend over adapters (DB-MPA-like): weights over the adapters that sum
    to 1, fixed {model: coefficient} at every step, one UNet evaluation per non-zero coefficient.
    """

    name: str = ""
    display_name: str = ""  # the paper's name, used in tables ("DB-MPA")
    legend: str | None = None  # a figure legend when it differs from display_name (e.g. plural)
    short_name: str | None = None  # the paper sweeps' table name when shorter than display_name ("RS (ΔW)")
    style: tuple[str, str, str] | None = None  # colour, marker, line style ("none": points only); None: from the name
    min_adapters: int = 1
    needs_weights: bool = True  # run_DB.py: needs --weights when it has several adapters
    allows_negative: bool = True  # weights may be < 0 (extrapolation)
    takes_lam: bool = False  # DB-KLA's λ
    schedulable: bool = False  # a per-step weight schedule w(t) (--weights_end) applies
    weighted_objective: bool = True  # its rows are scored on Σ_i w_i r_i of its own weights
    is_soup: bool = False  # samples one merged adapter (blend.soup)
    draws_per_step: bool = False  # draws one model per step and image (DB-MPA-LS)
    hybrid_other: bool = False  # usable off a hybrid's DB-MPA range (one UNet evaluation per step)
    is_reference: bool = False  # the method the tables compare every other one to (paired Δ)
    is_baseline: bool = False  # an inference-time baseline (blend.baselines): objective over ``rewards``
    reward_guided: bool = False  # a baseline that samples the base model; its weights are over ``rewards``
    gradient_guided: bool = False  # takes reward gradients (--guidance_surrogate applies)
    plan_only: bool = False  # a --methods entry that makes specs of another method (the MORL oracle)
    in_pipeline: bool | None = None  # DiffusionBlendPipeline(method=...); None: every plain weighted blend
    default_min_adapters: int | None = None  # in run_DB.py's default --methods when there are at least this many
    default_rank: float = 0.0  # order in the default --methods
    point_label: str | None = None  # Pareto plot: "name" (each point by its adapter) or "weights" (w=…), or None
    big_marker: bool = False  # Pareto plot: a single reference point

    # ------------------------------------------------------------------ derived flags

    @property
    def pipeline(self) -> bool:
        """Does ``DiffusionBlendPipeline`` take it as ``method=``?"""
        if self.in_pipeline is not None:
            return self.in_pipeline
        return self.needs_weights and not self.is_baseline and not self.plan_only

    @property
    def merges_weights(self) -> bool:
        """Does it need a merged (souped) adapter in the UNet (plain LoRAs only)?"""
        return self.is_soup or self.hybrid_parts is not None

    @property
    def hybrid_parts(self) -> tuple[float, float, str] | None:
        """(start, stop, other) of a hybrid: DB-MPA on [start, stop) of the trajectory, ``other`` elsewhere."""
        return None

    @property
    def line(self) -> bool:
        """Drawn as a sweep (points joined by a line) in figures."""
        return self.style is None or self.style[2] != "none"

    # ------------------------------------------------------------------ validation

    def validate(self, spec: BlendSpec) -> None:
        """Raise ValueError naming what is wrong with ``spec`` (called by ``BlendSpec.__post_init__``)."""
        from blend.eps import BASE

        m, n = self.name, len(spec.adapters)
        if spec.rewards or spec.options:
            raise ValueError(f"rewards and options apply to the baselines {baseline_names()} only, not {m!r}")
        if BASE in spec.adapters:
            raise ValueError(f"{BASE!r} is reserved for the pretrained model; rename the adapter")
        if n == 0:
            raise ValueError(f"method {m!r} needs at least one adapter (pass --lora NAME=PATH)")
        if len(spec.weights) != n:
            raise ValueError(f"{n} adapters {list(spec.adapters)} but {len(spec.weights)} weights {list(spec.weights)}")
        check_weight_vector(spec.weights, f"{self.display_name} weights {list(spec.weights)}")
        if not self.allows_negative and any(w < 0 for w in spec.weights):
            raise ValueError(self.negative_message(spec))
        self.check_lam(spec)

    def scored_on_own_weights(self, spec: BlendSpec) -> bool:
        """Are its rows scored on Σ_i w_i r_i with its own weights (when the rewards pair with the adapters)?"""
        return self.weighted_objective

    def negative_message(self, spec: BlendSpec) -> str:
        return f"{self.display_name} weights must be ≥ 0; got {list(spec.weights)}"

    def check_lam(self, spec: BlendSpec) -> None:
        if spec.lam != 1.0:
            raise ValueError(f"λ applies to method {lam_method()!r} only, not {self.name!r}")

    # ------------------------------------------------------------------ the rule per step

    def coefficients(self, spec: BlendSpec) -> dict[str, float]:
        """{model: coefficient} of the deterministic rule, zero terms dropped (``blend.eps.mixture_coefficients``)."""
        from blend.eps import mixture_coefficients

        return mixture_coefficients(dict(zip(spec.adapters, spec.weights)), spec.lam if self.takes_lam else 1.0)

    def coefficients_at(self, spec: BlendSpec, i: int, steps: int) -> dict[str, float]:
        """{model: coefficient} at step ``i`` of ``steps`` (0 = the noisiest); fixed unless ``varies_per_step``."""
        return self.coefficients(spec)

    varies_per_step: bool = False  # coefficients_at depends on the step (a hybrid)

    def blend(self, parts: Sequence[torch.Tensor], coeffs: Sequence[float]) -> torch.Tensor:
        """ε of one group of rows from the models' guided ε (in the order of the coefficients); the default is the
        linear Σ_j c_j ε_j that ``blend.sampler`` computes itself (``linear_blend``)."""
        from blend.eps import blend_eps

        return blend_eps(parts, coeffs)

    @property
    def linear_blend(self) -> bool:
        """True when ``blend`` is the linear Σ_j c_j ε_j (the sampler's own fast path)."""
        return type(self).blend is Method.blend

    def soup_spec(self, spec: BlendSpec) -> BlendSpec | None:
        """The soup whose merged adapter must be in the UNet before sampling, or None."""
        return None

    # ------------------------------------------------------------------ cost

    def unet_evals_per_step(self, spec: BlendSpec, steps: int | None = None) -> float:
        """UNet evaluations per step and image (CFG pair = 1)."""
        return 1 if self.draws_per_step else len(self.coefficients(spec))

    def cost(self, spec: BlendSpec, steps: int) -> float:
        """UNet forward-equivalents per image over ``steps`` steps (forwards + backwards for baselines)."""
        return self.unet_evals_per_step(spec, steps) * steps

    # ------------------------------------------------------------------ names

    def label(self, spec: BlendSpec) -> str:
        """The label's core (``BlendSpec.label`` appends a schedule's), e.g. ``mpa_t2i0.5_vila0.5``."""
        return self.name + "_" + "_".join(f"{a}{fmt(w)}" for a, w in zip(spec.adapters, spec.weights))

    def display(self, spec: BlendSpec) -> str:
        """The table name of ``spec``, e.g. ``DB-MPA w=(0.5, 0.5)``."""
        return self.display_name + " w=(" + ", ".join(fmt(w) for w in spec.weights) + ")"

    def to_dict(self, spec: BlendSpec) -> dict:
        """What ``BlendSpec.to_dict`` adds for this method."""
        return {}

    # ------------------------------------------------------------------ front doors

    def build_specs(self, ctx: PlanContext) -> list[BlendSpec]:
        """The specs ``run_DB.py --methods NAME`` makes: one per --weights vector (weight 1 with one adapter)."""
        from blend.spec import BlendSpec

        vecs = ctx.weights if len(ctx.adapters) > 1 else [(1.0,)]
        return [BlendSpec(self.name, tuple(ctx.adapters), w) for w in vecs]

    def sample(self, bundle, spec: BlendSpec, prompts: Sequence[str], seeds: Sequence[int], config,
               reward_fns=None, progress: bool = False):
        """Sample one image per (prompt, seed); plain methods run ``blend.sampler.sample`` (costs filled)."""
        from blend.baselines.costs import plain_costs
        from blend.sampler import sample

        result = sample(bundle, spec, prompts, seeds, config, progress=progress)
        if result.costs is None:
            result.costs = [plain_costs(e) for e in result.unet_evals]
        return result


REGISTRY: dict[str, Method] = {}


def register_method(method: Method | type[Method]) -> Any:
    """Register a method (an instance, or a class: it is instantiated; usable as a class decorator)."""
    inst = method() if isinstance(method, type) else method
    if not inst.name or not inst.display_name:
        raise ValueError(f"{type(inst).__name__}: a method needs a name and a display_name")
    if inst.name in REGISTRY:
        raise ValueError(f"method {inst.name!r} is registered twice")
    REGISTRY[inst.name] = inst
    return method


def unregister_method(name: str) -> None:
    REGISTRY.pop(name, None)


def get_method(name: str) -> Method:
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(method_names())}")
    return REGISTRY[name]


def list_methods(where: Callable[[Method], bool] | None = None) -> list[Method]:
    """Registered methods in registration order (the table order), optionally those for which ``where`` holds."""
    return [m for m in REGISTRY.values() if where is None or where(m)]


def method_names(where: Callable[[Method], bool] | None = None, plan: bool = False) -> tuple[str, ...]:
    """Names of the methods a BlendSpec takes (``plan=True``: and the --methods entries such as the oracle)."""
    return tuple(m.name for m in list_methods(where) if plan or not m.plan_only)


def baseline_names() -> tuple[str, ...]:
    return method_names(lambda m: m.is_baseline)


def reference_method() -> str:
    """The method every other one is compared to (paired Δ in the tables)."""
    return next(m.name for m in REGISTRY.values() if m.is_reference)


def lam_method() -> str:
    return next((m.name for m in REGISTRY.values() if m.takes_lam), "")


def default_methods(n_adapters: int, has_oracles: bool) -> list[str]:
    """run_DB.py's --methods when none is given, in table order."""
    picked = [m for m in REGISTRY.values() if m.default_min_adapters is not None
              and n_adapters >= m.default_min_adapters and (not m.plan_only or has_oracles)]
    return [m.name for m in sorted(picked, key=lambda m: m.default_rank)]
