"""train_online_pg.py never overwrites another run's checkpoints, and --resume refuses changed settings
unless allowed, in which case the manifest records the change and the new learning rate takes effect."""

from __future__ import annotations

import json

import pytest
from conftest_dpok import tiny_train_config

from diffusion.bundle import save_bundle
from diffusion.lora import content_sha256, read_lora
from diffusion.tiny import make_tiny_sd
from dpok import checkpoint as ckpt
from dpok.config import TrainConfig
from dpok.trainer import Trainer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(save_bundle(make_tiny_sd(seed=0, latent_size=8), tmp_path_factory.mktemp("tiny8g") / "model"))


def small(out, base, **kw) -> TrainConfig:
    return tiny_train_config(out, base, **{"v_flag": 0, **kw})


@pytest.fixture(scope="module")
def one_run(tmp_path_factory, tiny_dir):
    out = tmp_path_factory.mktemp("guard") / "run"
    Trainer(small(out, tiny_dir)).train()
    return out


def test_fresh_start_into_a_directory_with_checkpoints_is_refused(one_run, tiny_dir):
    before = (one_run / "checkpoint-1" / "pytorch_lora_weights.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="--resume latest.*--output_dir.*--overwrite_output_dir"):
        Trainer(small(one_run, tiny_dir, seed=7))
    assert (one_run / "checkpoint-1" / "pytorch_lora_weights.safetensors").read_bytes() == before


def test_overwrite_flag_starts_over(tmp_path, tiny_dir):
    out = tmp_path / "run"
    Trainer(small(out, tiny_dir, iterations=2, save_interval=1)).train()
    assert [n for n, _ in ckpt.list_checkpoints(out)] == [1, 2]
    Trainer(small(out, tiny_dir, seed=3, overwrite_output_dir=True)).train()
    assert [n for n, _ in ckpt.list_checkpoints(out)] == [1]  # checkpoint-2 of the other run is gone
    man = json.loads((out / "checkpoint-1" / "manifest.json").read_text())
    assert man["seed"] == 3


@pytest.mark.parametrize("change", [{"kl_weight": 0.5}, {"reward": "colorfulness"}, {"learning_rate": 1e-3},
                                    {"reward_weight": 3.0}])
def test_resume_refuses_changed_settings(one_run, tiny_dir, change):
    key = next(iter(change))
    with pytest.raises(ValueError, match=f"--{key} .*--allow_changed_settings"):
        Trainer(small(one_run, tiny_dir, iterations=2, resume="latest", **change))


def test_resume_refuses_another_lora_shape_even_when_allowed(one_run, tiny_dir):
    with pytest.raises(ValueError, match="LoRA shape"):
        Trainer(small(one_run, tiny_dir, iterations=2, resume="latest", lora_rank=2, allow_changed_settings=True))


def test_allowed_change_is_recorded_and_the_new_learning_rate_takes_effect(tmp_path, one_run, tiny_dir):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(one_run, out)
    trainer = Trainer(small(out, tiny_dir, iterations=2, resume="latest", learning_rate=1e-3, kl_weight=0.5,
                            allow_changed_settings=True))
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [1e-3]
    assert trainer.lr_scheduler.get_last_lr() == [1e-3]
    last = trainer.train()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [1e-3]
    man = json.loads((last / "manifest.json").read_text())
    (change,) = man["settings_changes"]
    assert change["iteration"] == 1
    assert change["changes"]["learning_rate"] == {"from": 1e-5, "to": 1e-3}
    assert change["changes"]["kl_weight"] == {"from": 0.01, "to": 0.5}
    assert man["kl_weight"] == 0.5
    assert man["adapter_sha256"] == content_sha256(read_lora(last))
