"""A tiny Stable-Diffusion-family model built from configs with a fixed seed (no download).

Same classes as SD v1.5 (``UNet2DConditionModel``, ``AutoencoderKL``, ``CLIPTextModel``, the real CLIP
tokenizer, SD's DDIM scheduler config), scaled down: a 16×16×4 latent decoded to 32×32 RGB. Its
weights are random, so its images are noise-like; it exists to exercise every code path quickly.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from diffusion.bundle import ModelBundle
from diffusion.clip_tokenizer import clip_tokenizer

SD15_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                      clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")


def make_tiny_sd(seed: int = 0, latent_size: int = 16, max_length: int = 16) -> ModelBundle:
    """Build the tiny model; the same seed gives the same weights on every machine (CPU, float32)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=latent_size, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
            attention_head_dim=8, norm_num_groups=16,
        )
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, block_out_channels=(16, 32), latent_channels=4, layers_per_block=1,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=16,
            sample_size=2 * latent_size,
        )
        torch.manual_seed(seed + 2)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=max_length, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
        ))
    scheduler = DDIMScheduler(**SD15_SCHEDULER)
    bundle = ModelBundle(unet, text_encoder, clip_tokenizer(model_max_length=max_length), scheduler, vae,
                         source=f"builtin:tiny(seed={seed})")
    for module in (unet, vae, text_encoder):
        module.eval().requires_grad_(False)
    return bundle
