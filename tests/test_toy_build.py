"""The toy base-model trainer is deterministic for a seed and resumes to the same weights (issue 5)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from toy.manifest import check_manifest, sha256

ROOT = Path(__file__).resolve().parent.parent


def _train(out: Path, work: Path, steps: int) -> None:
    subprocess.run([sys.executable, "-m", "toy.train_base", "--out", str(out), "--work", str(work), "--steps",
                    str(steps), "--batch", "4", "--ckpt_every", "1", "--log_every", "1", "--threads", "1"],
                   cwd=ROOT, check=True, capture_output=True)


@pytest.mark.slow
def test_base_training_is_deterministic_and_resumes(tmp_path):
    _train(tmp_path / "a", tmp_path / "wa", 3)
    _train(tmp_path / "b", tmp_path / "wb", 2)  # stops after step 2 …
    _train(tmp_path / "b", tmp_path / "wb", 3)  # … and resumes from its checkpoint (steps < warm-up: same lr)
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert sha256(tmp_path / "a" / part) == sha256(tmp_path / "b" / part), part
    assert check_manifest(tmp_path / "a") == []
