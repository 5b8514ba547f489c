"""Rewarded soup (Ramé et al. 2023) for LoRA adapters, two ways.

* :func:`merge_delta` — the exact weight-space interpolation ΔW = Σ_i w_i ΔW_i with
  ΔW_i = s_i B_i A_i. Written as one LoRA of rank Σ r_i: A = [A_1; …; A_m], B = [w_1 s_1 B_1, …,
  w_m s_m B_m], scale 1. No approximation.
* :func:`average_factors` — what the reference project's ``run_RS.py`` does (docs/method.md §6): average
  every tensor of the adapters' state dicts, i.e. A = Σ w_i A_i and B = Σ w_i B_i separately.
  Its ΔW = (Σ w_i B_i)(Σ w_j A_j) has cross terms w_i w_j B_i A_j, so it is NOT the soup of the
  ΔW's; it is kept, clearly named, so that tables can be compared with the paper's RS row.

Either merge is added to the UNet once as an adapter (:func:`ensure_soup_adapter`). When the samplers run
it, its ΔW is folded into the base weights for the run and the weights are restored bit for bit after
(``diffusion.adapters.FoldedAdapter``, through ``blend.predictor.NoisePredictor``'s ``fold``): a soup then
costs what the base model costs, instead of a rank-Σr LoRA's extra matmuls in every layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from diffusion.lora import LoraWeights


def _check(loras: Sequence[LoraWeights], weights: Sequence[float]) -> None:
    if len(loras) != len(weights) or not loras:
        raise ValueError(f"{len(loras)} adapters but {len(weights)} weights")


def merge_delta(loras: Sequence[LoraWeights], weights: Sequence[float]) -> LoraWeights:
    """One LoRA whose ΔW equals Σ_i w_i ΔW_i exactly (rank Σ r_i, alpha = rank so the scale is 1)."""
    _check(loras, weights)
    modules = sorted(set().union(*(lw.modules for lw in loras)))
    A, B, alpha = {}, {}, {}
    for mod in modules:
        parts = [(lw, w) for lw, w in zip(loras, weights) if mod in lw.A]
        A[mod] = torch.cat([lw.A[mod].float() for lw, _ in parts], dim=0)
        B[mod] = torch.cat([w * lw.scale(mod) * lw.B[mod].float() for lw, w in parts], dim=1)
        alpha[mod] = float(A[mod].shape[0])
    return LoraWeights(A=A, B=B, alpha=alpha, source="soup(ΔW)", fmt="merged")


def average_factors(loras: Sequence[LoraWeights], weights: Sequence[float]) -> LoraWeights:
    """A = Σ w_i A_i, B = Σ w_i B_i (the reference RS baseline); adapters must share modules, ranks and alphas."""
    _check(loras, weights)
    first = loras[0]
    for lw in loras[1:]:
        if lw.modules != first.modules:
            raise ValueError("factor averaging needs adapters on the same layers; use merge_delta (method 'soup')")
        for mod in first.modules:
            if lw.A[mod].shape != first.A[mod].shape or lw.alpha[mod] != first.alpha[mod]:
                raise ValueError(f"factor averaging needs equal ranks and alphas; they differ at {mod}")
    A = {m: sum(w * lw.A[m].float() for lw, w in zip(loras, weights)) for m in first.modules}
    B = {m: sum(w * lw.B[m].float() for lw, w in zip(loras, weights)) for m in first.modules}
    return LoraWeights(A=A, B=B, alpha=dict(first.alpha), source="soup(factors)", fmt="merged")


def ensure_soup_adapter(unet: torch.nn.Module, spec, loras: dict[str, LoraWeights]) -> str:
    """Add the merged adapter of a soup ``spec`` to ``unet`` (once) and return its name."""
    from diffusion.lora import adapter_names, add_lora

    name = spec.soup_adapter_name
    if name not in adapter_names(unet):
        parts = [loras[a] for a in spec.adapters]
        blocked = [a for a, lw in zip(spec.adapters, parts)
                   if lw.fmt == "full-unet" or lw.extra.get("text_encoder_layers")]
        if blocked:
            raise ValueError(f"{spec.display_name} merges the adapters' UNet LoRA weights, which {blocked} cannot be "
                             "(a full UNet, or text-encoder LoRA parts); use method 'mpa' with these members")
        merged = spec.info.merge(parts, spec.weights)  # blend.methods.soup: ΔW or the factors
        add_lora(unet, name, merged)
    return name
