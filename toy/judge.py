"""Training of the toy's learned prompt-alignment scorers (its "ImageReward"): small CNNs that read the colour,
shape and background of a 32×32 image.

The two architectures (``--arch``, recorded in the judge's ``config.json``), their heads and the loader live in
``rewards/toy_judge.py``, where the rewards read them (re-exported here): ``cnn5`` is the training judge
(``toy/weights/judge``); ``pool4`` the held-out judge (``toy/weights/judge_heldout``), trained with another seed on
another pool of procedural images, so it shares no weights, no architecture and no training images with the
training judge. Nothing trains or guides on it: it only scores (the ``*_heldout`` rewards in ``rewards/toy.py``).

Each is trained on procedural images from every combination, with Gaussian pixel noise (σ up to 0.3)
and a small per-image colour jitter, so it also reads imperfect samples.

    python -m toy.judge --out toy/weights/judge
    python -m toy.judge --out toy/weights/judge_heldout --arch pool4 --width 48 --seed 1 --pool_seed 11
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from rewards.toy_judge import ARCHS, HEADS, ToyJudge, ToyJudgePool, load_judge
from toy.data import COLOR_NAMES, SHAPES, all_combos, make_batch

__all__ = ["ARCHS", "HEADS", "ToyJudge", "ToyJudgePool", "accuracy", "augment", "load_judge", "main"]


def augment(x01: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x01.shape[0]
    sigma = torch.rand(n, 1, 1, 1, generator=g) * 0.3
    jitter = (torch.rand(n, 3, 1, 1, generator=g) - 0.5) * 0.16
    return (x01 + jitter + sigma * torch.randn(x01.shape, generator=g)).clamp(0, 1)


@torch.no_grad()
def accuracy(judge: nn.Module, n: int = 512, seed: int = 10_000_019, texture: float = 0.0) -> dict[str, float]:
    """Per-attribute accuracy on fresh clean images (seeds never used in training)."""
    x, _, labels = make_batch(n, (seed,), all_combos(), texture=texture)
    logits = judge(x / 2 + 0.5)
    return {k: (logits[k].argmax(-1) == labels[:, i]).float().mean().item() for i, k in enumerate(HEADS)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="toy/weights/judge")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--arch", choices=sorted(ARCHS), default="cnn5")
    ap.add_argument("--pool", type=int, default=16384, help="procedural images drawn once and augmented")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pool_seed", type=int, default=None,
                    help="seed of the pool of training images (default: --seed; another value = another data set)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--texture", type=float, default=0.0,
                    help="largest amplitude (0-255) of the background stripes in the training images (toy.data.draw)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    judge = ARCHS[args.arch](args.width)
    pool_seed = args.seed if args.pool_seed is None else args.pool_seed
    x_pool, _, y_pool = make_batch(args.pool, (pool_seed, 7), all_combos(), texture=args.texture)
    x_pool = x_pool / 2 + 0.5
    opt = torch.optim.AdamW(judge.parameters(), lr=args.lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(args.seed)
    for step in range(args.steps):
        idx = torch.randint(0, args.pool, (args.batch,), generator=g)
        x, y = augment(x_pool[idx], g), y_pool[idx]
        if torch.rand(1, generator=g).item() < 0.5:  # mirror: shapes and colours are symmetric
            x = x.flip(-1)
        for group in opt.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * step / args.steps))).item()
        logits = judge(x)
        loss = sum(F.cross_entropy(logits[k], y[:, i]) for i, k in enumerate(HEADS))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1} loss {loss.item():.4f} {time.perf_counter() - t0:.0f}s", flush=True)
    judge.eval()
    acc = accuracy(judge, texture=args.texture)
    wall = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(out / "judge.safetensors.tmp"))
    os.replace(out / "judge.safetensors.tmp", out / "judge.safetensors")
    (out / "config.json").write_text(json.dumps({"arch": args.arch, "width": args.width, "heads": HEADS, "colours": COLOR_NAMES,
                                                 "shapes": SHAPES}, indent=1) + "\n")
    from toy.manifest import write_manifest

    write_manifest(out, {"what": f"toy prompt-alignment judge ({args.arch} CNN, heads colour/shape/background)",
                         "command": "python -m toy.judge " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
                         "seed": args.seed, "steps": args.steps, "texture": args.texture,
                         "wall_seconds": round(wall, 1), "clean_heldout_accuracy": acc})
    print(json.dumps({"accuracy": acc, "wall_s": round(wall, 1)}), flush=True)


if __name__ == "__main__":
    main()
