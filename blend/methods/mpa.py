"""``mpa`` — DB-MPA (Lemma 2): ε = Σ_i w_i ε_i with Σ w_i = 1; one UNet evaluation per non-zero w_i per step."""

from __future__ import annotations

from blend.methods.registry import Method, register_method


@register_method
class Mpa(Method):
    name = "mpa"
    display_name = "DB-MPA"
    style = ("#0072B2", "o", "-")
    schedulable = True
    is_reference = True
    default_min_adapters, default_rank = 2, 4
    point_label = "weights"
