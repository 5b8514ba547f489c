"""DiffusionBlendPipeline behaves as a diffusers user expects (issue #23, item 1): diffusers' defaults, the
adapter state of ``set_adapters`` / ``disable_lora`` / ``fuse_lora``, the stock call arguments (each checked
against the stock ``StableDiffusionPipeline`` built from the same components), the weights' messages, the
save/load round trip and the one configuration that reproduces run_DB.py's images (docs/pipeline.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import gens
from diffusers import DDIMScheduler, EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline

from diffusion.lora import random_lora

PROMPTS = ["a red circle", "a green square"]
KW = dict(num_inference_steps=3, guidance_scale=5.0, output_type="np")


def both(stock, pipe, weights=None, **kw):
    """(stock images, blend-pipeline images) for the same call, the same generators."""
    ref = stock(PROMPTS, generator=gens(), **{**KW, **kw}).images
    out = pipe(PROMPTS, weights=weights, generator=gens(), **{**KW, **kw}).images
    return ref, out


# ------------------------------------------------------------------ defaults and adapter state


def test_defaults_are_diffusers(pipes):
    import inspect

    stock, pipe = pipes
    ours, theirs = inspect.signature(type(pipe).__call__).parameters, inspect.signature(type(stock).__call__).parameters
    for name in ("eta", "guidance_scale", "num_inference_steps", "output_type", "guidance_rescale"):
        assert ours[name].default == theirs[name].default, name
    pipe.disable_lora()
    ref, out = both(stock, pipe)  # DDIM, no eta given: the stock η = 0 (was 1 here: 0.26 apart)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("state", ["set_adapters", "single", "disabled", "fused"])
def test_weights_none_is_the_stock_pipeline_in_the_same_adapter_state(pipes, state):
    stock, pipe = pipes
    if state == "set_adapters":
        pipe.set_adapters(["a", "b"], [0.7, 0.3])
        assert sorted(pipe.get_active_adapters()) == ["a", "b"]
    elif state == "single":
        pipe.set_adapters(["b"])
    elif state == "disabled":
        pipe.disable_lora()
    else:
        pipe.set_adapters(["a"])
        pipe.fuse_lora()
    ref, out = both(stock, pipe)
    np.testing.assert_array_equal(out, ref)
    if state == "fused":  # members cannot be switched on fused weights
        with pytest.raises(ValueError, match="fused"):
            pipe(PROMPTS[0], weights={"a": 1.0}, **KW)
    stock.disable_lora()  # (unfuses, as PEFT does on a disabled fused layer)
    assert np.abs(stock(PROMPTS, generator=gens(), **KW).images - out).max() > 1e-3 or state == "disabled"
    stock.enable_lora()


def test_set_adapters_weight_scales_the_member_as_in_the_stock_pipeline(pipes):
    stock, pipe = pipes
    pipe.set_adapters(["a"], [0.5])
    ref, out = both(stock, pipe, weights={"a": 1.0})
    np.testing.assert_array_equal(out, ref)


# ------------------------------------------------------------------ standard arguments


def _halve_at_step_1(pipe, i, t, kw):
    return {"latents": kw["latents"] * 0.5} if i == 1 else {}


@pytest.mark.parametrize("weights", [None, {"a": 1.0}])
@pytest.mark.parametrize("arg", ["callback", "scale", "rescale", "embeds", "no_cfg", "timesteps", "sigmas"])
def test_stock_arguments_match_the_stock_pipeline(pipes, arg, weights):
    stock, pipe = pipes
    pipe.set_adapters(["a"] if weights is not None else ["b"])  # the stock pipeline runs member a (or adapter b)
    kw: dict = {}
    if arg == "callback":
        kw = dict(callback_on_step_end=_halve_at_step_1, callback_on_step_end_tensor_inputs=["latents"])
    elif arg == "scale":
        kw = dict(cross_attention_kwargs={"scale": 0.4})
    elif arg == "rescale":
        kw = dict(guidance_rescale=0.7)
    elif arg == "no_cfg":
        kw = dict(guidance_scale=1.0)
    elif arg in ("timesteps", "sigmas"):
        stock.scheduler = pipe.scheduler = EulerDiscreteScheduler.from_config(stock.scheduler.config)
        kw = dict(timesteps=[900, 500, 100]) if arg == "timesteps" else dict(sigmas=[8.0, 2.0, 0.5])
    if arg == "embeds":
        pe, npe = stock.encode_prompt(PROMPTS, "cpu", 1, True, ["blurry", "dark"])
        pe, npe = pe * 1.1, npe * 0.9
        ref = stock(prompt_embeds=pe, negative_prompt_embeds=npe, generator=gens(), **KW).images
        out = pipe(prompt_embeds=pe, negative_prompt_embeds=npe, weights=weights, generator=gens(), **KW).images
    else:
        ref, out = both(stock, pipe, weights=weights, **kw)
        plain = pipe(PROMPTS, weights=weights, generator=gens(), **KW).images
        assert np.abs(out - plain).max() > 1e-4  # the argument acts
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_arguments_act_on_every_member_of_a_blend(pipes):
    stock, pipe = pipes
    w = {"a": 0.5, "b": 0.5}
    for kw in (dict(cross_attention_kwargs={"scale": 0.4}), dict(guidance_rescale=0.7),
               dict(callback_on_step_end=_halve_at_step_1)):
        plain = pipe(PROMPTS, weights=w, seeds=[0, 1], **KW).images
        assert np.abs(pipe(PROMPTS, weights=w, seeds=[0, 1], **KW, **kw).images - plain).max() > 1e-4
    # the LoRA scale 0 turns every member into the base model: the blend is the base model
    pipe.disable_lora()
    base = pipe(PROMPTS, generator=gens(), **KW).images
    pipe.enable_lora()
    zero = pipe(PROMPTS, weights=w, generator=gens(), cross_attention_kwargs={"scale": 0.0}, **KW).images
    np.testing.assert_allclose(zero, base, atol=1e-5)


def test_callback_may_interrupt_and_refuses_what_it_cannot_honour(pipes):
    _, pipe = pipes

    def stop(p, i, t, kw):
        p._interrupt = True
        return {}

    full = pipe(PROMPTS[0], weights={"a": 1.0}, seeds=[0], **{**KW, "output_type": "latent"}).images
    one = pipe(PROMPTS[0], weights={"a": 1.0}, seeds=[0], callback_on_step_end=stop,
               **{**KW, "output_type": "latent"}).images
    assert not torch.equal(full, one)
    with pytest.raises(ValueError, match="latents"):
        pipe(PROMPTS[0], weights={"a": 1.0}, callback_on_step_end_tensor_inputs=["prompt_embeds"], **KW)
    with pytest.raises(ValueError, match="not supported"):
        pipe(PROMPTS[0], ip_adapter_image_embeds=[torch.zeros(1)], **KW)


# ------------------------------------------------------------------ weights


def test_weights_messages(pipes):
    _, pipe = pipes
    with pytest.raises(TypeError, match=r"name them: weights=\{'a': 0.5, 'b': 0.5\}"):
        pipe(PROMPTS[0], weights=[0.5, 0.5], **KW)
    with pytest.raises(ValueError, match="simplex"):
        pipe(PROMPTS[0], weights={"a": 1.5, "b": -0.5}, **KW)
    with pytest.raises(ValueError, match="simplex"):
        pipe(PROMPTS[0], weights=lambda p: {"a": 1 + p, "b": -p}, **KW)
    out = pipe(PROMPTS[0], weights={"a": 1.5, "b": -0.5}, allow_negative_weights=True, seeds=[0], **KW).images
    assert np.isfinite(out).all()


# ------------------------------------------------------------------ save / load


def test_save_pretrained_round_trip(pipes, tmp_path):
    from blend.pipeline import DiffusionBlendPipeline
    from diffusion.tiny import make_tiny_sd

    _, pipe = pipes
    pipe.add_model("full", make_tiny_sd(seed=7, latent_size=8).unet)
    w = {"a": 0.3, "b": 0.4, "full": 0.3}
    before = pipe(PROMPTS, weights=w, seeds=[0, 1], **KW).images
    pipe.save_pretrained(tmp_path / "saved")
    again = DiffusionBlendPipeline.from_pretrained(tmp_path / "saved")
    again.set_progress_bar_config(disable=True)
    assert type(again) is DiffusionBlendPipeline and sorted(again.members) == ["a", "b", "full"]
    np.testing.assert_array_equal(again(PROMPTS, weights=w, seeds=[0, 1], **KW).images, before)
    plain = StableDiffusionPipeline.from_pretrained(tmp_path / "saved", safety_checker=None)  # the base, unchanged
    plain.set_progress_bar_config(disable=True)
    pipe.disable_lora()
    np.testing.assert_array_equal(plain(PROMPTS, generator=gens(), **KW).images,
                                  pipe(PROMPTS, generator=gens(), **KW).images)


# ------------------------------------------------------------------ run_DB.py's images (docs/pipeline.md)


def test_ddim_eta_one_and_seeds_reproduce_run_db(tiny_bundle, tmp_path):
    """A stock SD pipeline keeps its PNDM scheduler; with DDIM from its config, eta=1.0 and seeds= the blend
    pipeline gives the images of blend.sampler.sample (what run_DB.py runs) bit for bit."""
    from blend.pipeline import DiffusionBlendPipeline
    from blend.sampler import SamplerConfig, sample
    from blend.spec import BlendSpec
    from diffusion.lora import add_lora

    b = tiny_bundle
    for name, seed in (("a", 1), ("b", 2)):
        add_lora(b.unet, name, random_lora(b.unet, seed=seed, std_b=0.3))
    stock = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                    scheduler=PNDMScheduler.from_config(b.scheduler.config, skip_prk_steps=True),
                                    safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe = DiffusionBlendPipeline.from_pipe(stock)
    pipe.set_progress_bar_config(disable=True)
    spec, cfg = BlendSpec("mpa", ("a", "b"), (0.3, 0.7)), SamplerConfig(steps=4, guidance=7.5, eta=1.0)
    ref = sample(b, spec, PROMPTS, [0, 1], cfg).images
    call = dict(weights={"a": 0.3, "b": 0.7}, seeds=[0, 1], num_inference_steps=4, guidance_scale=7.5,
                output_type="pt")
    assert (pipe(PROMPTS, eta=1.0, **call).images - ref).abs().max() > 1e-3  # PNDM: not run_DB's images
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)  # the one line of docs/pipeline.md
    assert torch.equal(pipe(PROMPTS, eta=1.0, **call).images, ref)
    assert not torch.equal(pipe(PROMPTS, **call).images, ref)  # diffusers' η = 0 is another sampler
