"""Model families (SD, SDXL, SD3): detection, the official directory layouts, and conditioning that is exactly the
stock diffusers pipeline's (checked by running a denoising loop on ``bundle.encode_prompts`` + ``bundle.denoise``
against the stock pipeline's latents)."""

from __future__ import annotations

import json

import pytest
import torch

from diffusion.bundle import save_bundle
from diffusion.conditioning import Conditioning, cat_conditioning
from diffusion.families import detect_family, load_local_dir
from diffusion.loading import load_bundle


@pytest.fixture(scope="module")
def tiny_xl():
    return load_bundle("builtin:tiny-xl")


@pytest.fixture(scope="module")
def tiny_sd3():
    return load_bundle("builtin:tiny-sd3")


def _manual_loop(bundle, prompts, steps, guidance, latents):
    """CFG denoising with the bundle's conditioning and denoiser, the scheduler's own step (what the sampler does)."""
    sched = bundle.scheduler
    sched.set_timesteps(steps)
    cond = bundle.encode_prompts(prompts)
    uncond = bundle.encode_prompts([""] * len(prompts))
    x = latents * getattr(sched, "init_noise_sigma", 1.0)  # flow-matching schedulers start at σ = 1
    for t in sched.timesteps:
        out = bundle.denoise(torch.cat([x, x]), t, cat_conditioning([uncond, cond]))
        u, c = out.chunk(2)
        x = sched.step(u + guidance * (c - u), t, x).prev_sample
    return x


def test_sdxl_conditioning_and_loop_equal_the_stock_pipeline(tiny_xl):
    from diffusers import StableDiffusionXLPipeline

    b = tiny_xl
    prompts = ["a red circle", "a blue square"]
    latents = torch.randn(2, *b.sample_shape, generator=torch.Generator().manual_seed(0))
    pipe = StableDiffusionXLPipeline(vae=b.vae, text_encoder=b.text_encoder, text_encoder_2=b.text_encoder_2,
                                     tokenizer=b.tokenizer, tokenizer_2=b.tokenizer_2, unet=b.unet,
                                     scheduler=b.scheduler)
    pipe.set_progress_bar_config(disable=True)
    h = b.sample_shape[1] * 2
    ref = pipe(prompts, num_inference_steps=3, guidance_scale=4.0, eta=0.0, latents=latents.clone(), height=h,
               width=h, output_type="latent").images
    ours = _manual_loop(b, prompts, 3, 4.0, latents.clone())
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_sd3_conditioning_and_flow_loop_equal_the_stock_pipeline(tiny_sd3):
    from diffusers import StableDiffusion3Pipeline

    b = tiny_sd3
    prompts = ["a red circle", "a blue square"]
    latents = torch.randn(2, *b.sample_shape, generator=torch.Generator().manual_seed(1))
    pipe = StableDiffusion3Pipeline(transformer=b.unet, scheduler=b.scheduler, vae=b.vae,
                                    text_encoder=b.text_encoder, tokenizer=b.tokenizer,
                                    text_encoder_2=b.text_encoder_2, tokenizer_2=b.tokenizer_2, text_encoder_3=None,
                                    tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    h = b.sample_shape[1] * 2
    ref = pipe(prompts, num_inference_steps=3, guidance_scale=4.0, latents=latents.clone(), height=h, width=h,
               output_type="latent").images
    ours = _manual_loop(b, prompts, 3, 4.0, latents.clone())
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert b.prediction == "flow"


@pytest.mark.parametrize("name,family,denoiser", [("builtin:tiny", "sd", "unet"), ("builtin:tiny-xl", "sdxl", "unet"),
                                                  ("builtin:tiny-sd3", "sd3", "transformer")])
def test_official_layout_round_trip(tmp_path, name, family, denoiser):
    b = load_bundle(name)
    save_bundle(b, tmp_path / "model")
    index = json.loads((tmp_path / "model" / "model_index.json").read_text())
    assert (tmp_path / "model" / denoiser).is_dir() and denoiser in index
    assert detect_family(tmp_path / "model") == family
    again = load_bundle(str(tmp_path / "model"))
    assert again.family == family
    x = torch.randn(1, *b.sample_shape, generator=torch.Generator().manual_seed(2))
    cond = b.encode_prompts(["a cat"])
    torch.testing.assert_close(again.denoise(x, 1, again.encode_prompts(["a cat"])), b.denoise(x, 1, cond))


def test_family_from_folders_without_model_index(tmp_path):
    save_bundle(load_bundle("builtin:tiny-xl"), tmp_path / "xl")
    (tmp_path / "xl" / "model_index.json").unlink()
    assert detect_family(tmp_path / "xl") == "sdxl"


@pytest.mark.parametrize("cls", ["FluxPipeline", "PixArtAlphaPipeline", "StableDiffusionXLImg2ImgPipeline"])
def test_unsupported_family_is_refused_naming_the_supported_ones(tmp_path, cls):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model_index.json").write_text(json.dumps({"_class_name": cls}))
    with pytest.raises(ValueError, match=f"{cls}.*StableDiffusionXLPipeline"):
        load_local_dir(tmp_path / "m", "cpu", torch.float32)


def test_incomplete_sdxl_directory_names_what_is_missing(tmp_path):
    save_bundle(load_bundle("builtin:tiny-xl"), tmp_path / "xl")
    import shutil

    shutil.rmtree(tmp_path / "xl" / "text_encoder_2")
    with pytest.raises(FileNotFoundError, match="text_encoder_2"):
        load_local_dir(tmp_path / "xl", "cpu", torch.float32)


def test_conditioning_rows_and_concatenation(tiny_xl):
    c = tiny_xl.encode_prompts(["a", "b", "c"])
    assert isinstance(c, Conditioning) and len(c) == 3
    both = cat_conditioning([c[[0]], c[[2]]])
    torch.testing.assert_close(both.pooled, c.pooled[[0, 2]])
    torch.testing.assert_close(both.time_ids, c.time_ids[[0, 2]])
    with pytest.raises(TypeError, match="Conditioning"):
        cat_conditioning([c, torch.zeros(1, 16, 64)])


def test_sdxl_empty_prompt_is_zeros_as_in_the_stock_pipeline(tiny_xl):
    c = tiny_xl.encode_prompts(["", "a cat"])
    assert torch.count_nonzero(c.hidden[0]) == 0 and torch.count_nonzero(c.pooled[0]) == 0
    assert torch.count_nonzero(c.hidden[1]) > 0
