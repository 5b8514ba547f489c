"""The toy base model's configuration: a pixel-space Stable-Diffusion-family model at 32×32.

* ``UNet2DConditionModel``: in/out 3 channels (pixels, no VAE), blocks (32, 64, 64), cross-attention
  at 8×8 only, cross-attention dim 64, head dim 8 — 1.41 M parameters (docs/toy_world.md, probe 2: attention at
  16×16 doubles the step cost).
* ``CLIPTextModel``: hidden 64, 2 layers, 4 heads, FFN 256, 12 positions, with the **full** CLIP
  vocabulary (49,408 rows) so that the ordinary path (``CLIPTokenizer.from_pretrained`` + the model)
  works unchanged; only the ~20 rows of the toy's words are trained. The embedding is 3.2 M
  parameters, so the text encoder is saved in float16 (6.4 MB instead of 12.7 MB); it is loaded back
  in float32.
* ``DDIMScheduler``: linear betas 1e-4 … 0.02 over 1000 steps (DDPM), ε-prediction, ``clip_sample``
  (x̂₀ clipped to [−1, 1], which suits pixel space), ``set_alpha_to_one``, ``steps_offset`` 0, so 10
  sampling steps are t = 900, 800, …, 0.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from dbcore.clip_tokenizer import CLIP_VOCAB_SIZE, clip_tokenizer
from diffusion.bundle import ModelBundle

MAX_LENGTH = 12

UNET_CONFIG = dict(
    sample_size=32, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64, 64),
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    cross_attention_dim=64, attention_head_dim=8, norm_num_groups=16,
)
TEXT_CONFIG = dict(
    vocab_size=CLIP_VOCAB_SIZE, hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=MAX_LENGTH, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
)
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", clip_sample=True,
    clip_sample_range=1.0, set_alpha_to_one=True, steps_offset=0, prediction_type="epsilon",
    timestep_spacing="leading",
)

# how the toy samples everywhere (docs/toy_world.md, probes 5 and 6)
SAMPLE_STEPS = 10
SAMPLE_ETA = 1.0
SAMPLE_GUIDANCE = 2.0  # toy world v2: guidance low enough that prompt following is not saturated (docs/toy_world.md)


def make_toy_model(seed: int = 0) -> ModelBundle:
    """The untrained toy model; the same seed gives the same initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**UNET_CONFIG)
        torch.manual_seed(seed + 1)
        text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    return ModelBundle(unet, text_encoder, clip_tokenizer(model_max_length=MAX_LENGTH),
                       DDIMScheduler(**SCHEDULER_CONFIG), None, source=f"toy(untrained, seed={seed})")
