"""The stochastic schedulers of ``diffusion.schedulers`` (DPM-Solver++ SDE, DDPM) against the stock diffusers
``StableDiffusionPipeline``, as ``tests/test_pipeline.py`` does for the others: w = (1, 0) is the stock pipeline with
that adapter loaded (the same generators give the same step noise, so the same pixels), and DB-MPA equals a hand blend
(the stock pipeline whose UNet returns Σ w_i ε_i). A last test keeps every name that ``run_DB.py --scheduler`` accepts
covered by one of the two files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline

from diffusion.lora import random_lora, save_lora
from diffusion.schedulers import SCHEDULERS, make_scheduler

STOCHASTIC = {
    "dpm++_sde": lambda cfg: DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="sde-dpmsolver++"),
    "ddpm": lambda cfg: DDPMScheduler.from_config(cfg),
}
PROMPTS = ["a red circle", "a green square"]
KW = dict(num_inference_steps=4, guidance_scale=5.0, output_type="np")


def gens(n=2, offset=0):
    return [torch.Generator().manual_seed(offset + i) for i in range(n)]


@pytest.fixture
def pipes(tiny_bundle, tmp_path):
    """(stock pipeline with adapters a, b loaded by diffusers, DiffusionBlendPipeline.from_pipe of it)."""
    from blend.pipeline import DiffusionBlendPipeline

    b = tiny_bundle
    for name, seed in (("a", 1), ("b", 2)):
        save_lora(random_lora(b.unet, seed=seed, std_b=0.3), tmp_path / name)
    stock = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                    scheduler=b.scheduler, safety_checker=None, feature_extractor=None,
                                    requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    for name in ("a", "b"):
        stock.load_lora_weights(tmp_path / name, weight_name="pytorch_lora_weights.safetensors", adapter_name=name)
    return stock, DiffusionBlendPipeline.from_pipe(stock)


def _stock(stock, adapters, generator):
    if adapters:
        stock.set_adapters(adapters)
        stock.enable_lora()
    else:
        stock.disable_lora()
    try:
        return stock(PROMPTS, generator=generator, **KW).images
    finally:
        stock.enable_lora()


@pytest.mark.parametrize("sched", list(STOCHASTIC))
def test_make_scheduler_builds_the_class_the_test_uses(tiny_bundle, sched):
    made, ref = make_scheduler(sched, tiny_bundle.scheduler.config), STOCHASTIC[sched](tiny_bundle.scheduler.config)
    assert type(made) is type(ref) and dict(made.config) == dict(ref.config)


@pytest.mark.parametrize("sched", list(STOCHASTIC))
def test_weight_one_zero_is_the_stock_pipeline_with_that_adapter(pipes, sched):
    stock, pipe = pipes
    stock.scheduler = pipe.scheduler = STOCHASTIC[sched](stock.scheduler.config)
    ref = _stock(stock, ["a"], gens())
    assert not np.array_equal(ref, _stock(stock, None, gens()))  # the adapter matters
    assert np.abs(ref - _stock(stock, ["a"], gens(offset=5))).max() > 1e-3  # the step noise matters (stochastic)
    out = pipe(PROMPTS, weights={"a": 1.0, "b": 0.0}, generator=gens(), **KW).images
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(pipe(PROMPTS, generator=gens(), **KW).images, _stock(stock, None, gens()))


@pytest.mark.parametrize("sched", list(STOCHASTIC))
def test_mpa_matches_a_hand_blend_in_the_stock_pipeline(pipes, sched):
    stock, pipe = pipes
    stock.scheduler = pipe.scheduler = STOCHASTIC[sched](stock.scheduler.config)
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


def test_every_scheduler_name_has_its_stock_pipeline_tests():
    path = Path(__file__).with_name("test_pipeline.py")
    spec = importlib.util.spec_from_file_location("_pipeline_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(SCHEDULERS) == set(module.SCHEDULERS) | set(STOCHASTIC)
    assert not set(module.SCHEDULERS) & set(STOCHASTIC)
