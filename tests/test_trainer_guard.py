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


# --- the guard covers every setting that changes what is trained, derived from the config ------------------------

@pytest.mark.parametrize("change", [{"num_inference_steps": 4}, {"reward_filter": 1}, {"guidance_scale": 5.0},
                                    {"eta": 0.5}, {"seed": 7}, {"advantage_norm": "batch"}])
def test_resume_refuses_a_changed_sampling_or_reward_setting(one_run, tiny_dir, change):
    key = next(iter(change))
    with pytest.raises(ValueError, match=f"--{key} .* → .*Resume with the checkpoint's values,.* new --output_dir"):
        Trainer(small(one_run, tiny_dir, iterations=2, resume="latest", **change))


@pytest.fixture(scope="module")
def value_run(tmp_path_factory, tiny_dir):
    out = tmp_path_factory.mktemp("guard_v") / "run"
    Trainer(small(out, tiny_dir, v_flag=1)).train()
    return out


def test_changed_step_count_is_refused_even_when_allowed_not_a_size_mismatch(value_run, tiny_dir):
    """The value net, the buffer's step indices and the LoRA have their shapes: no --allow_changed_settings."""
    with pytest.raises(ValueError, match=r"--num_inference_steps 3 → 4.*new --output_dir"):
        Trainer(small(value_run, tiny_dir, v_flag=1, iterations=2, resume="latest", num_inference_steps=4,
                      allow_changed_settings=True))


def test_run_length_and_saving_settings_may_change_on_resume(tmp_path, one_run, tiny_dir):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(one_run, out)
    last = Trainer(small(out, tiny_dir, iterations=2, resume="latest", save_interval=1, checkpoints_total_limit=5,
                         log_interval=2, rollout_chunk=1, progress=False)).train()
    man = json.loads((last / "manifest.json").read_text())
    assert man["iteration"] == 2 and man["settings_changes"] == []


def test_allowed_eta_change_takes_effect_and_is_recorded(tmp_path, one_run, tiny_dir):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(one_run, out)
    trainer = Trainer(small(out, tiny_dir, iterations=2, resume="latest", eta=0.5, adam_beta2=0.99,
                            allow_changed_settings=True))
    assert trainer.optimizer.param_groups[0]["betas"] == (0.9, 0.99)
    last = trainer.train()
    (change,) = json.loads((last / "manifest.json").read_text())["settings_changes"]
    assert change["changes"] == {"eta": {"from": 1.0, "to": 0.5}, "adam_beta2": {"from": 0.999, "to": 0.99}}


def test_the_guard_is_derived_from_the_config_fields():
    """Every TrainConfig field is a training setting unless it is on the short, documented allow-list."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(ckpt.NOT_TRAINING_SETTINGS) <= names  # no stale entry
    assert all(why for why in ckpt.NOT_TRAINING_SETTINGS.values())
    assert set(ckpt.training_settings()) == names - set(ckpt.NOT_TRAINING_SETTINGS)
    assert len(ckpt.NOT_TRAINING_SETTINGS) <= 20
    # a flag added later is guarded without touching the guard; a checkpoint without it counts the default
    extended = dataclasses.make_dataclass("Extended", [("dummy_knob", float, dataclasses.field(default=1.0))],
                                          bases=(TrainConfig,))
    assert "dummy_knob" in ckpt.training_settings(extended)
    old = TrainConfig().to_dict()
    assert ckpt.changed_settings(old, dataclasses.asdict(extended()), extended) == {}
    new = dataclasses.asdict(extended(dummy_knob=2.0))
    assert ckpt.changed_settings(old, new, extended) == {"dummy_knob": {"from": 1.0, "to": 2.0}}
    with pytest.raises(ValueError, match=r"--dummy_knob 1.0 → 2.0"):
        ckpt.check_resume_settings("ckpt", ckpt.changed_settings(old, new, extended), allow=False)


def _other_value(value, name):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if value is None:
        return 3
    return {"algorithm": "draft", "advantage_norm": "batch", "reward_norm": "base_std",
            "mixed_precision": "bf16"}.get(name, value + "_other")


def test_every_training_setting_is_guarded():
    base = TrainConfig().to_dict()
    for name in ckpt.training_settings():
        new = {**base, name: _other_value(base[name], name)}
        changed = set(ckpt.changed_settings(base, new))
        assert name in changed and changed <= {name, "lora_alpha"}, name  # unset alpha follows the rank


def test_equal_spellings_are_not_changes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    base = TrainConfig().to_dict()
    same = [("base_model", "runwayml/stable-diffusion-v1-5", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
            ("base_model", "model", str(tmp_path / "model")), ("reward", "a:1,b:0.5", "a, b:0.5"),
            ("lora_targets", "to_q,to_k", "to_q, to_k"), ("lora_alpha", None, 4.0), ("reward_weight", 100, 100.0)]
    for key, a, b in same:
        assert ckpt.changed_settings({**base, key: a}, {**base, key: b}) == {}, key


def test_command_line_resume_with_a_changed_setting_exits_with_one_error_line(one_run, tiny_dir):
    """What a user runs: the run's own flags, plus --resume latest and one changed flag."""
    import dataclasses
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = small(one_run, tiny_dir, iterations=2, resume="latest", eta=0.5)
    argv = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is not None:
            argv += [f"--{f.name}", str(value).lower() if isinstance(value, bool) else str(value)]
    before = sorted(p.name for p in one_run.iterdir())
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, str(root / "train_online_pg.py"), *argv], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "--eta 1.0 → 0.5" in errors[0] and "--output_dir" in errors[0]
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in one_run.iterdir()) == before
