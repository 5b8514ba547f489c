"""DiffusionBlendSD3Pipeline (tiny SD3 built in code): ``from_pipe(StableDiffusion3Pipeline)`` gives it; with one
member it is the stock SD3 pipeline with that adapter, with ``weights=None`` the stock pipeline; DB-MPA differs from
either member; ``save_pretrained`` → ``from_pretrained`` (which picks the SD3 class) gives the same images."""

from __future__ import annotations

import pytest
import torch

from diffusion.adapters import activate
from diffusion.lora import add_lora, random_lora
from diffusion.tiny import make_tiny_sd3
from diffusion_blend import DiffusionBlendPipeline

KW = dict(num_inference_steps=3, guidance_scale=4.0, output_type="pt", max_sequence_length=16)


@pytest.fixture(scope="module")
def sd3_pipes():
    from diffusers import StableDiffusion3Pipeline

    b = make_tiny_sd3()
    for name, seed in (("a", 1), ("b", 2)):
        add_lora(b.unet, name, random_lora(b.unet, seed=seed, std_b=0.3))
    stock = StableDiffusion3Pipeline(transformer=b.unet, scheduler=b.scheduler, vae=b.vae, text_encoder=b.text_encoder,
                                     tokenizer=b.tokenizer, text_encoder_2=b.text_encoder_2,
                                     tokenizer_2=b.tokenizer_2, text_encoder_3=None, tokenizer_3=None)
    stock.set_progress_bar_config(disable=True)
    blend = DiffusionBlendPipeline.from_pipe(stock)
    blend.set_progress_bar_config(disable=True)
    return stock, blend


def test_one_member_and_none_are_the_stock_sd3_pipeline(sd3_pipes):
    from blend.pipeline import DiffusionBlendSD3Pipeline

    stock, blend = sd3_pipes
    assert isinstance(blend, DiffusionBlendSD3Pipeline) and sorted(blend.members) == ["a", "b"]
    prompts = ["a red cat", "a dog"]
    for state in ("a", None):
        activate(stock.transformer, state)
        try:
            ref = stock(prompts, generator=torch.Generator().manual_seed(0), **KW).images
            none = blend(prompts, generator=torch.Generator().manual_seed(0), **KW).images
        finally:
            activate(stock.transformer, None)
        torch.testing.assert_close(none, ref, rtol=0, atol=1e-5)
        if state == "a":
            ours = blend(prompts, weights={"a": 1.0}, generator=torch.Generator().manual_seed(0), **KW).images
            torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    kw = dict(KW, seeds=[0])
    a, b = blend("a cat", weights={"a": 1.0}, **kw).images, blend("a cat", weights={"b": 1.0}, **kw).images
    mix = blend("a cat", weights={"a": 0.5, "b": 0.5}, **kw).images
    assert not torch.equal(mix, a) and not torch.equal(mix, b)


def test_sd3_save_and_load(sd3_pipes, tmp_path):
    from blend.pipeline import DiffusionBlendSD3Pipeline

    _, blend = sd3_pipes
    w = {"a": 0.4, "b": 0.6}
    before = blend("a cat", weights=w, seeds=[0], **KW).images
    blend.save_pretrained(tmp_path / "sd3")
    again = DiffusionBlendPipeline.from_pretrained(tmp_path / "sd3")
    again.set_progress_bar_config(disable=True)
    assert isinstance(again, DiffusionBlendSD3Pipeline) and sorted(again.members) == ["a", "b"]
    torch.testing.assert_close(again("a cat", weights=w, seeds=[0], **KW).images, before, rtol=0, atol=1e-6)
