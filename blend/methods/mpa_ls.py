"""``mpa_ls`` — DB-MPA-LS (Prop. 2): at every step one adapter i, drawn with probability w_i per step and image
(``blend.sampler.draw_adapter_choices``); one routed UNet evaluation per step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blend.methods.mpa import Mpa
from blend.methods.registry import Method, register_method

if TYPE_CHECKING:
    from blend.spec import BlendSpec


@register_method
class MpaLS(Method):
    name = "mpa_ls"
    display_name = "DB-MPA-LS"
    style = ("#56B4E9", "^", "--")
    allows_negative = False
    draws_per_step = True
    schedulable = True
    hybrid_other = True
    default_min_adapters, default_rank = 2, 5

    def negative_message(self, spec: BlendSpec) -> str:
        return (f"{self.display_name} draws adapter i with probability w_i, so weights must be ≥ 0; got "
                f"{list(spec.weights)}. Use method {Mpa.name!r} to extrapolate with negative weights.")

    def coefficients(self, spec: BlendSpec) -> dict[str, float]:
        raise ValueError(f"{self.display_name} draws one model per step; it has no fixed coefficients")
