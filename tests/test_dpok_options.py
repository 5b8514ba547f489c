"""The trainer's options for small sample budgets (dpok/options.py): hand-computed per-prompt
normalisation, unbiased timestep subsampling, policy epochs, value warm-up, deterministic steps left
out, and a seconds-long sign test on the tiny model with the paper's ratio clip (1e-4) switched on."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from diffusion.tiny import make_tiny_sd
from dpok.config import TrainConfig, validate
from dpok.options import PerPromptStats, epoch_minibatches, step_stds, subsample_steps, subset_mean, trainable_steps
from dpok.trainer import Trainer

SQ83 = math.sqrt(8 / 3)  # population std of {1, 3, 5}, of {3, 5, 7}


def test_per_prompt_running_normalisation_by_hand():
    st = PerPromptStats(buffer_size=3, min_count=2)
    # a: history [1, 3] → μ 2, σ 1; b: one reward < min_count → the batch's μ 3, σ √(8/3)
    adv = st.update(["a", "a", "b"], torch.tensor([1.0, 3.0, 5.0]))
    assert torch.allclose(adv, torch.tensor([-1.0, 1.0, 2 / SQ83]), atol=1e-5)
    # a: [1, 3, 5] → μ 3, σ √(8/3); b: [5, 7] → μ 6, σ 1
    adv = st.update(["a", "b"], torch.tensor([5.0, 7.0]))
    assert torch.allclose(adv, torch.tensor([2 / SQ83, 1.0]), atol=1e-5)
    # a keeps only its last 3: [3, 5, 7] → μ 5, σ √(8/3)
    adv = st.update(["a"], torch.tensor([7.0]))
    assert torch.allclose(adv, torch.tensor([2 / SQ83]), atol=1e-5)
    assert st.store == {"a": [3.0, 5.0, 7.0], "b": [5.0, 7.0]}
    with pytest.raises(ValueError, match="2 prompts but 1 rewards"):
        st.update(["a", "b"], torch.tensor([1.0]))


def test_per_prompt_stats_live_in_the_given_store():
    store: dict = {}
    PerPromptStats(4, 1, store).update(["p"], torch.tensor([2.0]))
    # a second tracker on the same store (a resumed run) continues from it: [2, 4] → μ 3, σ 1
    assert torch.allclose(PerPromptStats(4, 1, store).update(["p"], torch.tensor([4.0])), torch.tensor([1.0]),
                          atol=1e-5)


def test_timestep_subsampling_keeps_the_estimators_expectation():
    g = torch.tensor([0.3, -1.2, 2.5, 0.7, -0.4], dtype=torch.float64)  # per-step loss (or gradient) terms
    for k in (1, 2, 3, 5):
        subsets = list(itertools.combinations(range(5), k))
        expected = torch.stack([subset_mean(g, s) for s in subsets]).mean()
        assert torch.allclose(expected, g.mean(), atol=1e-12, rtol=0)  # exact: every subset equally likely
    # and the sampler draws every step with probability k/S (here 3/9), distinct and sorted
    rng, steps = np.random.default_rng(0), list(range(9))
    counts = np.zeros(9)
    for _ in range(20000):
        s = subsample_steps(steps, 3, rng)
        assert len(set(s)) == 3 and s == sorted(s)
        counts[s] += 1
    assert np.abs(counts / 20000 - 1 / 3).max() < 0.015  # 4.5 binomial standard errors
    assert subsample_steps([0, 2, 5], None, rng) == [0, 2, 5] and subsample_steps([0, 2], 7, rng) == [0, 2]


def test_epoch_minibatches_visit_every_transition_once_per_epoch():
    steps = epoch_minibatches(10, micro_batch=3, accumulation=2, epochs=2, rng=np.random.default_rng(1))
    assert [[len(m) for m in s] for s in steps] == [[3, 3], [3, 1], [3, 3], [3, 1]]
    seen = np.concatenate([m for s in steps for m in s])
    assert np.array_equal(np.bincount(seen, minlength=10), np.full(10, 2))
    assert sorted(np.concatenate([m for s in steps[:2] for m in s]).tolist()) == list(range(10))


def cfg(tmp_path, **kw) -> TrainConfig:
    args = dict(base_model="builtin:tiny", output_dir=str(tmp_path / "run"), reward="brightness",
                num_inference_steps=4, g_batch_size=2, p_step=1, gradient_accumulation_steps=2, p_batch_size=2,
                v_batch_size=8, v_step=1, iterations=1, seed=0, report_to="none", progress=False,
                save_interval=100, gradient_checkpointing=False)
    args.update(kw)
    return TrainConfig(**args)


def test_validation_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="--v_flag 1 or --v_warmup 0"):
        validate(cfg(tmp_path, v_warmup=1, v_flag=0, iterations=3))
    with pytest.raises(ValueError, match="leaves no policy iteration"):
        validate(cfg(tmp_path, v_warmup=2, iterations=2))
    with pytest.raises(ValueError, match="raise --buffer_size to at least 8"):
        validate(cfg(tmp_path, policy_epochs=1, buffer_size=7))
    with pytest.raises(ValueError, match="lower --stat_min_count"):
        validate(cfg(tmp_path, advantage_norm="prompt_running", stat_min_count=9, stat_buffer_size=8))
    with pytest.raises(ValueError, match="--policy_epochs must be ≥ 1"):
        validate(cfg(tmp_path, policy_epochs=0))


def test_deterministic_steps_are_left_out_and_subsets_kept(tmp_path):
    bundle = make_tiny_sd(seed=0, latent_size=8)
    # the toy's scheduler: the last step goes to ᾱ = 1, so it has std 0 and no log-probability
    bundle.scheduler = DDIMScheduler.from_config(bundle.scheduler.config, set_alpha_to_one=True, steps_offset=0)
    tr = Trainer(cfg(tmp_path, v_flag=0, num_inference_steps=4), bundle=bundle)
    ro = tr.rollout(0, 0)
    assert torch.isnan(ro["log_probs"][-1]).all() and torch.isfinite(ro["log_probs"][:-1]).all()
    assert tr.add_to_buffer(ro, 0, 0) == 2 * 3 and set(tr.buffer.data["step"].tolist()) == {0, 1, 2}
    tr2 = Trainer(cfg(tmp_path / "b", v_flag=0, train_timesteps=2), bundle=make_tiny_sd(seed=0, latent_size=8))
    assert tr2.add_to_buffer(tr2.rollout(0, 0), 0, 0) == 2 * 2
    assert torch.isfinite(tr2.buffer.data["log_prob"]).all()


def test_train_min_std_by_hand(tmp_path):
    # 4 DDIM steps of a 1000-step schedule whose betas are all 0.01 (ᾱ_t = 0.99^(t+1)), steps 750, 500, 250, 0,
    # set_alpha_to_one (ᾱ after the last step = 1): σ_k = √((1−ᾱ_t')/(1−ᾱ_t) (1 − ᾱ_t/ᾱ_t'))
    sched = DDIMScheduler(num_train_timesteps=1000, trained_betas=[0.01] * 1000, set_alpha_to_one=True,
                          steps_offset=0, clip_sample=False)
    sched.set_timesteps(4)
    a = [0.99 ** (t + 1) for t in (750, 500, 250, 0)] + [1.0]
    by_hand = [math.sqrt((1 - a[k + 1]) / (1 - a[k]) * (1 - a[k] / a[k + 1])) for k in range(4)]
    assert by_hand[3] == 0.0 and by_hand[2] == pytest.approx(math.sqrt(0.01 / (1 - 0.99**251) * (1 - 0.99**250)))
    assert step_stds(sched, 1.0) == pytest.approx(by_hand, abs=1e-6)
    assert step_stds(sched, 0.5) == pytest.approx([0.5 * s for s in by_hand], abs=1e-6)
    stds = [0.9, 0.3, 0.01, 0.0]  # like the toy's last steps
    assert trainable_steps(stds, 0.0) == [0, 1, 2] and trainable_steps(stds, 0.05) == [0, 1]
    assert trainable_steps(stds, 0.3) == [0, 1] and trainable_steps(stds, 0.31) == [0]
    with pytest.raises(ValueError, match="--train_min_std must be ≥ 0"):
        trainable_steps(stds, -1.0)
    # in the trainer: the tiny model's 4 steps; a floor between its two smallest stds drops the last step only
    tr = Trainer(cfg(tmp_path, v_flag=0), bundle=make_tiny_sd(seed=0, latent_size=8))
    floor = sorted(tr.step_std)[:2]
    tr2 = Trainer(cfg(tmp_path / "b", v_flag=0, train_min_std=sum(floor) / 2), bundle=make_tiny_sd(seed=0, latent_size=8))
    smallest = tr2.step_std.index(floor[0])
    assert tr2.add_to_buffer(tr2.rollout(0, 0), 0, 0) == 2 * 3
    assert smallest not in tr2.buffer.data["step"].tolist() and len(set(tr2.buffer.data["step"].tolist())) == 3
    with pytest.raises(ValueError, match="leaves no step to train on"):
        Trainer(cfg(tmp_path / "c", v_flag=0, train_min_std=2.0), bundle=make_tiny_sd(seed=0, latent_size=8))


def test_value_warmup_and_policy_epochs_count_their_steps(tmp_path):
    # 2 samples × 4 steps = 8 new transitions; epochs 2, micro-batches of 2, a step every 2 → 2 steps per epoch
    tr = Trainer(cfg(tmp_path, iterations=3, v_warmup=1, policy_epochs=2, advantage_norm="prompt_running",
                     num_samples=2, g_batch_size=1, stat_min_count=2), bundle=make_tiny_sd(seed=0, latent_size=8))
    metrics = []
    tr.after_iteration.append(lambda t, m: metrics.append(m))
    tr.train()
    assert tr.counters.optimizer_steps == 2 * 4  # iteration 0 only fits the value function
    assert tr.policy_steps_per_iteration() == 4  # the learning-rate schedule spans the steps actually taken
    assert "policy_loss" not in metrics[0] and "policy_loss" in metrics[1] and "value_loss" in metrics[0]
    assert len(tr.counters.extra["prompt_stats"]["A green colored rabbit."]) == 6
    for k in ("rollout_seconds", "reward_seconds", "value_seconds", "policy_seconds"):
        assert metrics[1][k] >= 0


def brightness_gain(bundle, n=32):
    from blend.sampler import SamplerConfig, sample
    from blend.spec import BlendSpec
    from dpok.trainer import ADAPTER

    sc = SamplerConfig(steps=4, guidance=7.5, eta=1.0)
    prompts, seeds = ["A green colored rabbit."] * n, list(range(1000, 1000 + n))
    d = (sample(bundle, BlendSpec("single", (ADAPTER,)), prompts, seeds, sc).images.mean((1, 2, 3))
         - sample(bundle, BlendSpec("base"), prompts, seeds, sc).images.mean((1, 2, 3)))
    return d.mean().item(), (d.std() / n**0.5).item()


def train_brightness(tmp_path, sign: int) -> tuple[float, float, float]:
    """16 iterations × 8 samples, one on-policy step each, DPOK's ratio clip 1e-4, per-prompt running
    normalisation (here over the last 8 rewards of the one prompt). → (gain, s.e., max clipped fraction)"""
    bundle = make_tiny_sd(seed=0, latent_size=8)
    c = cfg(tmp_path / str(sign), reward=f"brightness:{sign}", ratio_clip=1e-4, policy_epochs=1, p_batch_size=32,
            gradient_accumulation_steps=1, advantage_norm="prompt_running", stat_buffer_size=8, stat_min_count=8,
            g_batch_size=8, v_flag=0, iterations=16, learning_rate=3e-2, reward_weight=1.0, kl_weight=0.0)
    metrics = []
    tr = Trainer(c, bundle=bundle)
    tr.after_iteration.append(lambda t, m: metrics.append(m))
    tr.train()
    return *brightness_gain(bundle), max(m["ratio_clipped_frac"] for m in metrics)


@pytest.mark.slow
def test_sign_with_the_papers_ratio_clip(tmp_path):
    """With DPOK's ratio clip (1e-4) on, brightness follows the reward's sign: up for +brightness, down
    for −brightness, and the two runs differ by far more than their standard errors."""
    up, up_se, up_clip = train_brightness(tmp_path, 1)
    down, down_se, down_clip = train_brightness(tmp_path, -1)
    print(f"brightness gain: up {up:+.5f} ± {up_se:.5f}, down {down:+.5f} ± {down_se:.5f}")
    assert up_clip == 0.0 and down_clip == 0.0  # on-policy steps: the clip never binds
    assert up > 0 > down
    assert up - down > 8 * math.hypot(up_se, down_se)


def test_resume_is_exact_with_the_options(tmp_path):
    """Per-prompt statistics, policy epochs and subsampled timesteps survive a checkpoint: stopping at 2 and
    resuming to 3 gives the same LoRA, bit for bit, as running to 3."""
    from diffusion.lora import read_lora

    opts = dict(advantage_norm="prompt_running", stat_min_count=2, num_samples=2, g_batch_size=1, policy_epochs=2,
                train_timesteps=2, ratio_clip=0.2, v_flag=0, save_interval=1)
    full = Trainer(cfg(tmp_path / "full", iterations=3, **opts)).train()
    Trainer(cfg(tmp_path / "part", iterations=2, **opts)).train()
    resumed = Trainer(cfg(tmp_path / "part", iterations=3, resume="latest", **opts)).train()
    a, b = read_lora(full / "pytorch_lora_weights.safetensors"), read_lora(resumed / "pytorch_lora_weights.safetensors")
    assert a.A.keys() == b.A.keys() and all(torch.equal(a.A[k], b.A[k]) and torch.equal(a.B[k], b.B[k]) for k in a.A)
    sa = torch.load(full / "training_state.pt", weights_only=False)
    sb = torch.load(resumed / "training_state.pt", weights_only=False)
    assert sa["extra"]["prompt_stats"] == sb["extra"]["prompt_stats"]
    assert len(sa["extra"]["prompt_stats"]["A green colored rabbit."]) == 6
