"""PNG grids of toy images (rows = configurations), upsampled with nearest-neighbour for viewing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def save_grid(rows: dict[str, torch.Tensor], path: str | Path, scale: int = 3, label_width: int = 150) -> Path:
    """``rows``: label → images (N, 3, 32, 32) in [0, 1]. One row per label, labels on the left."""
    n = max(len(v) for v in rows.values())
    cell = 32 * scale + 2
    canvas = Image.new("RGB", (label_width + n * cell, len(rows) * cell), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    for r, (label, imgs) in enumerate(rows.items()):
        d.text((4, r * cell + cell // 2 - 6), label, fill=(0, 0, 0))
        arr = (imgs.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for c, a in enumerate(arr):
            im = Image.fromarray(a).resize((32 * scale, 32 * scale), Image.NEAREST)
            canvas.paste(im, (label_width + c * cell + 1, r * cell + 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def base_sample_grid(out: str | Path, base: str = "builtin:toy", n_seeds: int = 8, scale: int = 2) -> Path:
    """Samples of the base model: 6 training and 6 held-out prompts (rows) × ``n_seeds`` seeds."""
    import json

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
            imgs = sample(bundle, BlendSpec("base"), [p] * n_seeds, list(range(n_seeds)), cfg).images
            rows[f"{tag}: {p.replace(' background', '').replace('a ', '')}"] = imgs
    return save_grid(rows, out, scale=scale, label_width=230)


if __name__ == "__main__":
    import sys

    print(base_sample_grid(sys.argv[1] if len(sys.argv) > 1 else "docs/toy/base_samples.png"))
