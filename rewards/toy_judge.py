"""The toy world's judges (its "ImageReward"): the two CNN architectures, their heads and the loader.

Small CNNs that read the colour, shape and background of a 32×32 image in [0, 1] and return logits per attribute.

* ``cnn5`` (:class:`ToyJudge`, the training judge, ``toy/weights/judge``): five 3×3 conv layers (32-32-64-64-64
  channels, stride 2 at layers 2, 4 and 5 → 4×4), then flatten → MLP (1024 → 128) → three heads (6 colours,
  4 shapes, 6 backgrounds). A flatten-then-MLP head is needed: global average pooling loses where things are and
  cannot tell shapes apart (docs/toy_world.md, probe 3).
* ``pool4`` (:class:`ToyJudgePool`, the held-out judge, ``toy/weights/judge_heldout``): four 5×5 conv layers
  (48-48-96-96, BatchNorm, ReLU, 2×2 average pooling after layers 2–4 → 4×4), flatten → MLP (1536 → 96) → the same
  three heads.

Training lives in ``toy/judge.py`` (``python -m toy.judge``); the rewards of ``rewards/toy.py`` only load and read.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from rewards.toy_truth import COLOR_NAMES, SHAPES

HEADS = {"colour": len(COLOR_NAMES), "shape": len(SHAPES), "background": len(COLOR_NAMES)}
TOY_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "toy" / "weights"  # the committed judges and statistics


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
        h = self.mlp(self.features(_to_32(images01) * 2 - 1))
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
        h = self.mlp(self.features(_to_32(images01) - 0.5))
        return {k: head(h) for k, head in self.heads.items()}


def _to_32(images01: torch.Tensor) -> torch.Tensor:
    """Images resized (bilinear, antialiased) to 32×32 when they are not already."""
    if images01.shape[-2:] != (32, 32):
        images01 = F.interpolate(images01, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    return images01


ARCHS = {"cnn5": ToyJudge, "pool4": ToyJudgePool}


def load_judge(directory: str | Path) -> nn.Module:
    """The judge saved in ``directory`` (``judge.safetensors`` + ``config.json``), in eval mode, frozen."""
    directory = Path(directory)
    path = directory / "judge.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"toy judge weights not found at {path}; build them with "
                                f"`python -m toy.judge --out {directory}` (or `bash scripts/build_toy.sh`)")
    cfg = json.loads((directory / "config.json").read_text())
    judge = ARCHS[cfg.get("arch", "cnn5")](width=cfg["width"])
    judge.load_state_dict(load_file(path))
    return judge.eval().requires_grad_(False)
