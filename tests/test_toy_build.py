"""The toy base-model trainer is deterministic for a seed and resumes to the same weights (issue 5)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from toy.manifest import check_manifest, sha256

ROOT = Path(__file__).resolve().parent.parent


def _train(out: Path, work: Path, steps: int, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toy.train_base", "--out", str(out), "--work", str(work), "--steps",
                           str(steps), "--batch", "4", "--ckpt_every", "1", "--log_every", "1", "--threads", "1",
                           *extra], cwd=ROOT, check=check, capture_output=True, text=True)


@pytest.mark.slow
def test_base_training_is_deterministic_and_resumes(tmp_path):
    _train(tmp_path / "a", tmp_path / "wa", 3)
    _train(tmp_path / "b", tmp_path / "wb", 2)  # stops after step 2 …
    _train(tmp_path / "b", tmp_path / "wb", 3)  # … and resumes from its checkpoint (steps < warm-up: same lr)
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert sha256(tmp_path / "a" / part) == sha256(tmp_path / "b" / part), part
    assert check_manifest(tmp_path / "a") == []


@pytest.mark.slow
def test_a_checkpoint_does_not_resume_into_another_world(tmp_path):
    _train(tmp_path / "a", tmp_path / "w", 2, "--texture", "40")
    r = _train(tmp_path / "a", tmp_path / "w", 2, check=False)  # the same folder, now without the stripes
    assert r.returncode != 0 and "--texture 40.0 → 0.0" in r.stderr and "another --work" in r.stderr
    _train(tmp_path / "a", tmp_path / "w", 3, "--texture", "40")  # the same world, a longer run: resumes


def _build(out: Path, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(["bash", "scripts/build_toy.sh", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable, "TOY_ONLY": "^$", **env})


@pytest.mark.slow
def test_build_toy_skips_only_what_was_made_with_the_asked_settings(tmp_path):
    import shutil

    out = tmp_path / "weights"  # the committed world's manifests (no weights are needed to decide what to skip)
    shutil.copytree(ROOT / "toy" / "weights", out, ignore=shutil.ignore_patterns("*.safetensors"))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = _build(out)  # the defaults are the committed world: every stage exists and is skipped
    assert r.returncode == 0 and "base: exists, skipped" in r.stdout and "oracle_lam2_seed2: exists" in r.stdout
    r = _build(out, TOY_TEXTURE="0")  # a variant asked for: the textured base must not be taken for it
    assert r.returncode == 2 and "base exists and was made with other settings: texture 60.0 (this build: 0)" in r.stderr
    assert "another --out" in r.stderr
    r = _build(out, TOY_KL_ALIGN="30")
    assert r.returncode == 2 and "adapters/alignment exists" in r.stderr and "kl_weight 10.0 (this build: 30)" in r.stderr
    r = _build(out, TOY_LR_ALIGN="5e-3")  # v3.0's alignment recipe asked for: v3.1's adapter must not stand in for it
    assert r.returncode == 2 and "config.learning_rate 0.01 (this build: 5e-3)" in r.stderr
    r = _build(out, TOY_LR="1e2-")  # a typo in a knob stops the build before anything runs, naming the knob
    assert r.returncode == 2 and "TOY_LR=1e2- is not a number" in r.stderr and "stage" not in r.stdout
    r = _build(out, TOY_LR="1e-2")  # a longer-trained oracle asked for: the committed ones must not stand in for it
    assert r.returncode == 2 and "oracles/w0.5/seed0 exists" in r.stderr
    assert "config.learning_rate 0.005 (this build: 1e-2)" in r.stderr
    # an adapter is also checked against the reward it was trained on (v2's compressibility adapter climbed the
    # uncapped smoothness)
    m = out / "adapters" / "compressibility" / "manifest.json"
    m.write_text(m.read_text().replace('"toy_smoothness_capped_z": 1.0', '"toy_smoothness": 83.6'))
    r = _build(out)
    assert r.returncode == 2 and "rewards.toy_smoothness_capped_z 0 (this build: 1)" in r.stderr
    before[m] = m.read_bytes()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing was written or deleted
