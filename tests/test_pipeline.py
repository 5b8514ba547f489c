"""DiffusionBlendPipeline against the stock diffusers StableDiffusionPipeline, for every supported scheduler.

* w = (1, 0) is the stock pipeline with that adapter loaded (``load_lora_weights``): the same pixels;
* DB-MPA equals a hand blend: the stock pipeline whose UNet returns Σ w_i ε_i (adapters switched with
  diffusers' own ``set_adapters``; CFG is linear, so blending before or after it agrees up to rounding);
* per-image weights in one batch equal separate calls; a constant schedule equals fixed weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import gens
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)

from diffusion.lora import random_lora

SCHEDULERS = {
    "ddim": lambda cfg: DDIMScheduler.from_config(cfg),
    "dpm++": lambda cfg: DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="dpmsolver++"),
    "euler": lambda cfg: EulerDiscreteScheduler.from_config(cfg),
    "euler_a": lambda cfg: EulerAncestralDiscreteScheduler.from_config(cfg),
    "pndm": lambda cfg: PNDMScheduler.from_config(cfg, skip_prk_steps=True),
    "unipc": lambda cfg: UniPCMultistepScheduler.from_config(cfg),
    "dpm++_sde": lambda cfg: DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="sde-dpmsolver++"),
    "ddpm": lambda cfg: DDPMScheduler.from_config(cfg),
}
STOCHASTIC = {"euler_a", "dpm++_sde", "ddpm"}  # their step draws noise from the generators
PROMPTS = ["a red circle", "a green square"]
KW = dict(num_inference_steps=4, guidance_scale=5.0, eta=1.0, output_type="np")


def _stock(stock, adapters, generator=None, **kw):
    if adapters:
        stock.set_adapters(adapters)
        stock.enable_lora()
    else:
        stock.disable_lora()
    try:
        return stock(PROMPTS, generator=generator or gens(), **KW, **kw).images
    finally:
        stock.enable_lora()


@pytest.mark.parametrize("sched", list(SCHEDULERS))
def test_weight_one_zero_is_the_stock_pipeline_with_that_adapter(pipes, sched):
    stock, pipe = pipes
    stock.scheduler = pipe.scheduler = SCHEDULERS[sched](stock.scheduler.config)
    ref = _stock(stock, ["a"])
    assert not np.array_equal(ref, _stock(stock, None))  # the adapter matters
    if sched in STOCHASTIC:  # the same generators give the same step noise, other generators other noise
        assert np.abs(ref - _stock(stock, ["a"], gens(offset=5))).max() > 1e-3
    out = pipe(PROMPTS, weights={"a": 1.0, "b": 0.0}, generator=gens(), **KW).images
    np.testing.assert_array_equal(out, ref)
    pipe.disable_lora()  # weights=None samples the UNet in its diffusers adapter state, here: no adapter
    try:
        base = pipe(PROMPTS, generator=gens(), **KW).images
    finally:
        pipe.enable_lora()
    np.testing.assert_array_equal(base, _stock(stock, None))


@pytest.mark.parametrize("sched", list(SCHEDULERS))
def test_mpa_matches_a_hand_blend_in_the_stock_pipeline(pipes, sched):
    stock, pipe = pipes
    stock.scheduler = pipe.scheduler = SCHEDULERS[sched](stock.scheduler.config)
    w = {"a": 0.3, "b": 0.7}
    unet, forward = stock.unet, stock.unet.forward

    def blended(*args, **kwargs):
        out = 0
        for name, wi in w.items():
            unet.set_adapters([name])
            out = out + wi * forward(*args, **kwargs)[0]
        return (out,)

    unet.forward = blended
    try:
        ref = stock(PROMPTS, generator=gens(), **KW).images
    finally:
        del unet.forward
    out = pipe(PROMPTS, weights=w, generator=gens(), **KW).images
    np.testing.assert_allclose(out, ref, atol=2e-5)
    assert np.abs(out - pipe(PROMPTS, weights={"a": 1.0, "b": 0.0}, generator=gens(), **KW).images).max() > 1e-3


def test_per_image_weights_equal_separate_calls(pipes):
    _, pipe = pipes
    ws = [{"a": 0.3, "b": 0.7}, {"a": 0.9, "b": 0.1}]
    both = pipe(PROMPTS, weights=ws, seeds=[0, 1], **KW).images
    for i in range(2):
        one = pipe(PROMPTS[i], weights=ws[i], seeds=[i], **KW).images
        np.testing.assert_allclose(both[i], one[0], atol=1e-5)  # batch-size rounding of CPU kernels only
    assert np.abs(both[0] - pipe(PROMPTS[0], weights=ws[1], seeds=[0], **KW).images[0]).max() > 1e-3


def test_per_image_weights_with_generators_and_kla(pipes):
    _, pipe = pipes
    ws = [{"a": 1.0}, {"b": 1.0}]
    both = pipe(PROMPTS, weights=ws, method="kla", lam=0.5, generator=gens(), **KW).images
    for i in range(2):
        one = pipe(PROMPTS[i], weights=ws[i], method="kla", lam=0.5, generator=gens(1, i), **KW).images
        np.testing.assert_allclose(both[i], one[0], atol=1e-6)


def test_constant_schedule_equals_fixed_weights_and_a_ramp_differs(pipes):
    _, pipe = pipes
    w = {"a": 0.3, "b": 0.7}
    fixed = pipe(PROMPTS, weights=w, seeds=[0, 1], **KW).images
    np.testing.assert_array_equal(pipe(PROMPTS, weights=lambda p: w, seeds=[0, 1], **KW).images, fixed)
    ramp = pipe(PROMPTS, weights=lambda p: {"a": 1 - p, "b": p}, seeds=[0, 1], **KW).images
    assert np.abs(ramp - fixed).max() > 1e-3


def test_methods_and_outputs(pipes):
    _, pipe = pipes
    w = {"a": 0.5, "b": 0.5}
    for method in ("mpa_ls", "soup", "soup_factors"):
        img = pipe(PROMPTS[0], weights=w, method=method, seeds=[3], **{**KW, "output_type": "pil"}).images[0]
        assert img.size == (16, 16)
    lat = pipe(PROMPTS[0], weights=w, seeds=[3], **{**KW, "output_type": "latent"}).images
    assert lat.shape == (1, 4, 8, 8)
    two = pipe(PROMPTS[0], weights=w, num_images_per_prompt=2, height=32, width=32, generator=gens(),
               negative_prompt="blurry", **KW).images
    assert two.shape == (2, 32, 32, 3) and not np.array_equal(two[0], two[1])
    with pytest.raises(ValueError, match="no blend member named"):
        pipe(PROMPTS[0], weights={"zzz": 1.0}, **KW)
    with pytest.raises(ValueError, match="sum to 1"):
        pipe(PROMPTS[0], weights={"a": 0.5, "b": 0.6}, **KW)


def test_stock_pipeline_state_is_kept(pipes):
    stock, pipe = pipes
    stock.set_adapters(["b"])
    before = _stock(stock, ["b"])
    pipe(PROMPTS, weights={"a": 0.5, "b": 0.5}, generator=gens(), **KW)
    np.testing.assert_array_equal(stock(PROMPTS, generator=gens(), **KW).images, before)


def test_ls_constant_schedule_draws_as_fixed_weights_and_batched_routing_agrees(pipes):
    _, pipe = pipes
    w = {"a": 0.4, "b": 0.6}
    fixed = pipe(PROMPTS, weights=w, method="mpa_ls", seeds=[0, 1], **KW).images
    const = pipe(PROMPTS, weights=lambda p: w, method="mpa_ls", seeds=[0, 1], **KW).images
    np.testing.assert_array_equal(const, fixed)
    ws = [{"a": 0.3, "b": 0.7}, {"a": 0.9, "b": 0.1}]
    looped = pipe(PROMPTS, weights=ws, seeds=[0, 1], **KW).images
    routed = pipe(PROMPTS, weights=ws, seeds=[0, 1], batched=True, **KW).images
    np.testing.assert_allclose(routed, looped, atol=1e-5)


def test_from_pretrained_builtin_and_sampler_records_specs():
    from blend.pipeline import DiffusionBlendPipeline
    from blend.sampler import SamplerConfig, sample
    from blend.schedule import WeightSchedule
    from blend.spec import BlendSpec
    from diffusion.lora import add_lora

    pipe = DiffusionBlendPipeline.from_pretrained("builtin:tiny")
    assert pipe.members == [] and pipe("a cat", num_inference_steps=2, output_type="np").images.shape == (1, 32, 32, 3)
    bundle = pipe.bundle()
    for name, seed in (("a", 1), ("b", 2)):
        add_lora(bundle.unet, name, random_lora(bundle.unet, seed=seed))
    cfg = SamplerConfig(steps=3, guidance=5.0)
    spec = BlendSpec("mpa", ("a", "b"), (0.3, 0.7))
    ramp = BlendSpec("mpa", ("a", "b"), (0.3, 0.7), extra={"schedule": WeightSchedule((0.3, 0.7), (0.3, 0.7))})
    fixed = sample(bundle, spec, ["a cat"], [0], cfg)
    const = sample(bundle, ramp, ["a cat"], [0], cfg)
    assert torch.equal(fixed.images, const.images) and fixed.specs is None
    assert const.specs[0]["schedule"] == {"kind": "linear", "start": [0.3, 0.7], "end": [0.3, 0.7]}
    assert ramp.label == "mpa_a0.3_b0.7_linear-to-0.3_0.7"


def test_ddim_through_scheduler_step_equals_the_trainers_ddim_step(tiny_with_adapters):
    """The paper's sampler (DDIM, η = 1, pre-drawn z) is unchanged: the scheduler's own step gives the images of a
    hand loop over ``diffusion.ddim.ddim_step`` (the trainer's step with log-probability) bit for bit."""
    from blend.eps import combine
    from blend.predictor import NoisePredictor
    from blend.sampler import SamplerConfig, initial_noise, sample
    from blend.spec import BlendSpec
    from diffusion.ddim import ddim_step

    bundle, _ = tiny_with_adapters
    spec, cfg, seeds = BlendSpec("kla", ("a", "b"), (0.3, 0.7), lam=1.5), SamplerConfig(steps=4, guidance=5.0), [0, 1]
    out = sample(bundle, spec, PROMPTS, seeds, cfg).images
    sched = bundle.scheduler
    sched.set_timesteps(cfg.steps)
    noises = [initial_noise(s, bundle.sample_shape, cfg.steps, prompt=p) for p, s in zip(PROMPTS, seeds)]
    x = torch.stack([n[0] for n in noises]) * sched.init_noise_sigma
    z = torch.stack([n[1] for n in noises], dim=1)
    cond, uncond = bundle.encode_prompts(PROMPTS), bundle.encode_prompts([""] * 2)
    predictor, coeffs = NoisePredictor(bundle, cfg.guidance), spec.coefficients()
    with torch.no_grad():
        for i, t in enumerate(sched.timesteps.tolist()):
            eps = combine(predictor(x, t, cond, uncond, dict.fromkeys(coeffs)), coeffs)
            x = ddim_step(sched, eps, t, x, cfg.eta, noise=z[i]).prev_sample
        ref = bundle.decode(x)
    assert torch.equal(out, ref)
