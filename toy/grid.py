"""PNG grids of toy images (rows = configurations), upsampled with nearest-neighbour for viewing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def save_grid(rows: dict[str, torch.Tensor], path: str | Path, scale: int = 3, label_width: int = 150,
              title: str = "", col_labels: list[str] | None = None) -> Path:
    """``rows``: label → images (N, 3, 32, 32) in [0, 1]. One row per label (on the left), ``col_labels`` over the
    columns, ``title`` on top, in DejaVu Sans (``dbcore.figures.image_grid``); PNG and PDF.
    ``label_width`` is kept for callers; the label column now sizes itself."""
    from dbcore.figures import image_grid

    del label_width
    n = max(len(v) for v in rows.values())
    tiles = []
    for imgs in rows.values():
        arr = (imgs.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        tiles.append([Image.fromarray(a) for a in arr] + [None] * (n - len(arr)))
    path = Path(path)
    image_grid(tiles, list(rows), col_labels or [str(j) for j in range(n)], title, path, tile_px=32 * scale,
               what="toy grid")
    return path


def base_sample_grid(out: str | Path, base: str = "builtin:toy", n_seeds: int = 8, scale: int = 2) -> Path:
    """Samples of the base model: 6 training and 6 held-out prompts (rows) × ``n_seeds`` seeds."""
    import json

    from blend.methods.base import Base
    from blend.sampler import SamplerConfig, sample
    from blend.spec import BlendSpec
    from diffusion.loading import load_bundle
    from toy import TOY_DIR
    from toy.model import SAMPLE_ETA, SAMPLE_GUIDANCE, SAMPLE_STEPS

    root = TOY_DIR.parent / "dataset"
    train = json.loads((root / "toy_train_prompts.json").read_text())[::18][:6]
    test = json.loads((root / "toy_test_prompts.json").read_text())[::2][:6]
    bundle = load_bundle(base)
    cfg = SamplerConfig(steps=SAMPLE_STEPS, guidance=SAMPLE_GUIDANCE, eta=SAMPLE_ETA)
    rows = {}
    for tag, prompts in (("train", train), ("held-out", test)):
        for p in prompts:
            imgs = sample(bundle, BlendSpec(Base.name), [p] * n_seeds, list(range(n_seeds)), cfg).images
            rows[f"{tag}: {p.replace(' background', '').replace('a ', '')}"] = imgs
    return save_grid(rows, out, scale=scale, title=f"Toy base model ({base}): prompts × seeds",
                     col_labels=[f"seed {s}" for s in range(n_seeds)])


if __name__ == "__main__":
    import sys

    print(base_sample_grid(sys.argv[1] if len(sys.argv) > 1 else "docs/toy/base_samples.png"))
