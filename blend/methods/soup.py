"""The rewarded soups (RS): one adapter merged from the blend's adapters, 1 UNet evaluation per step.

``soup``: ΔW = Σ_i w_i ΔW_i (``blend.soup.merge_delta``); ``soup_factors``: A = Σ w_i A_i, B = Σ w_i B_i, as the
reference code (``blend.soup.average_factors``). The merged adapter is added to the UNet before sampling
(``blend.soup.ensure_soup_adapter``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blend.methods.registry import Method, fmt, register_method

if TYPE_CHECKING:
    from blend.spec import BlendSpec


class _Soup(Method):
    is_soup = True
    hybrid_other = True
    tag = ""

    def coefficients(self, spec: BlendSpec) -> dict[str, float]:
        return {self.adapter_name(spec): 1.0}

    def soup_spec(self, spec: BlendSpec) -> BlendSpec | None:
        return spec

    def adapter_name(self, spec: BlendSpec) -> str:
        """The merged adapter's name in the UNet, e.g. ``soup_delta_a0p7_b0p3``."""
        return f"soup_{self.tag}_" + "_".join(f"{a}{fmt(w)}".replace(".", "p").replace("-", "m")
                                              for a, w in zip(spec.adapters, spec.weights))

    def merge(self, parts, weights):
        raise NotImplementedError


@register_method
class Soup(_Soup):
    name = "soup"
    display_name = "Rewarded soup (ΔW)"
    short_name = "RS (ΔW)"
    style = ("#D55E00", "D", ":")
    tag = "delta"
    default_min_adapters, default_rank = 2, 2

    def merge(self, parts, weights):
        from blend.soup import merge_delta

        return merge_delta(parts, weights)


@register_method
class SoupFactors(_Soup):
    name = "soup_factors"
    display_name = "Rewarded soup (factors)"
    short_name = "RS (factors, as the paper)"
    style = ("#E69F00", "p", ":")
    tag = "factors"
    default_min_adapters, default_rank = 2, 3

    def merge(self, parts, weights):
        from blend.soup import average_factors

        return average_factors(parts, weights)
