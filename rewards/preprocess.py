"""Differentiable CLIP-style image preprocessing in torch (float images in [0, 1] → normalised model input).

Two official layouts are re-stated here so that gradients reach the image:

* :func:`clip_preprocess` — resize the shortest edge to ``size`` (bicubic, antialiased), centre-crop
  ``size``×``size``, ``(x − mean) / std``. ImageReward, LAION aesthetic, PickScore and CLIP score.
* :func:`letterbox_preprocess` — resize the longest edge to ``size`` and pad the rest with black to a
  square (HPSv2's ``ResizeMaxSize``), then ``(x − mean) / std``. HPSv2.x.

Resizing is torch's antialiased bicubic, which uses PIL's kernel (a = −0.5) and equals torchvision's
``Resize(..., BICUBIC)`` on a float tensor (torchvision ≥ 0.17, where ``antialias=True`` is the default;
``torchvision/transforms/_functional_tensor.py`` ``resize`` calls ``interpolate(..., antialias=True)`` and
clamps only uint8 images). Bicubic overshoots at hard edges (values below 0 / above 1):

* ``clamp=False`` keeps the overshoot, as the official *tensor* paths do (ImageReward's ``ReFL.py`` training
  path, HPSv2's transform); the image gradient is non-zero everywhere the kernel reaches.
* ``clamp=True`` clamps to [0, 1] after resizing, as the official *PIL* paths do implicitly (8-bit output);
  the value is then closer to the PIL path on hard edges, but the gradient is that of the clamped function:
  zero at pixels that overshoot.

Against the official PIL path the shortest-edge route differs by PIL's uint8 rounding (PIL resizes in two
passes with 8-bit intermediates); measured numbers in ``rewards/README.md`` and
``tests/test_rewards_preprocess.py``. At ``size``×``size`` inputs nothing is resized and the paths agree.

Centre-crop offsets differ between libraries when the margin is odd: torchvision's ``CenterCrop``
(ImageReward, LAION aesthetic) rounds half to even, transformers' ``CLIPImageProcessor`` (PickScore,
CLIP score) floors. ``crop="torchvision"`` / ``crop="transformers"`` selects which.
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


def longest_edge_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Output (H, W) when the longest edge goes to ``size``: each edge × ``size / max(H, W)``, Python ``round``
    (half to even), as HPSv2's ``ResizeMaxSize`` computes it (``hpsv2/src/open_clip/transform.py``)."""
    scale = size / float(max(height, width))
    return round(height * scale), round(width * scale)


def crop_offset(length: int, crop: int, mode: str) -> int:
    if mode == "torchvision":
        return int(round((length - crop) / 2.0))
    if mode == "transformers":
        return (length - crop) // 2
    raise ValueError(f"crop must be 'torchvision' or 'transformers', got {mode!r}")


def _bicubic(x: torch.Tensor, shape: tuple[int, int], clamp: bool) -> torch.Tensor:
    if tuple(x.shape[-2:]) == shape:
        return x
    x = F.interpolate(x, size=shape, mode="bicubic", align_corners=False, antialias=True)
    return x.clamp(0, 1) if clamp else x


def _normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def clip_preprocess(images: torch.Tensor, size: int = 224, mean: Sequence[float] = CLIP_MEAN,
                    std: Sequence[float] = CLIP_STD, crop: str = "torchvision", *, clamp: bool) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] → (N, 3, size, size): shortest edge → ``size``, centre crop, normalise.

    ``clamp``: clamp to [0, 1] after the resize (see the module docstring: value of the PIL path vs the
    gradient of the unclamped tensor path). Differentiable.
    """
    h, w = images.shape[-2:]
    nh, nw = resized_shape(h, w, size)
    x = _bicubic(images, (nh, nw), clamp)
    top, left = crop_offset(nh, size, crop), crop_offset(nw, size, crop)
    return _normalise(x[..., top:top + size, left:left + size], mean, std)


def letterbox_preprocess(images: torch.Tensor, size: int = 224, mean: Sequence[float] = CLIP_MEAN,
                         std: Sequence[float] = CLIP_STD) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] → (N, 3, size, size): longest edge → ``size``, black letterbox, normalise.

    HPSv2's ``ResizeMaxSize(size, fill=0)`` on the ``ToTensor`` output (``hpsv2/src/open_clip/transform.py``):
    new (H', W') = ``round(edge · size / max(H, W))``; bicubic on the float tensor, not clamped; zero padding
    of ``size − H'`` rows (``(size − H') // 2`` on top, the rest below) and ``size − W'`` columns
    (``(size − W') // 2`` on the left). The padding is 0 *before* ``Normalize``, so padded pixels equal
    ``−mean / std`` per channel (≈ −1.79, −1.75, −1.48 for CLIP's). Differentiable (not clamped).

    One deviation: when the longest edge already equals ``size`` but the image is not square, the official
    transform skips both resize and padding and the ViT then fails on the non-square input; here the image
    is padded the same way as every other size.
    """
    h, w = images.shape[-2:]
    nh, nw = longest_edge_shape(h, w, size)
    x = _bicubic(images, (nh, nw), clamp=False)
    top, left = (size - nh) // 2, (size - nw) // 2
    x = F.pad(x, (left, size - nw - left, top, size - nh - top), value=0.0)
    return _normalise(x, mean, std)
