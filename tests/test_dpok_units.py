"""DPOK building blocks on hand-picked values: losses, the DDIM log-probability, the value net, the
buffer, the configuration and its errors, checkpoint atomicity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from diffusion.ddim import ddim_step_with_logprob
from dpok import checkpoint as ckpt
from dpok.buffer import ReplayBuffer
from dpok.config import TrainConfig, parse_args, parse_reward_spec, validate
from dpok.losses import dpok_loss, kl_penalty, normalise_advantage, policy_loss, value_loss
from dpok.value import ValueMulti

SD15 = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            clip_sample=False, set_alpha_to_one=False, steps_offset=1)


# ----------------------------------------------------------------------------- losses
def test_policy_loss_hand_values():
    adv = torch.tensor([1.0, -2.0])
    old = torch.tensor([0.0, 0.0])
    logp = torch.tensor([0.1, 0.0], requires_grad=True)
    loss, ratio = policy_loss(adv, logp, old, ratio_clip=0.2, reward_weight=10.0)
    assert torch.allclose(ratio, torch.tensor([math.exp(0.1), 1.0]))
    assert loss.item() == pytest.approx(-10.0 * (math.exp(0.1) * 1.0 + 1.0 * -2.0) / 2)
    loss.backward()  # inside the clip: d/dlogp = −w · adv · ratio / B
    assert torch.allclose(logp.grad, torch.tensor([-10 * 1.0 * math.exp(0.1) / 2, -10 * -2.0 / 2]))


def test_policy_loss_clip_stops_the_gradient():
    logp = torch.tensor([0.5, -0.5], requires_grad=True)
    loss, ratio = policy_loss(torch.tensor([1.0, 1.0]), logp, torch.zeros(2), ratio_clip=1e-4, reward_weight=1.0)
    assert torch.allclose(ratio, torch.tensor([1 + 1e-4, 1 - 1e-4]))
    assert loss.item() == pytest.approx(-1.0)
    loss.backward()
    assert torch.equal(logp.grad, torch.zeros(2))


def test_kl_and_total_loss_hand_values():
    eps = torch.tensor([[1.0, 2.0]])
    pre = torch.tensor([[0.0, 0.0]])
    assert kl_penalty(eps, pre).item() == pytest.approx(2.5)  # mean(1, 4)
    out = dpok_loss(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([0.0]), eps, pre,
                    ratio_clip=1e-4, reward_weight=1000.0, kl_weight=0.1)
    assert out["loss"].item() == pytest.approx(-1000 * 2.0 + 0.1 * 2.5)
    off = dpok_loss(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([0.0]), eps, pre,
                    ratio_clip=1e-4, reward_weight=1000.0, kl_weight=0.1, use_kl=False)  # KL warm-up
    assert off["loss"].item() == pytest.approx(-2000.0)
    assert value_loss(torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 0.0])).item() == pytest.approx(5.0)


def test_advantage_normalisation():
    r = torch.tensor([1.0, 3.0, 10.0, 20.0])
    assert torch.equal(normalise_advantage(r, "none"), r)
    assert torch.allclose(normalise_advantage(r, "prompt", 2), torch.tensor([-1.0, 1.0, -1.0, 1.0]), atol=1e-6)
    assert normalise_advantage(r, "batch").mean().abs() < 1e-6


# ----------------------------------------------------------------------------- log-probability
def test_logprob_computed_by_hand():
    sched = DDIMScheduler(**SD15)
    sched.set_timesteps(10)  # 901, 801, ..., 1
    t, t_prev = 501, 401
    a_t, a_p = float(sched.alphas_cumprod[t]), float(sched.alphas_cumprod[t_prev])
    x = torch.tensor([0.5, -1.0]).view(1, 1, 2, 1)
    eps = torch.tensor([0.1, 0.3]).view(1, 1, 2, 1)
    prev = torch.tensor([0.45, -0.7]).view(1, 1, 2, 1)
    sigma = math.sqrt((1 - a_p) / (1 - a_t) * (1 - a_t / a_p))  # eta = 1
    lps = []
    for xi, ei, pi in zip([0.5, -1.0], [0.1, 0.3], [0.45, -0.7]):
        x0 = (xi - math.sqrt(1 - a_t) * ei) / math.sqrt(a_t)
        mu = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p - sigma**2) * ei
        lps.append(-((pi - mu) ** 2) / (2 * sigma**2) - math.log(sigma) - 0.5 * math.log(2 * math.pi))
    _, lp = ddim_step_with_logprob(sched, eps.double(), t, x.double(), 1.0, prev_sample=prev.double())
    assert lp.shape == (1,)
    assert lp.item() == pytest.approx(sum(lps) / 2, rel=1e-6)  # DPOK: mean over elements, not sum


# ----------------------------------------------------------------------------- value net
def test_value_net_shapes_sd15_and_tiny():
    v = ValueMulti(50, (4, 64, 64), text_dim=768)
    assert v.lin1.lin.weight.shape == (256, 4 * 64 * 64 + 768)  # DPOK: 17152 → 256
    assert v.lin1.embed.weight.shape == (50, 256) and v.lin4.weight.shape == (1, 256)
    small = ValueMulti(4, (4, 8, 8), text_dim=32)
    out = small(torch.randn(3, 4, 8, 8), torch.randn(3, 32), torch.tensor([0, 1, 3]))
    assert out.shape == (3, 1)


# ----------------------------------------------------------------------------- buffer
def test_buffer_keeps_the_newest_and_samples_without_replacement():
    buf = ReplayBuffer(capacity=5)
    for k in range(3):
        n = 3
        buf.add(torch.full((n, 1, 1, 1), float(k)), torch.zeros(n, 1, 1, 1), torch.arange(n), torch.ones(n),
                torch.zeros(n), [f"p{k}"] * n)
    assert len(buf) == 5 and buf.prompts == ["p1", "p1", "p2", "p2", "p2"]
    b = buf.sample(5, np.random.default_rng(0))
    assert sorted(b.state.flatten().tolist()) == [1, 1, 2, 2, 2]
    assert len(buf.sample(100, np.random.default_rng(0)).prompts) == 5


# ----------------------------------------------------------------------------- config
README_COMMAND = ("--p_batch_size 2 --reward_weight 1000 --kl_weight 0.1 --learning_rate 1e-5 --single_flag 0 "
                  "--prompt_path ./dataset/test_prompts.json --gradient_accumulation_steps 12 --clip_norm 0.1 "
                  "--g_batch_size 6 --multi_gpu 1 --max_train_steps 100000 --v_flag 1 --cache_dir .cache/").split()


def test_original_command_parses_with_its_meanings():
    cfg, ignored = parse_args(README_COMMAND)
    assert ignored == []
    assert (cfg.p_batch_size, cfg.reward_weight, cfg.kl_weight, cfg.learning_rate) == (2, 1000.0, 0.1, 1e-5)
    assert (cfg.single_flag, cfg.prompt_path, cfg.gradient_accumulation_steps) == (0, "./dataset/test_prompts.json", 12)
    assert (cfg.clip_norm, cfg.g_batch_size, cfg.v_flag, cfg.cache_dir) == (0.1, 6, 1, ".cache/")
    assert cfg.num_iterations() == 100000 // 5  # DPOK: max_train_steps // p_step outer iterations
    assert cfg.base_model == "stable-diffusion-v1-5/stable-diffusion-v1-5" and cfg.reward == "image_reward"
    assert (cfg.eta, cfg.guidance_scale, cfg.num_inference_steps, cfg.ratio_clip, cfg.buffer_size) == \
        (1.0, 7.5, 50, 1e-4, 1000)
    validate(cfg)


def test_aliases_and_legacy_flags():
    cfg, ignored = parse_args(["--pretrained_model_name_or_path", "x/y", "--resume_from_checkpoint", "latest",
                               "--use_ema", "True", "--gradient_checkpointing", "False"])
    assert cfg.base_model == "x/y" and cfg.resume == "latest" and cfg.gradient_checkpointing is False
    assert len(ignored) == 1 and "--use_ema" in ignored[0] and "no effect" in ignored[0]


def test_reward_spec():
    assert parse_reward_spec("brightness") == {"brightness": 1.0}
    assert parse_reward_spec("a:0.5, b:0.5") == {"a": 0.5, "b": 0.5}
    with pytest.raises(ValueError, match="NAME:W"):
        parse_reward_spec("a:x")


@pytest.mark.parametrize("kw, match", [
    (dict(eta=0.0), "eta > 0"),
    (dict(single_flag=0), "--prompt_path"),
    (dict(samples_per_iteration=7, num_samples=2), "multiple of 2"),
    (dict(g_batch_size=3, rollout_chunk=2), "divisor of 3"),
    (dict(advantage_norm="prompt"), "--num_samples 2"),
    (dict(max_train_steps=3), "--iterations"),
    (dict(p_batch_size=0), "p_batch_size"),
])
def test_impossible_settings_name_the_fix(kw, match):
    with pytest.raises(ValueError, match=match):
        validate(TrainConfig(**kw))


def test_samples_per_iteration_sets_g_batch_size():
    cfg = TrainConfig(samples_per_iteration=8, num_samples=2)
    validate(cfg, num_processes=2)
    assert cfg.g_batch_size == 2


# ----------------------------------------------------------------------------- checkpoints
def test_incomplete_checkpoint_is_never_latest(tmp_path):
    good = ckpt.begin(tmp_path, 2)
    ckpt.save_rank_state(good, 0, {"x": 1})
    ckpt.finish(tmp_path, 2, {"iteration": 2})
    half = ckpt.begin(tmp_path, 3)  # a crash while writing checkpoint 3
    ckpt.save_rank_state(half, 0, {"x": 1})
    (tmp_path / "checkpoint-4").mkdir()  # a directory without the marker
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert ckpt.resolve_resume("latest", tmp_path) == tmp_path / "checkpoint-2"
    with pytest.raises(FileNotFoundError, match="COMPLETE"):
        ckpt.resolve_resume(str(tmp_path / "checkpoint-4"), tmp_path)
    with pytest.raises(FileNotFoundError, match="no complete"):
        ckpt.resolve_resume("latest", tmp_path / "empty")
