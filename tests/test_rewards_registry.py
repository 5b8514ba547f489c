"""Registry behaviour shared by all rewards: lazy import, listing with scales, errors, JPEG ordering."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import rewards
from rewards import get_reward, list_rewards
from rewards.checkpoints import MissingCheckpointError

EXPECTED = {"image_reward", "aesthetic", "pickscore", "pickscore_shifted", "hps", "clip_score", "vila",
            "jpeg_compressibility", "jpeg_incompressibility"}


def test_every_reward_is_listed_with_scale_and_meaning():
    infos = {r.name: r for r in list_rewards()}
    assert EXPECTED <= set(infos)
    for r in infos.values():
        assert r.scale and "higher" in r.scale.lower(), r.name
        assert r.description


def test_importing_the_registry_loads_no_model():
    code = ("import sys, rewards; heavy = [m for m in ('transformers', 'tensorflow', 'diffusers') if m in sys.modules];"
            "print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=rewards.__path__[0] + "/..")
    assert out.returncode == 0, out.stdout + out.stderr


def test_unknown_reward_name():
    with pytest.raises(KeyError, match="unknown reward 'imagereward'.*image_reward"):
        get_reward("imagereward")


@pytest.mark.parametrize("name", ["image_reward", "aesthetic", "pickscore", "hps", "clip_score", "vila"])
def test_missing_checkpoints_offline_name_file_place_and_install(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(MissingCheckpointError) as e:
        get_reward(name, cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert "not found" in msg and str(tmp_path / "cache") in msg and "Install it with:" in msg


def test_explicit_path_that_does_not_exist(tmp_path):
    with pytest.raises(MissingCheckpointError, match="given explicitly"):
        get_reward("hps", checkpoint=tmp_path / "nope.pt")


def test_jpeg_orders_flat_above_noisy():
    g = torch.Generator().manual_seed(0)
    flat = torch.full((1, 3, 64, 64), 0.5)
    noisy = torch.rand(1, 3, 64, 64, generator=g)
    images = torch.cat([flat, noisy])
    comp = get_reward("jpeg_compressibility")(images, ["a", "b"])
    incomp = get_reward("jpeg_incompressibility")(images, ["a", "b"])
    assert comp.shape == (2,) and comp[0] > comp[1]
    assert incomp[0] < incomp[1]
    torch.testing.assert_close(comp, -incomp)


def test_bad_image_shape_is_explained():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        get_reward("jpeg_compressibility")(torch.zeros(3, 8, 8), ["a"])
