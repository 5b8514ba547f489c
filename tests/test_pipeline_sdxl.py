"""DiffusionBlendPipeline built from a stock StableDiffusionXLPipeline (tiny SDXL built in code): with weights
(1, 0) it gives the stock pipeline's image with that adapter, bit for bit up to float rounding; DB-MPA differs
from either adapter; SD3 bundles are refused with a clear message."""

from __future__ import annotations

import pytest
import torch

from diffusion.adapters import activate
from diffusion.lora import random_lora
from diffusion.tiny import make_tiny_sdxl
from diffusion_blend import DiffusionBlendPipeline, DiffusionBlendXLPipeline


@pytest.fixture(scope="module")
def xl_pipes():
    from diffusers import StableDiffusionXLPipeline

    b = make_tiny_sdxl()
    stock = StableDiffusionXLPipeline(vae=b.vae, text_encoder=b.text_encoder, text_encoder_2=b.text_encoder_2,
                                      tokenizer=b.tokenizer, tokenizer_2=b.tokenizer_2, unet=b.unet,
                                      scheduler=b.scheduler)
    stock.set_progress_bar_config(disable=True)
    blend = DiffusionBlendPipeline.from_pipe(stock)
    blend.set_progress_bar_config(disable=True)
    for name, seed in (("a", 1), ("b", 2)):
        blend.add_adapter(name, random_lora(b.unet, seed=seed, std_b=0.3))
    return stock, blend


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_weight_one_zero_is_the_stock_sdxl_pipeline_with_the_adapter(xl_pipes, eta):
    stock, blend = xl_pipes
    assert isinstance(blend, DiffusionBlendXLPipeline)
    kw = dict(num_inference_steps=3, guidance_scale=4.0, eta=eta, output_type="np")
    ours = blend(["a red cat", "a dog"], weights={"a": 1.0, "b": 0.0}, generator=torch.Generator().manual_seed(0),
                 **kw).images
    activate(stock.unet, "a")
    try:
        ref = stock(["a red cat", "a dog"], generator=torch.Generator().manual_seed(0), **kw).images
    finally:
        activate(stock.unet, None)
    torch.testing.assert_close(torch.as_tensor(ours), torch.as_tensor(ref), rtol=0, atol=1e-5)


def test_mpa_blends_on_sdxl(xl_pipes):
    _, blend = xl_pipes
    kw = dict(num_inference_steps=3, guidance_scale=4.0, output_type="pt", seeds=[0])
    a = blend("a cat", weights={"a": 1.0}, **kw).images
    b = blend("a cat", weights={"b": 1.0}, **kw).images
    mix = blend("a cat", weights={"a": 0.5, "b": 0.5}, **kw).images
    assert not torch.equal(mix, a) and not torch.equal(mix, b)



@pytest.mark.parametrize("kw", [dict(prompt_2=["oil painting", "a sketch"], negative_prompt_2="blurry"),
                                dict(original_size=(64, 48), crops_coords_top_left=(4, 8), target_size=(40, 40)),
                                dict(negative_original_size=(20, 20), negative_target_size=(30, 30)),
                                dict(guidance_rescale=0.6), dict(denoising_end=0.5)])
def test_sdxl_arguments_match_the_stock_pipeline(xl_pipes, kw):
    stock, blend = xl_pipes
    base = dict(num_inference_steps=3, guidance_scale=4.0, output_type="np")
    # one prompt with negative sizes: diffusers 0.42 repeats [negative, positive] time ids row-wise, which pairs
    # them with the wrong rows of a larger batch; the blend pipeline gives every row its own
    prompts = ["a red cat"] if "negative_original_size" in kw else ["a red cat", "a dog"]
    activate(stock.unet, "a")
    try:
        ref = stock(prompts, generator=torch.Generator().manual_seed(0), **base, **kw).images
    finally:
        activate(stock.unet, None)
    ours = blend(prompts, weights={"a": 1.0}, generator=torch.Generator().manual_seed(0), **base, **kw).images
    plain = blend(prompts, weights={"a": 1.0}, generator=torch.Generator().manual_seed(0), **base).images
    assert abs(ours - plain).max() > 1e-4  # the argument acts
    torch.testing.assert_close(torch.as_tensor(ours), torch.as_tensor(ref), rtol=0, atol=1e-5)
