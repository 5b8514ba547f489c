"""The toy's learned prompt-alignment scorers (its "ImageReward"): small CNNs that read the colour,
shape and background of a 32×32 image.

Two architectures, chosen by ``--arch`` and recorded in the judge's ``config.json``:

* ``cnn5`` (the training judge, ``toy/weights/judge``): five 3×3 conv layers (32-32-64-64-64 channels,
  stride 2 at layers 2, 4 and 5 → 4×4), then
flatten → MLP (1024 → 128) → three heads (6 colours, 4 shapes, 6 backgrounds). A flatten-then-MLP
head is needed: global average pooling loses where things are and cannot tell shapes apart
(docs/toy_world.md, probe 3).
* ``pool4`` (the held-out judge, ``toy/weights/judge_heldout``): four 5×5 conv layers (48-48-96-96,
  BatchNorm, ReLU, 2×2 average pooling after layers 2–4 → 4×4), flatten → MLP (1536 → 96) → the same
  three heads. It is trained with another seed on another pool of procedural images, so it shares no
  weights, no architecture and no training images with the training judge. Nothing trains or guides
  on it: it only scores (the ``*_heldout`` rewards in ``rewards/toy.py``).

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
from safetensors.torch import load_file, save_file

from toy.data import COLOR_NAMES, SHAPES, all_combos, make_batch

HEADS = {"colour": len(COLOR_NAMES), "shape": len(SHAPES), "background": len(COLOR_NAMES)}


class ToyJudge(nn.Module):
    """Images in [0, 1] (N, 3, 32, 32) → dict of logits per attribute."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        chans = [(3, w, 1), (w, w, 2), (w, 2 * w, 1), (2 * w, 2 * w, 2), (2 * w, 2 * w, 2)]
        layers: list[nn.Module] = []
        for cin, cout, stride in chans:
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU()]
        self.features = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 16, 128), nn.SiLU())
        self.heads = nn.ModuleDict({k: nn.Linear(128, n) for k, n in HEADS.items()})

    def forward(self, images01: torch.Tensor) -> dict[str, torch.Tensor]:
        if images01.shape[-2:] != (32, 32):
            images01 = F.interpolate(images01, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        h = self.mlp(self.features(images01 * 2 - 1))
        return {k: head(h) for k, head in self.heads.items()}


class ToyJudgePool(nn.Module):
    """The held-out architecture: images in [0, 1] (N, 3, 32, 32) → dict of logits per attribute."""

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        w = width
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate([(3, w), (w, w), (w, 2 * w), (2 * w, 2 * w)]):
            layers += [nn.Conv2d(cin, cout, 5, 1, 2), nn.BatchNorm2d(cout), nn.ReLU()]
            if i >= 1:
                layers.append(nn.AvgPool2d(2))
        self.features = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 16, 96), nn.ReLU())
        self.heads = nn.ModuleDict({k: nn.Linear(96, n) for k, n in HEADS.items()})

    def forward(self, images01: torch.Tensor) -> dict[str, torch.Tensor]:
        if images01.shape[-2:] != (32, 32):
            images01 = F.interpolate(images01, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        h = self.mlp(self.features(images01 - 0.5))
        return {k: head(h) for k, head in self.heads.items()}


ARCHS = {"cnn5": ToyJudge, "pool4": ToyJudgePool}


def load_judge(directory: str | Path) -> nn.Module:
    directory = Path(directory)
    path = directory / "judge.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"toy judge weights not found at {path}; build them with "
                                f"`python -m toy.judge --out {directory}` (or `bash scripts/build_toy.sh`)")
    cfg = json.loads((directory / "config.json").read_text())
    judge = ARCHS[cfg.get("arch", "cnn5")](width=cfg["width"])
    judge.load_state_dict(load_file(path))
    return judge.eval().requires_grad_(False)


def augment(x01: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x01.shape[0]
    sigma = torch.rand(n, 1, 1, 1, generator=g) * 0.3
    jitter = (torch.rand(n, 3, 1, 1, generator=g) - 0.5) * 0.16
    return (x01 + jitter + sigma * torch.randn(x01.shape, generator=g)).clamp(0, 1)


@torch.no_grad()
def accuracy(judge: nn.Module, n: int = 512, seed: int = 10_000_019) -> dict[str, float]:
    """Per-attribute accuracy on fresh clean images (seeds never used in training)."""
    x, _, labels = make_batch(n, (seed,), all_combos())
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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    judge = ARCHS[args.arch](args.width)
    pool_seed = args.seed if args.pool_seed is None else args.pool_seed
    x_pool, _, y_pool = make_batch(args.pool, (pool_seed, 7), all_combos())
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
    acc = accuracy(judge)
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
                         "seed": args.seed, "steps": args.steps, "wall_seconds": round(wall, 1),
                         "clean_heldout_accuracy": acc})
    print(json.dumps({"accuracy": acc, "wall_s": round(wall, 1)}), flush=True)


if __name__ == "__main__":
    main()
