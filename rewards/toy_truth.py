"""The toy world's caption grammar and its pixel ground truth: what the toy rewards need of the generator.

The palette (6 colours), the four shapes and their geometry are those ``toy/data.py`` draws with, so an image's
colour, shape and background can be read back from its pixels with no learned model. Captions read
``a {colour} {shape} on a {bg} background``; :func:`parse_caption` turns one into (colour, shape, background)
indices. ``toy/data.py`` (the generator) imports all of this from here.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220),
    "yellow": (235, 215, 40), "purple": (140, 50, 180), "cyan": (40, 200, 210),
}
COLOR_NAMES = list(COLORS)
SHAPES = ["circle", "square", "triangle", "cross"]
SIZE = 32
SCALE = 4

Combo = tuple[int, int, int]  # (colour index, shape index, background index), indices into COLOR_NAMES/SHAPES


def caption(combo: Combo) -> str:
    c, s, b = combo
    return f"a {COLOR_NAMES[c]} {SHAPES[s]} on a {COLOR_NAMES[b]} background"


def parse_caption(text: str) -> Combo:
    """Inverse of :func:`caption`; raises ValueError for any other text."""
    words = text.strip().split()
    if len(words) != 7 or words[0] != "a" or words[3:5] != ["on", "a"] or words[6] != "background" \
            or words[1] not in COLORS or words[2] not in SHAPES or words[5] not in COLORS:
        raise ValueError(f"not a toy caption: {text!r} (expected 'a {{colour}} {{shape}} on a {{colour}} background')")
    return COLOR_NAMES.index(words[1]), SHAPES.index(words[2]), COLOR_NAMES.index(words[5])


def draw_shape(d: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    """Draw ``shape`` (one of ``SHAPES``) with centre (cx, cy) and radius r, in the canvas' pixels."""
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        h = r * 0.85
        d.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
    elif shape == "triangle":
        pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        d.polygon(pts, fill=fill)
    else:  # cross
        w = r * 0.35
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)


def _palette_classes(images01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(nearest palette index (N, H, W) long, near a palette colour (N, H, W) bool) of images in [0, 1]."""
    pal = torch.tensor([COLORS[n] for n in COLOR_NAMES], dtype=torch.float32) / 255.0  # (6, 3)
    x = images01.float().detach().permute(0, 2, 3, 1)  # (N, H, W, 3)
    dist = ((x[..., None, :] - pal) ** 2).sum(-1)  # (N, H, W, 6)
    return dist.argmin(-1), dist.min(-1).values < (60 / 255.0) ** 2 * 3


def palette_attributes(images01: torch.Tensor) -> torch.Tensor:
    """Colour and background read from pixels (no learned model): (N, 2) long (colour, bg) indices.

    Each pixel takes the nearest palette colour; the background is the most frequent class on the
    border; the object colour is the most frequent other class. An image with no other class gets −1.
    """
    cls, near = _palette_classes(images01)
    out = []
    for k in range(cls.shape[0]):
        border = torch.cat([cls[k, 0], cls[k, -1], cls[k, :, 0], cls[k, :, -1]])
        bg = int(torch.bincount(border, minlength=6).argmax())
        inner = cls[k][near[k] & (cls[k] != bg)]
        col = int(torch.bincount(inner, minlength=6).argmax()) if inner.numel() >= 4 else -1
        out.append((col, bg))
    return torch.tensor(out, dtype=torch.long)


SHAPE_AREA = {"circle": math.pi, "square": 1.7 ** 2, "triangle": 3 * math.sqrt(3) / 4, "cross": 2.31}  # area / r²


def shape_mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    """The generator's mask of ``shape`` (centre and radius in 32-px units): bool (32, 32), coverage ≥ ½."""
    big = SIZE * SCALE
    img = Image.new("L", (big, big), 0)
    draw_shape(ImageDraw.Draw(img), shape, cx * SCALE, cy * SCALE, r * SCALE, 255)
    return np.asarray(img.resize((SIZE, SIZE), Image.BOX)) >= 128


def truth_attributes(images01: torch.Tensor) -> torch.Tensor:
    """Colour, shape and background read with the generator's own geometry (no learned model): (N, 3) long.

    Colour and background as :func:`palette_attributes`. The shape: the object's pixels (near a palette colour
    other than the background) give a centroid and an area; each of the four shapes is drawn by the generator
    at that centroid with the radius that gives that area, and the shape whose mask overlaps the object best
    (intersection over union) is read. −1 where there is no object (fewer than 4 pixels).
    On clean procedural images: colour, shape and background accuracy 1.00 / ≥ 0.97 / 1.00 (tests/test_toy_data.py).
    """
    cls, near = _palette_classes(images01)
    col_bg = palette_attributes(images01.detach())
    out = []
    for k in range(cls.shape[0]):
        col, bg = (int(v) for v in col_bg[k])
        obj = (near[k] & (cls[k] != bg)).numpy()
        if col < 0 or obj.sum() < 4:
            out.append((col, -1, bg))
            continue
        ys, xs = np.nonzero(obj)
        cy, cx, area = ys.mean() + 0.5, xs.mean() + 0.5, float(obj.sum())
        ious = []
        for shape in SHAPES:
            m = shape_mask(shape, cx, cy, math.sqrt(area / SHAPE_AREA[shape]))
            ious.append((m & obj).sum() / max((m | obj).sum(), 1))
        out.append((col, int(np.argmax(ious)), bg))
    return torch.tensor(out, dtype=torch.long)
