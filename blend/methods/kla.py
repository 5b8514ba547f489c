"""``kla`` — DB-KLA: ε = (1−λ) ε_pre + λ Σ_i w_i ε_i (KL scaling α → α/λ); + 1 UNet evaluation for the base when
λ ≠ 1. λ = 0 is the base model, 1 the blend; λ > KLA_WARN_ABOVE warns (weak KL, docs/method.md §2.4, Remark 2)."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

from blend.methods.registry import Method, PlanContext, fmt, register_method

if TYPE_CHECKING:
    from blend.spec import BlendSpec

KLA_WARN_ABOVE = 2.0


@register_method
class Kla(Method):
    name = "kla"
    display_name = "DB-KLA"
    style = ("#CC79A7", "X", "-.")
    takes_lam = True
    schedulable = True
    default_min_adapters, default_rank = 1, 6

    def check_lam(self, spec: BlendSpec) -> None:
        if not math.isfinite(spec.lam) or spec.lam < 0:
            raise ValueError(f"DB-KLA needs λ ≥ 0 (λ = 0 is the base model, 1 the fine-tuned one), got {spec.lam}")
        if spec.lam > KLA_WARN_ABOVE:
            warnings.warn(f"DB-KLA with λ = {spec.lam:g} > {KLA_WARN_ABOVE:g} extrapolates far beyond the "
                          "fine-tuned model (weak KL); expect reward hacking and a large Jensen gap "
                          "(docs/method.md §2.4, Remark 2)", stacklevel=4)  # BlendSpec.__init__, as before

    def scored_on_own_weights(self, spec: BlendSpec) -> bool:
        return len(spec.adapters) > 1  # one adapter: its weight 1 is no trade-off

    def label(self, spec: BlendSpec) -> str:
        return f"{self.name}_lam{fmt(spec.lam)}_" + "_".join(f"{a}{fmt(w)}" for a, w in zip(spec.adapters, spec.weights))

    def display(self, spec: BlendSpec) -> str:
        return f"{self.display_name} λ={fmt(spec.lam)} w=(" + ", ".join(fmt(w) for w in spec.weights) + ")"

    def build_specs(self, ctx: PlanContext) -> list[BlendSpec]:
        from blend.spec import BlendSpec

        m = len(ctx.adapters)
        vecs = [(1.0,)] if m == 1 else ctx.weights
        names = tuple(ctx.adapters) if m > 1 else (ctx.adapters[0],)
        if m > 1 and not vecs:
            raise ValueError(f"{self.name} with several adapters needs --weights")
        return [BlendSpec(self.name, names, w, lam=lam) for w in vecs for lam in ctx.lambdas]
