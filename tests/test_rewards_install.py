"""install_image_reward.sh: installs from a local mirror (then the reward loads from the cache layout) and fails
with a clear message when neither the mirror nor the hub is reachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from test_rewards_image_reward import MED_CONFIG, VHEADS, official_state_dict

from rewards import get_reward

ROOT = Path(__file__).resolve().parents[1]


def run(*args, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(["bash", str(ROOT / "install_image_reward.sh"), "--python", sys.executable, *args],
                          capture_output=True, text=True, env=env)


def test_install_from_mirror_then_load(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    torch.save(official_state_dict(), mirror / "ImageReward.pt")
    (mirror / "med_config.json").write_text(json.dumps(MED_CONFIG))
    out = run("--cache_dir", str(tmp_path / "cache"), "--mirror", str(mirror))
    assert out.returncode == 0, out.stderr
    assert "vendored copy" in out.stdout and "checked" in out.stdout
    d = tmp_path / "cache" / "ImageReward"
    assert {p.name for p in d.iterdir() if not p.name.startswith(".")} == {"ImageReward.pt", "med_config.json",
                                                                           "vocab.txt"}
    scorer = get_reward("image_reward", cache_dir=tmp_path / "cache", vision_heads=VHEADS)
    assert scorer(torch.rand(1, 3, 32, 32), ["a cat"]).shape == (1,)


def test_install_fails_clearly_without_sources(tmp_path):
    out = run("--cache_dir", str(tmp_path / "cache"), "--mirror", str(tmp_path / "empty"))
    assert out.returncode == 1
    assert "could not fetch: ImageReward.pt" in out.stderr and "HF_HUB_OFFLINE=1" in out.stderr
    assert "--mirror" in out.stderr


def test_install_rejects_wrong_file(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    torch.save({"layers.0.weight": torch.zeros(2)}, mirror / "ImageReward.pt")
    (mirror / "med_config.json").write_text(json.dumps(MED_CONFIG))
    out = run("--cache_dir", str(tmp_path / "cache"), "--mirror", str(mirror))
    assert out.returncode != 0 and "not the ImageReward v1.0 checkpoint" in out.stderr
    assert not (tmp_path / "cache" / "ImageReward" / "ImageReward.pt").exists()
