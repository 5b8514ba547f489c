"""Pure noise-prediction algebra of Diffusion Blend (docs/method.md §2–§3).

All functions take and return tensors of one shape (B, C, H, W) and touch no model.

* classifier-free guidance, applied per model:  ε̂ = ε_u + g (ε_c − ε_u)
* DB-MPA (Lemma 2):                             ε = Σ_i w_i ε̂_i,          Σ_i w_i = 1
* DB-KLA (KL scaling α → α/λ):                  ε = (1−λ) ε̂_pre + λ ε̂_ft
* combined:                                     ε = (1−λ) ε̂_pre + λ Σ_i w_i ε̂_i

Blending the ε's is the same as blending drifts, scores or DDIM means, because all models share
the x-term and the noise schedule and the coefficients sum to 1 (docs/method.md §2.9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from diffusion.guidance import BASE, classifier_free_guidance

__all__ = ["BASE", "blend_eps", "classifier_free_guidance", "combine", "kl_blend_eps", "mixture_coefficients"]


def blend_eps(eps: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Σ_i w_i ε_i with the weights used as given (no normalisation).

    Terms are added in order, starting from the first term itself (not from zero), so a weight
    vector (1, 0, …) returns ε_1 bit for bit.
    """
    if len(eps) != len(weights):
        raise ValueError(f"{len(eps)} noise predictions but {len(weights)} weights")
    if not eps:
        raise ValueError("blend_eps needs at least one noise prediction")
    out = weights[0] * eps[0]
    for w, e in zip(weights[1:], eps[1:]):
        out = out + w * e
    return out


def kl_blend_eps(eps_base: torch.Tensor, eps_finetuned: torch.Tensor, lam: float) -> torch.Tensor:
    """DB-KLA: (1−λ) ε_pre + λ ε_ft. λ = 0 is the pretrained model, λ = 1 the fine-tuned one, λ > 1 extrapolates."""
    return blend_eps([eps_base, eps_finetuned], [1.0 - lam, lam])


def mixture_coefficients(weights: Mapping[str, float], lam: float = 1.0) -> dict[str, float]:
    """Coefficients of the combined DB-KLA ∘ DB-MPA rule over named models.

    ``{BASE: 1−λ, a_i: λ·w_i}``; models whose coefficient is exactly zero are dropped, so they
    need not be evaluated (λ = 1 runs no base pass, a zero weight runs no adapter pass).
    """
    coeffs: dict[str, float] = {}
    if lam != 1.0:
        coeffs[BASE] = 1.0 - lam
    for name, w in weights.items():
        if name == BASE:
            raise ValueError(f"{BASE!r} is reserved for the pretrained model; rename the adapter")
        c = lam * w
        if c != 0.0:
            coeffs[name] = coeffs.get(name, 0.0) + c
    coeffs = {k: v for k, v in coeffs.items() if v != 0.0}
    if not coeffs:
        raise ValueError("every blend coefficient is zero: nothing to sample from")
    return coeffs


def combine(eps_by_model: Mapping[str, torch.Tensor], coeffs: Mapping[str, float]) -> torch.Tensor:
    """Σ_j c_j ε_j over the models named in ``coeffs`` (in the order of ``coeffs``)."""
    missing = [k for k in coeffs if k not in eps_by_model]
    if missing:
        raise KeyError(f"no noise prediction for {missing}")
    names = list(coeffs)
    return blend_eps([eps_by_model[n] for n in names], [coeffs[n] for n in names])
