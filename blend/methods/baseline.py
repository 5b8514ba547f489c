"""What the inference-time baselines (``blend.baselines``) share: an objective Σ_i w_i r_i over ``rewards``, options
(sizes and settings, sorted (key, value) pairs in the spec), their own sampling loops and per-image cost counters
(``blend.baselines.costs``)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from blend.methods.registry import Method, PlanContext, check_weight_vector, fmt, lam_method, method_names

if TYPE_CHECKING:
    from blend.spec import BlendSpec


def option_label(key: str, value: float | str) -> str:
    """One baseline option in a label: ``N20``, ``gamma0.024``, ``surrogate-toy_jpeg_z-toy_smoothness``."""
    if isinstance(value, str):
        return f"{key}-" + re.sub(r"[^A-Za-z0-9_.]+", "-", value)
    return f"{key}{fmt(value)}"


class Baseline(Method):
    is_baseline = True
    needs_ddim = True  # steps the DDIM chain itself (x̂0 from ε, the DDIM variance)

    def validate(self, spec: BlendSpec) -> None:
        m, k, name = self.name, len(spec.rewards), self.display_name
        if self.reward_guided and spec.adapters:
            raise ValueError(f"{name} samples the base model; it takes no adapters (got {list(spec.adapters)})")
        if not self.reward_guided and not spec.adapters:
            raise ValueError(f"{name} needs the adapters of its proposal (pass --lora NAME=PATH)")
        if not k:
            raise ValueError(f"{name} needs the rewards of its objective (one per weight)")
        n_w = k if self.reward_guided else len(spec.adapters)
        if len(spec.weights) != n_w or (not self.reward_guided and k != n_w):
            raise ValueError(f"{name}: {len(spec.weights)} weights {list(spec.weights)} for rewards "
                             f"{list(spec.rewards)} and adapters {list(spec.adapters)}; give one weight per reward "
                             f"(and, for {m}, one adapter per reward)")
        check_weight_vector(spec.weights, f"{name} weights {list(spec.weights)}")
        if not self.allows_negative and any(w < 0 for w in spec.weights):
            raise ValueError(f"{name} draws adapter i with probability w_i, so weights must be ≥ 0")
        if spec.lam != 1.0:
            raise ValueError(f"λ applies to method {lam_method()!r} only, not {m!r}")

    def coefficients(self, spec: BlendSpec) -> dict[str, float]:
        from blend.eps import BASE

        if self.reward_guided:
            return {BASE: 1.0}
        return super().coefficients(spec)

    def label(self, spec: BlendSpec) -> str:
        names = spec.rewards if self.reward_guided else spec.adapters
        core = "_".join([self.name, *(option_label(k, v) for k, v in spec.options)])
        return core + "_" + "_".join(f"{a}{fmt(w)}" for a, w in zip(names, spec.weights))

    def display(self, spec: BlendSpec) -> str:
        name = self.display_name
        if spec.options:
            name += " (" + ", ".join(f"{k}={v if isinstance(v, str) else fmt(v)}" for k, v in spec.options) + ")"
        return name + " w=(" + ", ".join(fmt(w) for w in spec.weights) + ")"

    def to_dict(self, spec: BlendSpec) -> dict:
        return {"rewards": list(spec.rewards), "options": dict(spec.options)}

    # ------------------------------------------------------------------ run_DB.py

    def options(self, args: argparse.Namespace, budget: float | None, steps: int,
                w: Sequence[float]) -> dict[str, float | str]:
        """The spec's options from the baseline flags (``blend.baselines.options``), sized to ``budget`` (fe per
        image); raises ``blend.baselines.costs.BudgetTooSmall`` when the smallest size costs more."""
        raise NotImplementedError

    def fit_budget(self, budget: float, steps: int, evals_per_step: int = 1, block: int = 5,
                   n_rewards: int = 1) -> int:
        """The largest size (N, G or K) that keeps the forward-equivalents per image at or under ``budget``."""
        raise ValueError(f"method {self.name!r} has no size to fit to a budget")

    def sized(self, budget: float, steps: int, evals_per_step: int = 1, block: int = 5, n_rewards: int = 1) -> int:
        """``fit_budget`` after ``blend.baselines.costs.size_for_budget``'s check of the budget."""
        from blend.baselines.costs import size_for_budget

        return size_for_budget(self.name, budget, steps, evals_per_step, block, n_rewards)

    def build_specs(self, ctx: PlanContext) -> list[BlendSpec]:
        from blend.baselines.options import baseline_specs

        return baseline_specs(self.name, ctx.adapters, list(ctx.guide_rewards or ctx.reward_names),
                              ctx.weights or [(1.0,)], ctx.baseline_args, ctx.steps,
                              ctx.guide_scales if ctx.guide_rewards else ctx.scales)

    def make_spec(self, adapters: Sequence[str], rewards: Sequence[str], w, opts: dict, extra: dict) -> BlendSpec:
        from blend.spec import BlendSpec

        return BlendSpec(self.name, () if self.reward_guided else tuple(adapters), w, rewards=tuple(rewards),
                         options=opts, extra=extra)

    # ------------------------------------------------------------------ sampling

    def sample(self, bundle, spec: BlendSpec, prompts: Sequence[str], seeds: Sequence[int], config,
               reward_fns=None, progress: bool = False):
        max_rows = int(spec.extra.get("max_rows", 64))  # rows per UNet batch (chains × candidates)
        if self.needs_ddim and (bundle.prediction == "flow" or type(bundle.scheduler).__name__ != "DDIMScheduler"):
            anywhere = ", ".join(method_names(lambda m: m.is_baseline and not getattr(m, "needs_ddim", True)))
            raise ValueError(f"{spec.display_name} steps the DDIM chain itself (x̂0 from ε, the DDIM variance), so it "
                             f"needs an ε-predicting model with its DDIM scheduler; this model is {bundle.family} with "
                             f"{type(bundle.scheduler).__name__}. Best-of-N ({anywhere}) works with any model.")
        return self.run(bundle, spec, prompts, seeds, config, reward_fns, max_rows, progress)

    def run(self, bundle, spec, prompts, seeds, config, reward_fns, max_rows: int, progress: bool):
        raise NotImplementedError
