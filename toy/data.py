"""Procedural, captioned 32×32 images: a coloured shape on a coloured background.

6 colours × 4 shapes × 5 background colours (background ≠ shape colour) = 120 (colour, shape, bg)
combinations. A fixed permutation holds out 12 combinations: their captions are the held-out prompts
(``dataset/toy_test_prompts.json``); the other 108 are the training prompts
(``dataset/toy_train_prompts.json``). Captions read ``a {colour} {shape} on a {bg} background``.

Each image is drawn at 4× (128 px) with PIL and box-downsampled to 32 px (anti-aliased edges); the
shape has a random radius of 5–11 px (in 32-px units) and a random centre that keeps it inside.
Everything is a function of an integer seed, so the same seed gives the same pixels everywhere
(docs/toy_world.md, probe 1).

    python -m toy.data --out dataset      # writes the two prompt files
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

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
N_HELD_OUT = 12
SPLIT_SEED = 20240601

Combo = tuple[int, int, int]  # (colour index, shape index, background index), indices into COLOR_NAMES/SHAPES


def all_combos() -> list[Combo]:
    return [(c, s, b) for c in range(len(COLOR_NAMES)) for s in range(len(SHAPES)) for b in range(len(COLOR_NAMES))
            if b != c]


def split_combos() -> tuple[list[Combo], list[Combo]]:
    """(train combos, held-out combos), fixed for all seeds."""
    combos = all_combos()
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(combos))
    held = sorted(combos[i] for i in perm[:N_HELD_OUT])
    train = [c for c in combos if c not in set(held)]
    return train, held


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


def draw(combo: Combo, rng: np.random.Generator) -> np.ndarray:
    """One image as uint8 (32, 32, 3)."""
    c, s, b = combo
    big = SIZE * SCALE
    img = Image.new("RGB", (big, big), COLORS[COLOR_NAMES[b]])
    d = ImageDraw.Draw(img)
    r = rng.uniform(5, 11) * SCALE
    cx, cy = rng.uniform(r, big - r, size=2)
    fill = COLORS[COLOR_NAMES[c]]
    shape = SHAPES[s]
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
    return np.asarray(img.resize((SIZE, SIZE), Image.BOX))


def make_batch(n: int, seed: int | tuple[int, ...], combos: list[Combo] | None = None
               ) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """``n`` random images from ``combos`` (default: the training combos), deterministic in ``seed``.

    Returns images in [−1, 1] as (n, 3, 32, 32) float32, their captions, and labels (n, 3) long
    (colour, shape, background).
    """
    combos = combos if combos is not None else split_combos()[0]
    rng = np.random.default_rng(np.random.SeedSequence(seed if isinstance(seed, tuple) else (seed,)))
    picks = [combos[i] for i in rng.integers(0, len(combos), size=n)]
    arr = np.stack([draw(cb, rng) for cb in picks])
    images = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return images, [caption(cb) for cb in picks], torch.tensor(picks, dtype=torch.long)


def palette_attributes(images01: torch.Tensor) -> torch.Tensor:
    """Colour and background read from pixels (no learned model): (N, 2) long (colour, bg) indices.

    Each pixel takes the nearest palette colour; the background is the most frequent class on the
    border; the object colour is the most frequent other class. An image with no other class gets −1.
    """
    pal = torch.tensor([COLORS[n] for n in COLOR_NAMES], dtype=torch.float32) / 255.0  # (6, 3)
    x = images01.float().permute(0, 2, 3, 1)  # (N, H, W, 3)
    dist = ((x[..., None, :] - pal) ** 2).sum(-1)  # (N, H, W, 6)
    cls = dist.argmin(-1)
    near = dist.min(-1).values < (60 / 255.0) ** 2 * 3
    out = []
    for k in range(x.shape[0]):
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
    d = ImageDraw.Draw(img)
    cx, cy, r = cx * SCALE, cy * SCALE, r * SCALE
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "square":
        h = r * 0.85
        d.rectangle([cx - h, cy - h, cx + h, cy + h], fill=255)
    elif shape == "triangle":
        d.polygon([(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)],
                  fill=255)
    else:
        w = r * 0.35
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=255)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=255)
    return np.asarray(img.resize((SIZE, SIZE), Image.BOX)) >= 128


def truth_attributes(images01: torch.Tensor) -> torch.Tensor:
    """Colour, shape and background read with the generator's own geometry (no learned model): (N, 3) long.

    Colour and background as :func:`palette_attributes`. The shape: the object's pixels (near a palette colour
    other than the background) give a centroid and an area; each of the four shapes is drawn by the generator
    at that centroid with the radius that gives that area, and the shape whose mask overlaps the object best
    (intersection over union) is read. −1 where there is no object (fewer than 4 pixels).
    On clean procedural images: colour, shape and background accuracy 1.00 / ≥ 0.97 / 1.00 (tests/test_toy_data.py).
    """
    pal = torch.tensor([COLORS[n] for n in COLOR_NAMES], dtype=torch.float32) / 255.0
    x = images01.float().detach().permute(0, 2, 3, 1)
    dist = ((x[..., None, :] - pal) ** 2).sum(-1)
    cls = dist.argmin(-1)
    near = dist.min(-1).values < (60 / 255.0) ** 2 * 3
    col_bg = palette_attributes(images01.detach())
    out = []
    for k in range(x.shape[0]):
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


def write_prompt_files(out_dir: str | Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, held = split_combos()
    p_train, p_test = out_dir / "toy_train_prompts.json", out_dir / "toy_test_prompts.json"
    p_train.write_text(json.dumps([caption(c) for c in train], indent=1) + "\n")
    p_test.write_text(json.dumps([caption(c) for c in held], indent=1) + "\n")
    return p_train, p_test


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="dataset", help="folder for toy_train_prompts.json / toy_test_prompts.json")
    args = ap.parse_args()
    for p in write_prompt_files(args.out):
        print(f"wrote {p} ({len(json.loads(p.read_text()))} prompts)")


if __name__ == "__main__":
    main()
