"""DoRA, LoHa and LoKr members (PEFT tuners) blend by noise: one member alone is the stock pipeline with that adapter
active, a blend differs from each member, DB-MPA-LS runs them one per call, a PEFT directory of each is added
with ``add_adapter`` and gives the same images; the soups refuse them by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from peft import LoHaConfig, LoKrConfig, LoraConfig, inject_adapter_in_model

from diffusion.adapters import activate, clear_cache
from diffusion.lora import add_lora, random_lora

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
CONFIGS = {
    "dora": lambda: LoraConfig(r=4, lora_alpha=4, target_modules=TARGETS, use_dora=True, init_lora_weights=False),
    "loha": lambda: LoHaConfig(r=4, alpha=4, target_modules=TARGETS, init_weights=False),
    "lokr": lambda: LoKrConfig(r=4, alpha=4, target_modules=TARGETS, init_weights=False),
}
KW = dict(num_inference_steps=3, guidance_scale=5.0, output_type="np")
PROMPTS = ["a red circle", "a green square"]


@pytest.fixture
def pipes(tiny_bundle):
    from blend.pipeline import DiffusionBlendPipeline

    b = tiny_bundle
    add_lora(b.unet, "a", random_lora(b.unet, seed=1, std_b=0.3))
    torch.manual_seed(5)
    for name, make in CONFIGS.items():
        inject_adapter_in_model(make(), b.unet, adapter_name=name)
    with torch.no_grad():  # PEFT's random init of these tuners is tiny: make each adapter matter
        for n, p in b.unet.named_parameters():
            if any(f".{k}" in n for k in CONFIGS) and "magnitude" not in n:
                p.mul_(3.0)
    b.unet.requires_grad_(False)
    clear_cache(b.unet)
    stock = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                    scheduler=b.scheduler, safety_checker=None, feature_extractor=None,
                                    requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    pipe = DiffusionBlendPipeline.from_pipe(stock)
    pipe.set_progress_bar_config(disable=True)
    return stock, pipe


def gens():
    return [torch.Generator().manual_seed(i) for i in range(2)]


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_peft_tuner_members_blend_by_noise(pipes, kind):
    stock, pipe = pipes
    activate(stock.unet, kind)
    try:
        ref = stock(PROMPTS, generator=gens(), **KW).images
    finally:
        activate(stock.unet, None)
    base = stock(PROMPTS, generator=gens(), **KW).images
    assert np.abs(ref - base).max() > 1e-3  # the adapter matters
    out = pipe(PROMPTS, weights={kind: 1.0}, generator=gens(), **KW).images
    np.testing.assert_array_equal(out, ref)
    mix = pipe(PROMPTS, weights={kind: 0.5, "a": 0.5}, generator=gens(), **KW).images
    assert np.abs(mix - out).max() > 1e-4
    ls = pipe(PROMPTS, weights={kind: 0.5, "a": 0.5}, method="mpa_ls", seeds=[0, 1], **KW).images
    kla = pipe(PROMPTS, weights={kind: 1.0}, method="kla", lam=1.5, seeds=[0, 1], **KW).images
    assert np.isfinite(ls).all() and np.isfinite(kla).all()
    with pytest.raises(ValueError, match="soups fold"):
        pipe(PROMPTS, weights={kind: 0.5, "a": 0.5}, method="soup", **KW)


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_a_peft_directory_of_each_tuner_is_a_member(kind, tmp_path):
    """A PEFT directory (adapter_config.json + weights) of a DoRA/LoHa/LoKr adapter, as any PEFT user writes it,
    added with ``add_adapter``: the member is the stock pipeline with that adapter."""
    from blend.pipeline import DiffusionBlendPipeline, _peft_save
    from diffusion.tiny import make_tiny_sd

    src = make_tiny_sd(seed=0, latent_size=8)
    torch.manual_seed(5)
    inject_adapter_in_model(CONFIGS[kind](), src.unet, adapter_name=kind)
    src.unet.requires_grad_(False)
    _peft_save(src.unet, kind, tmp_path / kind)
    stock = StableDiffusionPipeline(vae=src.vae, text_encoder=src.text_encoder, tokenizer=src.tokenizer,
                                    unet=src.unet, scheduler=src.scheduler, safety_checker=None,
                                    feature_extractor=None, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    activate(src.unet, kind)
    ref = stock(PROMPTS, generator=gens(), **KW).images
    fresh = DiffusionBlendPipeline.from_bundle(make_tiny_sd(seed=0, latent_size=8))
    fresh.set_progress_bar_config(disable=True)
    fresh.add_adapter("m", tmp_path / kind)
    assert fresh.members == ["m"]
    np.testing.assert_array_equal(fresh(PROMPTS, weights={"m": 1.0}, generator=gens(), **KW).images, ref)
