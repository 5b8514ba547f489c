"""A tiny Stable-Diffusion-family model built from configs with a fixed seed (no download).

Same classes as SD v1.5 (``UNet2DConditionModel``, ``AutoencoderKL``, ``CLIPTextModel``, the real CLIP
tokenizer, SD's DDIM scheduler config), scaled down: a 16×16×4 latent decoded to 32×32 RGB. Its
weights are random, so its images are noise-like; it exists to exercise every code path quickly.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from dbcore.clip_tokenizer import clip_tokenizer
from diffusion.bundle import ModelBundle

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


def _tiny_clip(seed: int, max_length: int, hidden: int, projection: int | None):
    from transformers import CLIPTextModelWithProjection

    cfg = CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=max_length, bos_token_id=49406,
                         eos_token_id=49407, pad_token_id=49407, projection_dim=projection or hidden)
    torch.manual_seed(seed)
    return CLIPTextModelWithProjection(cfg) if projection else CLIPTextModel(cfg)


def make_tiny_sdxl(seed: int = 0, latent_size: int = 16, max_length: int = 16) -> ModelBundle:
    """A tiny SDXL-family model (two CLIP encoders, pooled text embeddings, size/crop time ids), random weights.

    Same classes and conditioning as SDXL base at a fraction of the width: CLIP-L-like (hidden 32) and
    CLIP-G-like (hidden 32, projection 32) encoders, so cross-attention sees 64 features and the text-time
    embedding 6·8 + 32 = 80; a 16×16×4 latent decoded to 32×32 RGB; DDIM from SD's scheduler config.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=latent_size, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=64, attention_head_dim=(4, 8),
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 32, transformer_layers_per_block=(1, 1),
            norm_num_groups=16,
        )
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, block_out_channels=(16, 32), latent_channels=4, layers_per_block=1,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=16,
            sample_size=2 * latent_size, scaling_factor=0.13025,
        )
        text_encoder = _tiny_clip(seed + 2, max_length, 32, None)
        text_encoder_2 = _tiny_clip(seed + 3, max_length, 32, 32)
    bundle = ModelBundle(unet, text_encoder, clip_tokenizer(model_max_length=max_length),
                         DDIMScheduler(**SD15_SCHEDULER), vae, source=f"builtin:tiny-xl(seed={seed})", family="sdxl",
                         text_encoder_2=text_encoder_2, tokenizer_2=clip_tokenizer(model_max_length=max_length))
    for module in bundle.modules():
        module.eval().requires_grad_(False)
    return bundle


def make_tiny_sd3(seed: int = 0, latent_size: int = 16, max_length: int = 16) -> ModelBundle:
    """A tiny SD3-family model (MMDiT transformer predicting a flow-matching velocity), random weights.

    Two CLIP encoders with projections (hidden 16 each, so the joined CLIP features are 32 wide, the joint
    attention width) and no T5 (an SD3 checkpoint may leave it out; the pipeline then uses zeros for its
    part), a 1-layer ``SD3Transformer2DModel`` (4 heads × 8), a 16×16×4 latent with SD3's VAE scaling and shift,
    and ``FlowMatchEulerDiscreteScheduler`` with SD3's shift 3.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(
            sample_size=latent_size, patch_size=2, in_channels=4, out_channels=4, num_layers=1,
            attention_head_dim=8, num_attention_heads=4, joint_attention_dim=32, caption_projection_dim=32,
            pooled_projection_dim=32, pos_embed_max_size=latent_size,
        )
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, block_out_channels=(16, 32), latent_channels=4, layers_per_block=1,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=16,
            sample_size=2 * latent_size, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False,
            use_post_quant_conv=False,
        )
        text_encoder = _tiny_clip(seed + 2, max_length, 16, 16)
        text_encoder_2 = _tiny_clip(seed + 3, max_length, 16, 16)
    bundle = ModelBundle(transformer, text_encoder, clip_tokenizer(model_max_length=max_length),
                         FlowMatchEulerDiscreteScheduler(shift=3.0), vae, source=f"builtin:tiny-sd3(seed={seed})",
                         family="sd3", text_encoder_2=text_encoder_2,
                         tokenizer_2=clip_tokenizer(model_max_length=max_length))
    for module in bundle.modules():
        module.eval().requires_grad_(False)
    return bundle
