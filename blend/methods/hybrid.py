"""Named hybrids: DB-MPA on a range [start, stop) of the trajectory (fractions of the steps, 0 = the noisiest), a
soup elsewhere (``blend.hybrid``). ``hybrid_late`` costs m·T/2 + T/2 UNet evaluations per image over T steps
(1.5·T for m = 2; odd T: DB-MPA on the last ⌊T/2⌋ steps, ``mpa_step_mask``). On the toy (scripts/toy_hybrid.py)
hybrid_late kept 1.03 ± 0.14 of DB-MPA's gain over the ΔW soup at 1.5× the base cost."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from blend.methods.registry import Method, get_method, register_method
from blend.methods.soup import Soup

if TYPE_CHECKING:
    from blend.spec import BlendSpec

# name -> (start, stop, other); blend.hybrid.NAMED is built from this (tests patch it)
HYBRIDS = {"hybrid_late": (0.5, 1.0, Soup.name)}


def mpa_step_mask(start: float, stop: float, steps: int) -> list[bool]:
    """Per step index i ∈ [0, steps) (0 = the first, noisiest step): is it in the DB-MPA range [start, stop) of a
    hybrid (fractions of the trajectory, 0 ≤ start ≤ stop ≤ 1; the step bounds round half up)?"""
    lo, hi = math.floor(start * steps + 0.5), math.floor(stop * steps + 0.5)
    return [lo <= i < hi for i in range(steps)]


class Hybrid(Method):
    varies_per_step = True

    @property
    def hybrid_parts(self) -> tuple[float, float, str]:
        return HYBRIDS[self.name]

    def coefficients(self, spec: BlendSpec) -> dict[str, float]:
        raise ValueError(f"{self.display_name} changes its coefficients per step; use "
                         "spec.hybrid.coefficients_at(i, steps)")

    def coefficients_at(self, spec: BlendSpec, i: int, steps: int) -> dict[str, float]:
        """DB-MPA's coefficients on its range, else {merged soup adapter: 1} (as ``HybridSchedule.coefficients_at``)."""
        from blend.eps import mixture_coefficients

        start, stop, other = self.hybrid_parts
        if not get_method(other).is_soup:
            raise ValueError(f"{self.name}: off its DB-MPA range it draws per step ({other}); use blend.hybrid")
        if mpa_step_mask(start, stop, steps)[i]:
            return mixture_coefficients(dict(zip(spec.adapters, spec.weights)))
        return {spec.soup_spec.soup_adapter_name: 1.0}

    def soup_spec(self, spec: BlendSpec) -> BlendSpec | None:
        from blend.spec import BlendSpec

        other = self.hybrid_parts[2]
        return BlendSpec(other, spec.adapters, spec.weights) if get_method(other).is_soup else None

    def unet_evals_per_step(self, spec: BlendSpec, steps: int | None = None) -> float:
        from blend.eps import mixture_coefficients

        if steps is None:
            raise ValueError(f"{self.display_name}: evaluations per step depend on the number of steps")
        n_mpa = sum(mpa_step_mask(*self.hybrid_parts[:2], steps))
        m = len(mixture_coefficients(dict(zip(spec.adapters, spec.weights))))
        return (n_mpa * m + steps - n_mpa) / steps

    def to_dict(self, spec: BlendSpec) -> dict:
        return {"hybrid": dict(zip(("start", "stop", "other"), self.hybrid_parts))}


@register_method
class HybridLate(Hybrid):
    name = "hybrid_late"
    display_name = "Hybrid (DB-MPA late half, ΔW soup early)"
    style = None  # figures: a colour chosen from the name
