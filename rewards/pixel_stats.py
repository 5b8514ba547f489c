"""Weight-free pixel statistics: brightness and colourfulness. Differentiable; for tests and demos."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rewards.registry import check_images, register


class _PixelReward:
    def __init__(self, name: str, fn) -> None:
        self.name, self._fn = name, fn

    def __call__(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        check_images(images, prompts)
        return self._fn(images)


def mean_brightness(images: torch.Tensor) -> torch.Tensor:
    """Mean pixel value in [0, 1]. → (N,)"""
    return images.mean(dim=(1, 2, 3))


def colorfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler & Süsstrunk (2003) colourfulness on [0, 1] RGB: √(σ_rg²+σ_yb²) + 0.3·√(μ_rg²+μ_yb²). → (N,)"""
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    std = torch.sqrt(rg.var(dim=(1, 2), unbiased=False) + yb.var(dim=(1, 2), unbiased=False) + 1e-12)
    mean = torch.sqrt(rg.mean(dim=(1, 2)) ** 2 + yb.mean(dim=(1, 2)) ** 2 + 1e-12)
    return std + 0.3 * mean


@register("brightness", scale="mean pixel value in [0, 1]; higher = brighter", description="mean brightness (diagnostic)",
          differentiable=True)
def _brightness(**_: object) -> _PixelReward:
    return _PixelReward("brightness", mean_brightness)


@register("colorfulness", scale="Hasler–Süsstrunk colourfulness on [0,1] RGB, about 0…0.6; higher = more colourful",
          description="colourfulness (diagnostic)", differentiable=True)
def _colorfulness(**_: object) -> _PixelReward:
    return _PixelReward("colorfulness", colorfulness)
