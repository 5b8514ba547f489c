"""A text-to-image diffusion model as the parts the blend sampler needs, and its on-disk layout.

``ModelBundle`` holds the parts; :func:`save_bundle` writes the diffusers directory layout of its family and
``diffusion.families.load_local_dir`` reads it. ``diffusion.loading.load_bundle(source)`` accepts

* ``builtin:tiny`` — the seeded, config-built tiny Stable-Diffusion-family model (``diffusion.tiny``);
* a local directory in the diffusers layout of SD 1.x/2.x (``unet/``, ``text_encoder/``, ``tokenizer/``,
  ``scheduler/`` and, for latent models, ``vae/``), SDXL (plus ``text_encoder_2/``, ``tokenizer_2/``) or SD3
  (``transformer/`` and up to three text encoders);
* a hub id such as ``stable-diffusion-v1-5/stable-diffusion-v1-5`` (downloaded into ``cache_dir`` when online).

The SD and SDXL families sample with a ``DDIMScheduler`` built from the model's scheduler config (as the
paper's code does), SD3 with its flow-matching Euler scheduler. Models without a ``vae/`` folder work in pixel space: the UNet's samples are images in
[−1, 1].
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from diffusion.conditioning import PIPELINE_CLASS, Conditioning, run_denoiser


@dataclass
class ModelBundle:
    """Denoiser, text encoder(s), tokenizer(s), scheduler and an optional VAE, on one device and dtype.

    ``family`` is ``sd`` (SD 1.x/2.x), ``sdxl`` or ``sd3`` (``diffusion.conditioning``). ``unet`` is the
    denoiser network whatever the family (the SD3 transformer for ``sd3``); SDXL adds the second CLIP
    encoder, SD3 the second and, when the checkpoint has it, the T5 encoder (``text_encoder_3``).
    """

    unet: UNet2DConditionModel
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler
    vae: AutoencoderKL | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)
    family: str = "sd"
    text_encoder_2: torch.nn.Module | None = None
    tokenizer_2: CLIPTokenizer | None = None
    text_encoder_3: torch.nn.Module | None = None
    tokenizer_3: object | None = None

    @property
    def prediction(self) -> str:
        """What the denoiser predicts: ``"flow"`` (velocity, SD3) or the scheduler's ``prediction_type``."""
        if self.family == "sd3":
            return "flow"
        return getattr(self.scheduler.config, "prediction_type", "epsilon")

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the UNet's samples (latents, or pixels when there is no VAE)."""
        size = self.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (self.unet.config.in_channels, h, w)

    def modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.unet, self.text_encoder, self.text_encoder_2, self.text_encoder_3, self.vae)
                if m is not None]

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> ModelBundle:
        for module in self.modules():
            if module is None:
                continue
            same_dtype = dtype is None or next(module.parameters()).dtype == dtype
            module.to(device=device) if same_dtype else module.to(device=device, dtype=dtype)
        return self

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor | Conditioning:
        """Text conditioning of the prompts: hidden states (N, L, D) padded to the tokenizer's max length for
        the SD family, a :class:`~diffusion.conditioning.Conditioning` for SDXL and SD3 (encoded exactly as
        the stock diffusers pipeline of the family encodes them)."""
        if self.family != "sd":
            from diffusion.family_encoders import encode_family_prompts

            return encode_family_prompts(self, list(prompts))
        tokens = self.tokenizer(list(prompts), padding="max_length", truncation=True,
                                max_length=self.tokenizer.model_max_length, return_tensors="pt")
        ids = tokens.input_ids.to(self.text_encoder.device)
        return self.text_encoder(ids)[0].to(self.dtype)

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        """Final samples → images in [0, 1], (N, 3, H, W), float32. Differentiable (no no_grad here)."""
        if self.vae is not None:
            shift = getattr(self.vae.config, "shift_factor", None) or 0.0
            samples = self.vae.decode(samples / self.vae.config.scaling_factor + shift).sample
        return (samples.float() / 2 + 0.5).clamp(0, 1)

    def denoise(self, x: torch.Tensor, t: int | float | torch.Tensor, cond: torch.Tensor | Conditioning,
                ) -> torch.Tensor:
        """The denoiser's raw output at (x, t): ε (``sd``, ``sdxl``) or the flow velocity (``sd3``)."""
        return run_denoiser(self.unet, self.family, x, t, cond)

    def components(self) -> dict:
        """The parts under diffusers' pipeline names (the SD3 denoiser as ``transformer``)."""
        parts = {"transformer" if self.family == "sd3" else "unet": self.unet, "text_encoder": self.text_encoder,
                 "tokenizer": self.tokenizer, "scheduler": self.scheduler, "vae": self.vae}
        if self.family in ("sdxl", "sd3"):
            parts.update(text_encoder_2=self.text_encoder_2, tokenizer_2=self.tokenizer_2)
        if self.family == "sd3":
            parts.update(text_encoder_3=self.text_encoder_3, tokenizer_3=self.tokenizer_3)
        return parts


def check_tokenizer(bundle: ModelBundle) -> None:
    n_tok, n_vocab = len(bundle.tokenizer), bundle.text_encoder.config.vocab_size
    if n_tok > n_vocab or n_tok < min(n_vocab, 1000):
        raise ValueError(f"the tokenizer of {bundle.source} has {n_tok} tokens but the text encoder has a vocabulary "
                         f"of {n_vocab}: the tokenizer files are missing or truncated (transformers builds a "
                         f"near-empty tokenizer without error when offline)")


def save_bundle(bundle: ModelBundle, directory: str | Path) -> Path:
    """Write the bundle in the Stable Diffusion directory layout that ``diffusion.families.load_local_dir`` (and ``load_bundle``) reads."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": PIPELINE_CLASS[bundle.family], "_diffusers_version": "0.42.1"}
    for name, comp in bundle.components().items():
        if comp is None:
            index[name] = [None, None]
            continue
        comp.save_pretrained(directory / name)
        library = "diffusers" if name in ("unet", "transformer", "vae", "scheduler") else "transformers"
        index[name] = [library, type(comp).__name__]
    if bundle.family == "sd":
        index.update(safety_checker=[None, None], feature_extractor=[None, None], requires_safety_checker=False)
    (directory / "model_index.json").write_text(json.dumps(index, indent=2))
    return directory
