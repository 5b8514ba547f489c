"""Classifier-free guidance and the name of the pretrained model: what one model needs to give a guided ε.

``BASE`` names the pretrained model (every adapter disabled) wherever a model is named by a string;
it is also PEFT's mixed-batch name for base-only rows, which ``diffusion.adapters`` relies on.
"""

from __future__ import annotations

import torch

BASE = "__base__"


def classifier_free_guidance(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """ε̂ = ε_u + g·(ε_c − ε_u). ``scale`` = 1 returns ε_c's value; the paper uses 7.5."""
    return eps_uncond + scale * (eps_cond - eps_uncond)
