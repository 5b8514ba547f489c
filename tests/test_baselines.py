"""The inference-time baselines (blend.baselines): exact costs, identities, and that each one raises its reward."""

from __future__ import annotations

import math

import pytest
import torch

from blend.baselines.costs import (
    BACKWARD_COST,
    BudgetTooSmall,
    code_branch_steps,
    forward_equivalents,
    size_for_budget,
)
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
    assert size_for_budget("smc", 500, 50) == 3  # K·(T + b·m·T) = 3·150 = 450 ≤ 500 < 600
    assert size_for_budget("rgg", 100, 50, n_rewards=2) == 12  # T + b·m·G = 50 + 4·12 = 98 ≤ 100 < 102
    assert size_for_budget("rgg", 1000, 50, n_rewards=2) == 50  # at most every step
    with pytest.raises(BudgetTooSmall, match="below bon's smallest cost, 50 fe"):
        size_for_budget("bon", 49, 50)
    with pytest.raises(BudgetTooSmall, match="below rgg's smallest cost, 54 fe"):
        size_for_budget("rgg", 53, 50, n_rewards=2)
    with pytest.raises(BudgetTooSmall, match="below smc's smallest cost, 52 fe"):
        size_for_budget("smc", 51.9, 50)


@pytest.mark.parametrize("budget", [20, 37, 64, 100, 151, 333, 1000])
@pytest.mark.parametrize("method,steps,m,block", [("bon", 10, 1, 5), ("bon_mpa", 10, 2, 5), ("code", 10, 1, 3),
                                                  ("code", 7, 2, 1), ("rgg", 10, 1, 5), ("rgg", 10, 2, 5),
                                                  ("smc", 10, 1, 5), ("smc", 8, 2, 5)])
def test_each_baseline_sized_cost_fits_the_budget_and_the_next_size_does_not(method, steps, m, block, budget):
    """The options run_DB.py makes for --budget: their cost (the method's cost model, in forward-equivalents)
    ≤ budget < the cost one size up (N, N, G; SMC's K, or its G when one particle is guided on fewer steps); a
    budget below the smallest size's cost is an error naming it."""
    import argparse

    from blend.baselines.options import add_baseline_args
    from blend.methods import get_method

    p = argparse.ArgumentParser()
    add_baseline_args(p)
    args = p.parse_args(["--code_block", str(block)])
    info, w = get_method(method), (1.0 / m,) * m
    rewards, adapters = ("brightness", "colorfulness")[:m], ("a", "b")[:m]

    def spec(opts):
        return info.make_spec(adapters, rewards, w, opts, {})

    try:
        opts = info.options(args, budget, steps, w)
    except BudgetTooSmall:
        smallest = {"bon": {"N": 1}, "bon_mpa": {"N": 1}, "code": {"N": 1, "B": block}, "rgg": {"G": 1},
                    "smc": {"K": 1, "G": 1}}[method]
        assert info.cost(spec(smallest), steps) > budget
        return
    sized = spec(opts)
    assert info.cost(sized, steps) <= budget
    key = "G" if "G" in opts else {"rgg": "G", "smc": "K"}.get(method, "N")
    up = {**opts, key: opts.get(key, steps) + 1}
    if key == "G" and up["G"] > steps:
        return  # every step guided: no larger size
    assert info.cost(spec(up), steps) > budget


def test_guided_cost_is_in_forward_equivalents():
    spec = BlendSpec("smc", rewards=("brightness", "colorfulness"), weights=(0.5, 0.5), options={"K": 3, "G": 4})
    assert spec.info.cost(spec, 10) == 3 * (10 + BACKWARD_COST * 2 * 4)
    rgg = BlendSpec("rgg", **BRIGHT)
    assert rgg.info.cost(rgg, 10) == 10 + BACKWARD_COST * 10
    assert forward_equivalents({"unet_forwards": 10, "unet_backwards": 3, "vae_decodes": 9}) == 10 + 3 * BACKWARD_COST


@pytest.mark.parametrize("method,opts", [("rgg", {"G": 2}), ("smc", {"K": 3, "G": 3})])
def test_guided_steps_costs_are_what_ran(tiny_bundle, method, opts):
    spec = BlendSpec(method, **BRIGHT, options=opts)
    res, counter, reward = run_counted(tiny_bundle, spec)
    T, n, g, k = CFG.steps, 2, opts["G"], opts.get("K", 1)
    looked = T if method == "smc" else g
    expect = dict(unet_forwards=k * T, unet_backwards=k * g, vae_decodes=k * (looked + 1),
                  reward_evals=k * (looked + (method == "smc")), reward_grads=k * g)
    assert res.costs[0] == expect
    assert counter.forward_rows == n * expect["unet_forwards"]
    assert counter.backward_rows == n * expect["unet_backwards"]
    assert counter.decoded == n * expect["vae_decodes"]
    assert reward.images == n * expect["reward_evals"]
    assert forward_equivalents(res.costs[0]) == spec.info.cost(spec, T)


def test_all_steps_guided_is_the_default(tiny_bundle):
    """G = T is the default RGG (no G option) bit for bit; G < T changes the images."""
    base = dict(**BRIGHT)
    ref = sample_any(tiny_bundle, BlendSpec("rgg", **base, options={"gamma": 1.0}), PROMPTS[:2], SEEDS[:2], CFG)
    same = sample_any(tiny_bundle, BlendSpec("rgg", **base, options={"gamma": 1.0, "G": CFG.steps}),
                      PROMPTS[:2], SEEDS[:2], CFG)
    fewer = sample_any(tiny_bundle, BlendSpec("rgg", **base, options={"gamma": 1.0, "G": 2}),
                       PROMPTS[:2], SEEDS[:2], CFG)
    assert torch.equal(same.images, ref.images) and not torch.equal(fewer.images, ref.images)


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


def _run_db(tmp_path, *extra):
    import json

    from blend.cli import main

    args = ["--base_model", "builtin:tiny", "--prompts", "a cat", "--n_seeds", "1", "--rewards",
            "brightness,colorfulness", "--no_grids", "--out_dir", str(tmp_path), *extra]
    rc = main(args)
    if rc != 0:
        return rc, {}
    return rc, {r["method"]: r for r in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}


def test_run_db_budget_sizes_every_baseline_to_db_mpa_cost(tmp_path):
    import json

    rc, rows = _run_db(tmp_path, "--steps", "4", "--methods", "base,mpa,bon,code,smc,rgg", "--budget", "auto",
                       "--code_block", "1")
    assert rc == 0
    budget = rows["mpa"]["costs"]["unet_forwards"]
    assert budget == 2 * 4  # m·T
    assert rows["bon"]["options"]["N"] == 2
    assert rows["code"]["options"]["N"] == 1  # T + N·S ≤ 8 with S = 3 branch steps
    assert rows["rgg"]["options"]["G"] == 1 and rows["smc"]["options"]["K"] == 1 and rows["smc"]["options"]["G"] == 1
    for m in ("bon", "code", "smc", "rgg"):
        assert forward_equivalents(rows[m]["costs"]) <= budget
    assert rows["rgg"]["costs"]["unet_backwards"] == 2 * 1  # one per reward per guided step
    table = (tmp_path / "summary.md").read_text()
    assert "fwd / bwd / dec / rew / ∇r" in table and "fe / image" in table
    summary = json.loads((tmp_path / "summary.json").read_text())
    rgg = next(s for s in summary.values() if s["method"] == "rgg")
    assert rgg["costs_per_image"]["forward_equivalents"] == 4 + BACKWARD_COST * 2


def test_run_db_budget_auto_with_a_surrogate_keeps_every_baseline_within_budget(tmp_path):
    """The brief's run: bon, code, rgg, smc sized to DB-MPA's m·T in fe; measured fe ≤ budget for each."""
    rc, rows = _run_db(tmp_path, "--steps", "10", "--methods", "bon,code,rgg,smc,mpa", "--budget", "auto",
                       "--rewards", "brightness,jpeg_compressibility",
                       "--guidance_surrogate", "jpeg_compressibility=toy_smoothness:0.01")
    assert rc == 0
    budget = 2 * 10
    assert rows["mpa"]["costs"]["unet_forwards"] == budget
    for m in ("bon", "code", "rgg", "smc"):
        fe = forward_equivalents(rows[m]["costs"])
        assert fe <= budget + 1e-9, (m, fe)
    assert rows["rgg"]["options"]["G"] == 2  # 10 + 2·2·2 = 18 ≤ 20 < 22


def test_run_db_budget_below_the_smallest_cost_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _run_db(tmp_path, "--steps", "3", "--methods", "mpa,rgg", "--budget", "auto")
    msg = str(exc.value)
    assert msg.startswith("error:") and "rgg" in msg and "7 fe" in msg and "\n" not in msg


def test_rgg_guided_steps_flag_and_default_labels(tmp_path):
    import argparse

    from blend.baselines.options import add_baseline_args
    from blend.methods import get_method

    p = argparse.ArgumentParser()
    add_baseline_args(p)
    args = p.parse_args([])
    assert get_method("rgg").options(args, None, 10, (1.0,)) == {"kl": 0.1, "gamma": 0.024}  # unchanged default
    assert "G" not in get_method("smc").options(args, None, 10, (1.0,))
    args = p.parse_args(["--rgg_guided_steps", "3"])
    assert get_method("rgg").options(args, None, 10, (1.0,))["G"] == 3


def test_smc_with_a_deterministic_last_step_stays_finite(tiny_bundle):
    """set_alpha_to_one (the toy world's scheduler) makes the last step's σ zero; the weights must stay finite."""
    from diffusers import DDIMScheduler

    tiny_bundle.scheduler = DDIMScheduler.from_config({**tiny_bundle.scheduler.config, "set_alpha_to_one": True})
    res = sample_any(tiny_bundle, BlendSpec("smc", **BRIGHT, options={"K": 3, "kl": 1e-3, "gamma": 1.0}),
                     PROMPTS[:2], SEEDS[:2], CFG)
    assert torch.isfinite(res.images).all()
