"""toy.stats: the base model's reward statistics that put the toy's rewards on one scale (python -m toy.stats)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffusion.loading import load_bundle
from toy.stats import reward_stats

ROOT = Path(__file__).resolve().parents[1]


def test_reward_stats_is_the_mean_and_std_of_base_samples():
    bundle = load_bundle(str(ROOT / "toy" / "weights" / "base"))
    prompts = ["a red circle on a blue background", "a green square on a yellow background"]
    got = reward_stats(bundle, prompts, ("toy_smoothness", "brightness"), steps=2, n=4, seed=3)
    again = reward_stats(bundle, prompts, ("toy_smoothness",), steps=2, n=4, seed=3)
    assert got["toy_smoothness"] == again["toy_smoothness"]  # the same prompts and seeds whatever else is measured
    assert set(got) == {"toy_smoothness", "brightness"}
    for v in got.values():
        assert v["std"] > 0 and v["mean"] == v["mean"]
    # the statistic of a reward the toy knows is in its documented range (−TV of a 32-px image is in [−2, 0])
    assert -2 <= got["toy_smoothness"]["mean"] <= 0


@pytest.mark.parametrize("flags, message", [(["--rewards", " , "], "--rewards is empty"),
                                           (["--other_steps", "50,fifty"], "give step counts separated by commas")])
def test_bad_flags_are_clear_errors(tmp_path, flags, message):
    out = tmp_path / "stats.json"
    p = subprocess.run([sys.executable, "-m", "toy.stats", *flags, "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert p.returncode != 0 and message in p.stderr
    assert not out.exists()


def test_committed_extra_stats_match_the_sweeps_scales():
    """The m = 3 / 4 sweeps divide colourfulness and brightness by the σ stored beside their adapters."""
    from blend.sweeps import toy_world

    path = ROOT / "toy" / "weights" / "adapters" / "extra_reward_stats.json"
    stats = json.loads(path.read_text())
    world = toy_world(1)
    assert world.scales == {r: stats[r]["std"] for r in ("colorfulness", "brightness")}
    assert stats["sampler"]["guidance"] == 2.0
