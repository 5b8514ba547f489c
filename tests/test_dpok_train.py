"""The DPOK trainer end to end on the tiny model (latent 8×8, 4 DDIM steps): checkpoints that
run_DB.py loads, exact resume, Ctrl-C, the direction of the gradient, the KL anchor, the DRaFT mode."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from conftest_dpok import tiny_train_config

from blend.sampler import SamplerConfig, sample
from blend.spec import BlendSpec
from diffusion.adapters import activate
from diffusion.bundle import save_bundle
from diffusion.loading import load_bundle
from diffusion.lora import load_adapter, read_lora
from diffusion.tiny import make_tiny_sd
from dpok import checkpoint as ckpt
from dpok.config import TrainConfig
from dpok.trainer import ADAPTER, Trainer

PROMPT = "A green colored rabbit."




@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return str(save_bundle(make_tiny_sd(seed=0, latent_size=8), tmp_path_factory.mktemp("tiny8") / "model"))


def small(out, base, **kw) -> TrainConfig:
    """A seconds-long configuration; the paper's values except the sizes."""
    return tiny_train_config(out, base, **{**dict(num_inference_steps=4, p_step=2, gradient_accumulation_steps=2,
                                                  v_batch_size=8, v_step=2, iterations=2), **kw})


def eps_of(bundle, adapter):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 4, 8, 8, generator=g)
    emb = bundle.encode_prompts([PROMPT] * 4)
    activate(bundle.unet, adapter)
    with torch.no_grad():
        return bundle.unet(x, 501, encoder_hidden_states=emb).sample


def lora_tensors(path):
    lw = read_lora(path)
    return {**{f"A.{k}": v for k, v in lw.A.items()}, **{f"B.{k}": v for k, v in lw.B.items()}}


def test_two_iterations_write_a_checkpoint_run_db_loads(tmp_path, tiny_dir):
    trainer = Trainer(small(tmp_path / "run", tiny_dir, save_legacy_bin=True, report_to="tensorboard",
                            gradient_checkpointing=True))
    last = trainer.train()
    assert last == tmp_path / "run" / "checkpoint-2" and ckpt.is_complete(last)
    for name in ("pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin", "manifest.json",
                 "training_state.pt"):
        assert (last / name).is_file()
    assert any((tmp_path / "run" / "logs").rglob("events.out.tfevents*"))
    man = json.loads((last / "manifest.json").read_text())
    assert man["config"]["reward"] == "brightness" and man["config"]["kl_weight"] == 0.01
    assert man["rewards"] == {"brightness": 1.0} and man["base_model"] == tiny_dir
    assert man["iteration"] == 2 and man["samples_seen"] == 4 and man["lora"]["rank"] == 4
    assert man["lora"]["targets"] == ["to_q", "to_k", "to_v", "to_out.0"]
    assert "versions" in man and "git_commit" in man
    # what run_DB.py --lora dpok=<dir> does: a fresh base model + load_adapter(unet, name, dir)
    fresh = load_bundle(tiny_dir)
    load_adapter(fresh.unet, "trained", last)
    ref = eps_of(trainer.bundle, ADAPTER)
    assert torch.allclose(eps_of(fresh, "trained"), ref, atol=1e-6)
    assert not torch.allclose(eps_of(fresh, None), ref, atol=1e-6)  # the adapter moved
    legacy = load_bundle(tiny_dir)
    load_adapter(legacy.unet, "legacy", last / "pytorch_lora_weights.bin")
    assert torch.allclose(eps_of(legacy, "legacy"), ref, atol=1e-5)


def test_resume_continues_exactly(tmp_path, tiny_dir):
    full = Trainer(small(tmp_path / "full", tiny_dir, iterations=4, save_interval=2)).train()
    Trainer(small(tmp_path / "part", tiny_dir, iterations=2)).train()
    resumed = Trainer(small(tmp_path / "part", tiny_dir, iterations=4, resume="latest")).train()
    a, b = lora_tensors(full / "pytorch_lora_weights.safetensors"), \
        lora_tensors(resumed / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = torch.load(full / "training_state.pt", weights_only=False)
    sb = torch.load(resumed / "training_state.pt", weights_only=False)
    assert torch.equal(sa["buffer"]["data"]["state"], sb["buffer"]["data"]["state"])
    assert all(torch.equal(sa["value"][k], sb["value"][k]) for k in sa["value"])
    assert json.loads((resumed / "manifest.json").read_text())["samples_seen"] == 8


def test_ctrl_c_saves_a_checkpoint_first(tmp_path, tiny_dir):
    trainer = Trainer(small(tmp_path / "run", tiny_dir, iterations=5))
    trainer.after_iteration.append(lambda t, m: signal.raise_signal(signal.SIGINT) if t.counters.iteration == 1
                                   else None)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert ckpt.latest_checkpoint(tmp_path / "run") == tmp_path / "run" / "checkpoint-1"
    man = json.loads((tmp_path / "run" / "checkpoint-1" / "manifest.json").read_text())
    assert man["iteration"] == 1 and not man["interrupted_mid_iteration"]


def test_errors_name_the_fix(tmp_path, tiny_dir):
    with pytest.raises(ValueError, match="known rewards"):
        Trainer(small(tmp_path, tiny_dir, reward="no_such_reward"))
    with pytest.raises(FileNotFoundError, match="neither a directory"):
        Trainer(small(tmp_path, "./missing/model/dir", reward="brightness"))
    with pytest.raises(ValueError, match="not differentiable"):
        Trainer(small(tmp_path / "d", tiny_dir, algorithm="draft", reward="jpeg_compressibility")).train()


# ----------------------------------------------------------------------------- does it learn?
LEARN = dict(num_inference_steps=4, g_batch_size=8, v_flag=0, advantage_norm="batch", iterations=8,
             learning_rate=3e-2, reward_weight=1.0, ratio_clip=1e9, p_step=2, gradient_accumulation_steps=2,
             p_batch_size=8, gradient_checkpointing=False)


def brightness_gain(bundle, n=32):
    """Paired (same prompt and seed) brightness difference fine-tuned − base: (mean, standard error)."""
    sc = SamplerConfig(steps=4, guidance=7.5, eta=1.0)
    prompts, seeds = [PROMPT] * n, list(range(1000, 1000 + n))
    base = sample(bundle, BlendSpec("base"), prompts, seeds, sc).images.mean((1, 2, 3))
    ft = sample(bundle, BlendSpec("single", (ADAPTER,)), prompts, seeds, sc).images.mean((1, 2, 3))
    d = ft - base
    return d.mean().item(), (d.std() / n**0.5).item()


def train_tiny(tmp_path, tag, **kw):
    bundle = make_tiny_sd(seed=0, latent_size=8)
    cfg = small(tmp_path / tag, "builtin:tiny", **{**LEARN, **kw})
    Trainer(cfg, bundle=bundle).train()
    eps_mse = ((eps_of(bundle, ADAPTER) - eps_of(bundle, None)) ** 2).mean().item()
    return brightness_gain(bundle), eps_mse


@pytest.mark.slow
def test_gradient_points_the_right_way_and_kl_anchors(tmp_path):
    (up, up_se), up_mse = train_tiny(tmp_path, "up", kl_weight=0.0)
    (down, down_se), _ = train_tiny(tmp_path, "down", kl_weight=0.0, reward="brightness:-1")
    (kl, _), kl_mse = train_tiny(tmp_path, "kl", kl_weight=10.0)
    print(f"brightness gain: up {up:+.5f}±{up_se:.5f}, down {down:+.5f}±{down_se:.5f}, kl=10 {kl:+.5f}; "
          f"eps-MSE vs base: kl=0 {up_mse:.4g}, kl=10 {kl_mse:.4g}")
    assert up > 4 * up_se and up > 0  # brightness rises above the base on fixed seeds
    assert down < -4 * down_se  # and falls when the reward is negated: the sign is the reward's
    assert kl_mse < 0.1 * up_mse and abs(kl) < 0.5 * up  # a larger kl_weight stays closer to the base


@pytest.mark.slow
def test_draft_mode_raises_a_differentiable_reward(tmp_path):
    bundle = make_tiny_sd(seed=0, latent_size=8)
    cfg = small(tmp_path / "draft", "builtin:tiny", algorithm="draft", g_batch_size=4, iterations=4, p_step=1,
                gradient_accumulation_steps=1, learning_rate=1e-2, reward_weight=1.0, kl_weight=0.0,
                reward_norm="base_std", clip_norm=1.0, gradient_checkpointing=False)
    last = Trainer(cfg, bundle=bundle).train()
    gain, se = brightness_gain(bundle)
    print(f"draft brightness gain {gain:+.5f}±{se:.5f}")
    assert gain > 4 * se and gain > 0
    assert json.loads((last / "manifest.json").read_text())["algorithm"] == "draft"
