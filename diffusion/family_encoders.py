"""Prompt encoding for SDXL and SD3, done by the stock diffusers pipeline of the family so that it is exactly theirs.

SDXL: both CLIP encoders' penultimate hidden states concatenated, the second encoder's pooled projection, and
the size/crop time ids (original size = target size = the default image size, crop (0, 0)). An empty prompt is
encoded as zeros when the model asks for it (``force_zeros_for_empty_prompt``, SDXL base's default), as the
stock pipeline encodes its default negative prompt.
SD3: CLIP-L and CLIP-G hidden states padded to the T5 width and joined with T5's (zeros when the checkpoint has
no T5), pooled CLIP projections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from diffusion.conditioning import Conditioning

if TYPE_CHECKING:
    from diffusion.bundle import ModelBundle


def stock_pipeline(bundle: ModelBundle):
    """The family's stock diffusers pipeline over the bundle's own modules (built once, cached on the bundle)."""
    pipe = bundle.extra.get("_stock_pipeline")
    if pipe is not None:
        return pipe
    if bundle.family == "sdxl":
        from diffusers import StableDiffusionXLPipeline

        pipe = StableDiffusionXLPipeline(
            vae=bundle.vae, text_encoder=bundle.text_encoder, text_encoder_2=bundle.text_encoder_2,
            tokenizer=bundle.tokenizer, tokenizer_2=bundle.tokenizer_2, unet=bundle.unet, scheduler=bundle.scheduler,
            force_zeros_for_empty_prompt=bundle.extra.get("force_zeros_for_empty_prompt", True))
    elif bundle.family == "sd3":
        from diffusers import StableDiffusion3Pipeline

        pipe = StableDiffusion3Pipeline(
            transformer=bundle.unet, scheduler=bundle.scheduler, vae=bundle.vae, text_encoder=bundle.text_encoder,
            tokenizer=bundle.tokenizer, text_encoder_2=bundle.text_encoder_2, tokenizer_2=bundle.tokenizer_2,
            text_encoder_3=bundle.text_encoder_3, tokenizer_3=bundle.tokenizer_3)
    else:
        raise ValueError(f"no stock pipeline encoder for family {bundle.family!r}")
    pipe.set_progress_bar_config(disable=True)
    bundle.extra["_stock_pipeline"] = pipe
    return pipe


def default_image_size(bundle: ModelBundle) -> tuple[int, int]:
    """(height, width) in pixels: ``bundle.extra["image_size"]`` when a caller set it (a pipeline called with
    another size), else the denoiser's default sample size."""
    if "image_size" in bundle.extra:
        return tuple(bundle.extra["image_size"])
    _, h, w = bundle.sample_shape
    factor = 2 ** (len(bundle.vae.config.block_out_channels) - 1) if bundle.vae is not None else 1
    return h * factor, w * factor


@torch.no_grad()
def encode_family_prompts(bundle: ModelBundle, prompts: list[str]) -> Conditioning:
    """A :class:`Conditioning` for ``prompts`` (N rows) under an SDXL or SD3 bundle."""
    pipe = stock_pipeline(bundle)
    device = bundle.device
    if bundle.family == "sdxl":
        hidden, _, pooled, _ = pipe.encode_prompt(prompts, device=device, do_classifier_free_guidance=False)
        if pipe.config.force_zeros_for_empty_prompt:
            empty = torch.tensor([not p.strip() for p in prompts], device=hidden.device)
            hidden = torch.where(empty[:, None, None], torch.zeros_like(hidden), hidden)
            pooled = torch.where(empty[:, None], torch.zeros_like(pooled), pooled)
        h, w = default_image_size(bundle)
        time_ids = pipe._get_add_time_ids((h, w), (0, 0), (h, w), dtype=hidden.dtype,
                                          text_encoder_projection_dim=bundle.text_encoder_2.config.projection_dim)
        time_ids = time_ids.to(device).repeat(len(prompts), 1)
        return Conditioning(hidden.to(bundle.dtype), pooled.to(bundle.dtype), time_ids.to(bundle.dtype))
    hidden, _, pooled, _ = pipe.encode_prompt(prompts, None, None, device=device, do_classifier_free_guidance=False)
    return Conditioning(hidden.to(bundle.dtype), pooled.to(bundle.dtype))
