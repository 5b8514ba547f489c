"""Helpers shared by tests/test_rewards*.py (imported explicitly; not a pytest conftest).

The "official" preprocessing here is written the way the official packages run it on PIL images
(torchvision ``Resize(size, BICUBIC)`` on a PIL image is PIL's ``Image.resize``; ``CenterCrop``
rounds the offset; ``ToTensor`` divides by 255), independently of ``rewards.preprocess``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def quantized_images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Random images whose values are exact multiples of 1/255 (so PIL round-trips them exactly)."""
    g = torch.Generator().manual_seed(seed)
    # Smooth-ish content: low-res noise upsampled, so resizing is not dominated by aliasing.
    low = torch.rand(n, 3, max(2, h // 8), max(2, w // 8), generator=g)
    x = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    x = (x + 0.1 * torch.rand(n, 3, h, w, generator=g)).clamp(0, 1)
    return (x * 255).round() / 255


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    arr = (images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in arr]


def official_clip_preprocess(img: Image.Image, size: int = 224, mean=CLIP_MEAN, std=CLIP_STD,
                             crop: str = "torchvision") -> torch.Tensor:
    """Resize shortest edge (PIL bicubic) → centre crop → /255 → normalise. Returns (3, size, size)."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.BICUBIC)
    if crop == "torchvision":
        top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    else:
        top, left = (new_h - size) // 2, (new_w - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def randomize_(module: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Fill every parameter with seeded noise (LayerNorm weights around 1) so that no output is degenerate."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1 and ("norm" in name.lower() or "ln" in name.lower()) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim >= 2 and p.shape[-1] > 1 and "embed" not in name:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))
    return module


def layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
              bias: torch.Tensor | None = None) -> torch.Tensor:
    """Plain multi-head attention on (N, L, D) projections; ``bias`` is added to the (N, heads, Lq, Lk) logits."""
    n, lq, d = q.shape
    hd = d // heads

    def split(t):
        return t.reshape(n, t.shape[1], heads, hd).transpose(1, 2)

    logits = split(q) @ split(k).transpose(-1, -2) / math.sqrt(hd)
    if bias is not None:
        logits = logits + bias
    out = logits.softmax(-1) @ split(v)
    return out.transpose(1, 2).reshape(n, lq, d)


def gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def hard_edge_images(n: int, h: int, w: int, seed: int = 0, cell: int = 4) -> torch.Tensor:
    """Images of flat 0/1 blocks (``cell``×``cell`` pixels, random per channel): every block border is a hard edge,
    where bicubic resizing overshoots [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = (torch.rand(n, 3, -(-h // cell), -(-w // cell), generator=g) > 0.5).float()
    return low.repeat_interleave(cell, -2).repeat_interleave(cell, -1)[..., :h, :w].contiguous()


def pil_float_resize(channel: np.ndarray, width: int, height: int) -> np.ndarray:
    """PIL's bicubic resize of one float32 channel (mode "F": no 8-bit rounding, no clamping)."""
    return np.asarray(Image.fromarray(channel.astype(np.float32), mode="F").resize((width, height), Image.BICUBIC))


def normalise(x: torch.Tensor, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def official_tensor_clip_preprocess(image: torch.Tensor, size: int = 224) -> torch.Tensor:
    """ImageReward's ``ReFL.py`` path on one float image (3, H, W): torchvision ``Resize(size, BICUBIC)`` on the
    tensor (no clamp), ``CenterCrop`` (offset rounded), Normalize. Re-stated with PIL float resizes."""
    _, h, w = image.shape
    nh, nw = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    arr = np.stack([pil_float_resize(c, nw, nh) for c in image.numpy()])
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    return normalise(torch.from_numpy(arr[:, top:top + size, left:left + size].copy()))


def official_letterbox(image: torch.Tensor, new_hw: tuple[int, int], top_left: tuple[int, int],
                       size: int = 224) -> torch.Tensor:
    """HPSv2's val transform on one float image (3, H, W), by hand: PIL float bicubic resize to ``new_hw``, paste
    at ``top_left`` on a black ``size``×``size`` canvas, then Normalize (so the border is −mean/std)."""
    (nh, nw), (top, left) = new_hw, top_left
    out = []
    for c in image.numpy():
        canvas = Image.new("F", (size, size), 0.0)
        canvas.paste(Image.fromarray(pil_float_resize(c, nw, nh), mode="F"), (left, top))
        out.append(np.asarray(canvas))
    return normalise(torch.from_numpy(np.stack(out)))
