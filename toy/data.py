"""Procedural, captioned 32×32 images: a coloured shape on a coloured background.

6 colours × 4 shapes × 5 background colours (background ≠ shape colour) = 120 (colour, shape, bg)
combinations. A fixed permutation holds out 12 combinations: their captions are the held-out prompts
(``dataset/toy_test_prompts.json``); the other 108 are the training prompts
(``dataset/toy_train_prompts.json``). A fixed 12 of the training prompts are the tuning prompts
(``dataset/toy_tune_prompts.json``): recipes are chosen on them, never on the held-out prompts.
Captions read ``a {colour} {shape} on a {bg} background``.

Each image is drawn at 4× (128 px) with PIL and box-downsampled to 32 px (anti-aliased edges); the
shape has a random radius of 5–11 px (in 32-px units) and a random centre that keeps it inside. ``texture`` > 0
(``--texture`` of ``toy.train_base`` and ``toy.judge``; 60 in toy world v3, 0 in v1 and v2) adds grey stripes to the
background, a style axis no caption names (docs/toy_world.md).
Everything is a function of an integer seed, so the same seed gives the same pixels everywhere
(docs/toy_world.md, probe 1). The palette, the shapes' geometry, the caption grammar and the pixel ground truth
live in ``rewards/toy_truth.py`` (the toy rewards read them; they are re-exported here).

    python -m toy.data --out dataset      # writes the three prompt files
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from rewards.toy_truth import (
    COLOR_NAMES,
    COLORS,
    SCALE,
    SHAPE_AREA,
    SHAPES,
    SIZE,
    Combo,
    caption,
    draw_shape,
    palette_attributes,
    parse_caption,
    shape_mask,
    truth_attributes,
)

__all__ = ["COLORS", "COLOR_NAMES", "N_HELD_OUT", "SCALE", "SHAPES", "SHAPE_AREA", "SIZE", "SPLIT_SEED", "Combo",
           "all_combos", "caption", "draw", "make_batch", "palette_attributes", "parse_caption", "shape_mask",
           "split_combos", "truth_attributes", "tuning_combos", "write_prompt_files"]

N_HELD_OUT = 12
SPLIT_SEED = 20240601
N_TUNING = 12
TUNING_SEED = 20261207

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


def tuning_combos() -> list[Combo]:
    """``N_TUNING`` of the training combos, fixed: the prompts a recipe is tuned on (the held-out ones never are)."""
    train = split_combos()[0]
    perm = np.random.default_rng(TUNING_SEED).permutation(len(train))
    return sorted(train[i] for i in perm[:N_TUNING])


TEXTURE_PERIOD = (4.0, 8.0)  # stripe period range of the background texture, in 32-px pixels
TEXTURE_STREAM = 977  # make_batch draws the stripes from their own random stream, so the shapes are the same


def draw(combo: Combo, rng: np.random.Generator, texture: float = 0.0,
         texture_rng: np.random.Generator | None = None) -> np.ndarray:
    """One image as uint8 (32, 32, 3).

    ``texture`` > 0 adds grey stripes to the background only: amplitude U(0, texture) in 0–255 units, horizontal
    or vertical, random phase and period (``TEXTURE_PERIOD``), drawn from ``texture_rng`` (default ``rng``). Nothing in
    the caption names them, so they are a style axis that costs JPEG size and carries no alignment. ``texture=0`` draws
    nothing more: the same pixels as before the option existed.
    """
    if not 0 <= texture <= 255:
        raise ValueError(f"texture {texture}: the stripes' largest amplitude is in 0–255 pixel units (0: none)")
    c, s, b = combo
    big = SIZE * SCALE
    img = Image.new("RGB", (big, big), COLORS[COLOR_NAMES[b]])
    d = ImageDraw.Draw(img)
    r = rng.uniform(5, 11) * SCALE
    cx, cy = rng.uniform(r, big - r, size=2)
    draw_shape(d, SHAPES[s], cx, cy, r, COLORS[COLOR_NAMES[c]])
    if texture > 0:
        t = rng if texture_rng is None else texture_rng
        amp, angle, phase = t.uniform(0, texture), t.integers(0, 2) * np.pi / 2, t.uniform(0, 2 * np.pi)
        period = t.uniform(*TEXTURE_PERIOD) * SCALE
        mask = Image.new("L", (big, big), 0)
        draw_shape(ImageDraw.Draw(mask), SHAPES[s], cx, cy, r, 255)
        yy, xx = np.mgrid[0:big, 0:big].astype(np.float64)
        stripes = amp * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period + phase)
        background = np.asarray(mask) == 0
        arr = np.asarray(img).astype(np.float64)
        arr[background] += stripes[background, None]
        img = Image.fromarray(arr.clip(0, 255).round().astype(np.uint8))
    return np.asarray(img.resize((SIZE, SIZE), Image.BOX))


def make_batch(n: int, seed: int | tuple[int, ...], combos: list[Combo] | None = None, texture: float = 0.0
               ) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """``n`` random images from ``combos`` (default: the training combos), deterministic in ``seed``.

    Returns images in [−1, 1] as (n, 3, 32, 32) float32, their captions, and labels (n, 3) long
    (colour, shape, background). ``texture``: the background stripes' largest amplitude (``draw``).
    """
    combos = combos if combos is not None else split_combos()[0]
    key = seed if isinstance(seed, tuple) else (seed,)
    rng = np.random.default_rng(np.random.SeedSequence(key))
    texture_rng = np.random.default_rng(np.random.SeedSequence((*key, TEXTURE_STREAM)))  # shapes stay as without
    picks = [combos[i] for i in rng.integers(0, len(combos), size=n)]
    arr = np.stack([draw(cb, rng, texture, texture_rng) for cb in picks])
    images = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return images, [caption(cb) for cb in picks], torch.tensor(picks, dtype=torch.long)


def write_prompt_files(out_dir: str | Path) -> tuple[Path, Path, Path]:
    """Write the training, held-out (test) and tuning prompt files into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, held = split_combos()
    files = {"toy_train_prompts.json": train, "toy_test_prompts.json": held, "toy_tune_prompts.json": tuning_combos()}
    for name, combos in files.items():
        (out_dir / name).write_text(json.dumps([caption(c) for c in combos], indent=1) + "\n")
    p_train, p_test, p_tune = (out_dir / name for name in files)
    return p_train, p_test, p_tune


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="dataset", help="folder for the training, held-out and tuning prompt files")
    args = ap.parse_args()
    for p in write_prompt_files(args.out):
        print(f"wrote {p} ({len(json.loads(p.read_text()))} prompts)")


if __name__ == "__main__":
    main()
