"""``base``: the pretrained model, every adapter disabled (ε_pre; 1 UNet evaluation per step)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blend.methods.registry import Method, PlanContext, register_method

if TYPE_CHECKING:
    from blend.spec import BlendSpec


@register_method
class Base(Method):
    name = "base"
    display_name = "Base model"
    style = ("#000000", "*", "none")
    min_adapters = 0
    needs_weights = False
    weighted_objective = False
    default_min_adapters, default_rank = 0, 0
    big_marker = True

    def validate(self, spec: BlendSpec) -> None:
        from blend.eps import BASE

        if spec.rewards or spec.options:
            super().validate(spec)  # the shared message
        if BASE in spec.adapters:
            raise ValueError(f"{BASE!r} is reserved for the pretrained model; rename the adapter")
        if spec.adapters:
            raise ValueError(f"method {self.name!r} takes no adapters")

    def coefficients(self, spec: BlendSpec) -> dict[str, float]:
        from blend.eps import BASE

        return {BASE: 1.0}

    def label(self, spec: BlendSpec) -> str:
        return self.name

    def display(self, spec: BlendSpec) -> str:
        return self.display_name

    def build_specs(self, ctx: PlanContext) -> list[BlendSpec]:
        from blend.spec import BlendSpec

        return [BlendSpec(self.name)]
