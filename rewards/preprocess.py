"""Differentiable CLIP-style image preprocessing in torch.

The official scorers preprocess PIL images: resize the shortest edge to ``size`` (bicubic, PIL's
antialiased filter), centre-crop ``size``×``size``, scale to [0, 1], normalise with the model's mean
and std. Here the same steps run on a float tensor so that gradients reach the image. The result
matches the official PIL path up to the uint8 rounding PIL does after resizing (tests:
``tests/test_rewards_preprocess.py``; about ≤ 2 uint8 steps, i.e. ≤ 0.03 after normalisation).

Centre-crop offsets differ between libraries when the margin is odd: torchvision's ``CenterCrop``
(ImageReward, LAION aesthetic, HPSv2) rounds half to even, transformers' ``CLIPImageProcessor``
(PickScore, CLIP score) floors. ``crop="torchvision"`` / ``crop="transformers"`` selects which.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Output (H, W) when the shortest edge goes to ``size`` (long edge truncated, as torchvision and transformers do)."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def crop_offset(length: int, crop: int, mode: str) -> int:
    if mode == "torchvision":
        return int(round((length - crop) / 2.0))
    if mode == "transformers":
        return (length - crop) // 2
    raise ValueError(f"crop must be 'torchvision' or 'transformers', got {mode!r}")


def clip_preprocess(images: torch.Tensor, size: int = 224, mean: Sequence[float] = CLIP_MEAN,
                    std: Sequence[float] = CLIP_STD, crop: str = "torchvision") -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] → (N, 3, size, size) normalised model input; differentiable.

    Bicubic resize with antialiasing (torch's antialiased bicubic uses PIL's kernel), clamped to
    [0, 1] as PIL's uint8 output is, then centre crop and ``(x − mean) / std``.
    """
    x = images
    h, w = x.shape[-2:]
    nh, nw = resized_shape(h, w, size)
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    top, left = crop_offset(nh, size, crop), crop_offset(nw, size, crop)
    x = x[..., top:top + size, left:left + size]
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s
