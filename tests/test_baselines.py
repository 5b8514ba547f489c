"""The inference-time baselines (blend.baselines): exact costs, identities, and that each one raises its reward."""

from __future__ import annotations

import math

import pytest
import torch

from blend.baselines.costs import code_branch_steps, size_for_budget
from blend.baselines.dispatch import sample_any
from blend.sampler import SamplerConfig
from blend.spec import BlendSpec
from rewards import get_reward

PROMPTS = ["a red circle on a blue background", "a green square"] * 8
SEEDS = list(range(16))
CFG = SamplerConfig(steps=5, guidance=5.0, eta=1.0)
BRIGHT = dict(rewards=("brightness",), weights=(1.0,))


class Counter:
    """Counts real work: UNet image-evaluations (CFG pair = 1) and backward passes, decoded images, reward images."""

    def __init__(self, bundle):
        self.forward_rows = self.backward_rows = self.decoded = 0
        self.bundle = bundle
        self.h1 = bundle.unet.register_forward_hook(self._fwd)
        self.h2 = bundle.unet.conv_in.register_full_backward_hook(self._bwd)  # the first layer: x_t's gradient
        self._decode = bundle.decode
        bundle.decode = self._count_decode

    def _fwd(self, _m, args, _out):
        self.forward_rows += args[0].shape[0] // 2

    def _bwd(self, _m, grad_in, _grad_out):
        self.backward_rows += grad_in[0].shape[0] // 2

    def _count_decode(self, x):
        self.decoded += x.shape[0]
        return self._decode(x)

    def close(self):
        self.h1.remove()
        self.h2.remove()
        self.bundle.decode = self._decode


class CountingReward:
    def __init__(self, name):
        self.inner, self.images = get_reward(name), 0

    def __call__(self, images, prompts):
        self.images += images.shape[0]
        return self.inner(images, prompts)


def run_counted(bundle, spec, n=2):
    reward = CountingReward(spec.rewards[0])
    counter = Counter(bundle)
    try:
        res = sample_any(bundle, spec, PROMPTS[:n], SEEDS[:n], CFG, {spec.rewards[0]: reward})
    finally:
        counter.close()
    return res, counter, reward


@pytest.mark.parametrize("method,opts", [("bon", {"N": 3}), ("code", {"N": 4, "B": 2}), ("code", {"N": 3, "B": 5}),
                                         ("rgg", {}), ("smc", {"K": 3})])
def test_costs_are_what_the_algorithm_implies_and_what_ran(tiny_bundle, method, opts):
    spec = BlendSpec(method, **BRIGHT, options=opts)
    res, counter, reward = run_counted(tiny_bundle, spec)
    T, n = CFG.steps, 2
    c = res.costs[0]
    assert all(ci == c for ci in res.costs)
    if method == "bon":
        expect = dict(unet_forwards=3 * T, unet_backwards=0, vae_decodes=3, reward_evals=3, reward_grads=0)
    elif method == "code":
        s = code_branch_steps(T, opts["B"])
        assert s == math.ceil((T - 1) / opts["B"])
        expect = dict(unet_forwards=T + opts["N"] * s, unet_backwards=0, vae_decodes=opts["N"] * s + 1,
                      reward_evals=opts["N"] * s, reward_grads=0)
    elif method == "rgg":  # one backward pass per step
        expect = dict(unet_forwards=T, unet_backwards=T, vae_decodes=T + 1, reward_evals=T, reward_grads=T)
    else:
        k = opts["K"]
        expect = dict(unet_forwards=k * T, unet_backwards=k * T, vae_decodes=k * (T + 1), reward_evals=k * (T + 1),
                      reward_grads=k * T)
    assert c == expect
    # the counters agree with what actually ran (final images are decoded once more by nobody else)
    assert counter.forward_rows == n * c["unet_forwards"]
    assert counter.backward_rows == n * c["unet_backwards"]
    assert counter.decoded == n * c["vae_decodes"]
    assert reward.images == n * c["reward_evals"]


def test_bon_with_one_sample_and_code_with_one_candidate_are_plain_sampling(tiny_bundle):
    base = sample_any(tiny_bundle, BlendSpec("base"), PROMPTS[:4], SEEDS[:4], CFG)
    for spec in (BlendSpec("bon", **BRIGHT, options={"N": 1}), BlendSpec("code", **BRIGHT, options={"N": 1, "B": 2})):
        assert torch.equal(sample_any(tiny_bundle, spec, PROMPTS[:4], SEEDS[:4], CFG).images, base.images)


def test_bon_over_mpa_with_one_sample_is_db_mpa(tiny_with_adapters):
    bundle, _ = tiny_with_adapters
    w = dict(weights=(0.3, 0.7), rewards=("brightness", "colorfulness"))
    for bon, plain in (("bon_mpa", "mpa"), ("bon_ls", "mpa_ls")):
        got = sample_any(bundle, BlendSpec(bon, ("a", "b"), options={"N": 1}, **w), PROMPTS[:3], SEEDS[:3], CFG)
        ref = sample_any(bundle, BlendSpec(plain, ("a", "b"), (0.3, 0.7)), PROMPTS[:3], SEEDS[:3], CFG)
        assert torch.equal(got.images, ref.images)
        assert got.costs[0]["unet_forwards"] == ref.costs[0]["unet_forwards"] == (2 if plain == "mpa" else 1) * 5


def test_smc_with_one_particle_is_rgg(tiny_bundle):
    rgg = sample_any(tiny_bundle, BlendSpec("rgg", **BRIGHT, options={"gamma": 0.5}), PROMPTS[:3], SEEDS[:3], CFG)
    for ess in (0.5, 0.0):
        smc = sample_any(tiny_bundle, BlendSpec("smc", **BRIGHT, options={"gamma": 0.5, "K": 1, "ess": ess}),
                         PROMPTS[:3], SEEDS[:3], CFG)
        assert torch.equal(smc.images, rgg.images)


@pytest.fixture(scope="module")
def bright_base():
    from diffusion.tiny import make_tiny_sd

    bundle = make_tiny_sd(seed=0, latent_size=8)
    return bundle, sample_any(bundle, BlendSpec("base"), PROMPTS, SEEDS, CFG).images.mean(dim=(1, 2, 3))


@pytest.mark.parametrize("method,opts", [("bon", {"N": 8}), ("code", {"N": 8, "B": 1}), ("rgg", {"gamma": 1.0}),
                                         ("smc", {"K": 4, "gamma": 1.0, "kl": 1e-4})])
def test_each_baseline_raises_brightness_over_plain_sampling(bright_base, method, opts):
    bundle, base = bright_base
    res = sample_any(bundle, BlendSpec(method, **BRIGHT, options=opts), PROMPTS, SEEDS, CFG)
    d = res.images.mean(dim=(1, 2, 3)) - base  # paired: same prompts and seeds
    mean, se = d.mean().item(), (d.std() / math.sqrt(len(d))).item()
    assert mean > 4 * se > 0, (mean, se)


def test_guidance_needs_differentiable_rewards_and_accepts_a_surrogate(tiny_bundle):
    spec = BlendSpec("rgg", rewards=("brightness", "jpeg_compressibility"), weights=(0.5, 0.5))
    with pytest.raises(ValueError, match="jpeg_compressibility.*not differentiable.*Differentiable rewards:.*brightness"):
        sample_any(tiny_bundle, spec, PROMPTS[:1], SEEDS[:1], CFG)
    spec = BlendSpec("rgg", rewards=("brightness", "jpeg_compressibility"), weights=(0.5, 0.5),
                     options={"surrogate": "jpeg_compressibility=toy_smoothness:0.01"})
    res = sample_any(tiny_bundle, spec, PROMPTS[:1], SEEDS[:1], CFG)
    assert res.costs[0]["unet_backwards"] == 2 * CFG.steps  # one per reward per step


def test_budget_sizing():
    assert size_for_budget("bon", 100, 50) == 2 and size_for_budget("bon_mpa", 100, 50, evals_per_step=2) == 1
    assert size_for_budget("code", 100, 50, block=5) == 5  # 50 + 5·10 = 100
    assert size_for_budget("smc", 100, 50) == 2 and size_for_budget("smc", 10, 50) == 1
    with pytest.raises(ValueError, match="no size"):
        size_for_budget("rgg", 100, 50)


def test_spec_validation():
    with pytest.raises(ValueError, match="takes no adapters"):
        BlendSpec("code", ("a",), (1.0,), rewards=("brightness",))
    with pytest.raises(ValueError, match="sum to 1"):
        BlendSpec("bon", rewards=("brightness", "colorfulness"), weights=(0.5, 0.6))
    with pytest.raises(ValueError, match="one adapter per reward"):
        BlendSpec("bon_mpa", ("a", "b"), (0.5, 0.5), rewards=("brightness",))
    with pytest.raises(ValueError, match="baselines"):
        BlendSpec("mpa", ("a", "b"), (0.5, 0.5), options={"N": 2})
    s = BlendSpec("code", rewards=("brightness",), weights=(1.0,), options={"N": 20, "B": 5})
    assert s.label == "code_B5_N20_brightness1" and "CoDe" in s.display_name


def test_run_db_budget_sizes_every_baseline_to_db_mpa_cost(tmp_path):
    import json

    from blend.cli import main

    args = ["--base_model", "builtin:tiny", "--prompts", "a cat", "--n_seeds", "1", "--steps", "3",
            "--rewards", "brightness,colorfulness", "--methods", "base,mpa,bon,code,smc,rgg", "--budget", "auto",
            "--code_block", "1", "--no_grids", "--out_dir", str(tmp_path)]
    assert main(args) == 0
    rows = {r["method"]: r for r in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    budget = rows["mpa"]["costs"]["unet_forwards"]
    assert budget == 2 * 3  # m·T
    assert rows["bon"]["options"]["N"] == 2 and rows["smc"]["options"]["K"] == 2
    assert rows["code"]["options"]["N"] == 1  # T + N·S ≤ 6 with S = 2 branch steps
    for m in ("bon", "code", "smc", "rgg"):
        assert rows[m]["costs"]["unet_forwards"] <= budget
    assert rows["rgg"]["costs"]["unet_backwards"] == 2 * 3  # one per reward per step
    assert "fwd / bwd / dec / rew / ∇r" in (tmp_path / "summary.md").read_text()


def test_smc_with_a_deterministic_last_step_stays_finite(tiny_bundle):
    """set_alpha_to_one (the toy world's scheduler) makes the last step's σ zero; the weights must stay finite."""
    from diffusers import DDIMScheduler

    tiny_bundle.scheduler = DDIMScheduler.from_config({**tiny_bundle.scheduler.config, "set_alpha_to_one": True})
    res = sample_any(tiny_bundle, BlendSpec("smc", **BRIGHT, options={"K": 3, "kl": 1e-3, "gamma": 1.0}),
                     PROMPTS[:2], SEEDS[:2], CFG)
    assert torch.isfinite(res.images).all()
