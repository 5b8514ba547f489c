"""A text-to-image diffusion model as the parts the blend sampler needs, and its on-disk layout.

``ModelBundle`` holds the parts; :func:`load_local_dir` reads and :func:`save_bundle` writes the
Stable Diffusion directory layout. ``diffusion.loading.load_bundle(source)`` accepts

* ``builtin:tiny`` — the seeded, config-built tiny Stable-Diffusion-family model (``diffusion.tiny``);
* a local directory in the Stable Diffusion (diffusers) layout: ``unet/``, ``text_encoder/``,
  ``tokenizer/``, ``scheduler/`` and, for latent models, ``vae/``;
* a hub id such as ``stable-diffusion-v1-5/stable-diffusion-v1-5`` (downloaded into ``cache_dir`` when online).

The scheduler is always a ``DDIMScheduler`` built from the model's scheduler config (as the paper's
code does). Models without a ``vae/`` folder work in pixel space: the UNet's samples are images in
[−1, 1].
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer


@dataclass
class ModelBundle:
    """UNet, text encoder, tokenizer, DDIM scheduler and an optional VAE, on one device and dtype."""

    unet: UNet2DConditionModel
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler
    vae: AutoencoderKL | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

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

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> ModelBundle:
        for module in (self.unet, self.text_encoder, self.vae):
            if module is None:
                continue
            same_dtype = dtype is None or next(module.parameters()).dtype == dtype
            module.to(device=device) if same_dtype else module.to(device=device, dtype=dtype)
        return self

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Text-encoder hidden states for the prompts, padded to the tokenizer's max length. → (N, L, D)"""
        tokens = self.tokenizer(list(prompts), padding="max_length", truncation=True,
                                max_length=self.tokenizer.model_max_length, return_tensors="pt")
        ids = tokens.input_ids.to(self.text_encoder.device)
        return self.text_encoder(ids)[0].to(self.dtype)

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        """Final samples → images in [0, 1], (N, 3, H, W), float32. Differentiable (no no_grad here)."""
        if self.vae is not None:
            samples = self.vae.decode(samples / self.vae.config.scaling_factor).sample
        return (samples.float() / 2 + 0.5).clamp(0, 1)

    def components(self) -> dict:
        return {"unet": self.unet, "text_encoder": self.text_encoder, "tokenizer": self.tokenizer,
                "scheduler": self.scheduler, "vae": self.vae}


def check_tokenizer(bundle: ModelBundle) -> None:
    n_tok, n_vocab = len(bundle.tokenizer), bundle.text_encoder.config.vocab_size
    if n_tok > n_vocab or n_tok < min(n_vocab, 1000):
        raise ValueError(f"the tokenizer of {bundle.source} has {n_tok} tokens but the text encoder has a vocabulary "
                         f"of {n_vocab}: the tokenizer files are missing or truncated (transformers builds a "
                         f"near-empty tokenizer without error when offline)")


def load_local_dir(path: Path, device, dtype) -> ModelBundle:
    """A Stable-Diffusion-format directory (``unet/ text_encoder/ tokenizer/ scheduler/ [vae/]``) as a bundle."""
    missing = [p for p in ("unet", "text_encoder", "tokenizer", "scheduler") if not (path / p).is_dir()]
    if missing:
        raise FileNotFoundError(f"{path} is not a Stable-Diffusion-format model directory: missing {missing} "
                                f"(expected unet/, text_encoder/, tokenizer/, scheduler/ and optionally vae/)")
    unet = UNet2DConditionModel.from_pretrained(path / "unet", torch_dtype=dtype)
    text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", torch_dtype=dtype)
    tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer")
    scheduler = DDIMScheduler.from_pretrained(path / "scheduler")
    vae = AutoencoderKL.from_pretrained(path / "vae", torch_dtype=dtype) if (path / "vae").is_dir() else None
    bundle = ModelBundle(unet, text_encoder, tokenizer, scheduler, vae, source=str(path))
    return bundle.to(device)


def save_bundle(bundle: ModelBundle, directory: str | Path) -> Path:
    """Write the bundle in the Stable Diffusion directory layout that :func:`load_local_dir` (and ``load_bundle``) reads."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1"}
    for name, comp in bundle.components().items():
        if comp is None:
            index[name] = [None, None]
            continue
        comp.save_pretrained(directory / name)
        index[name] = ["diffusers" if name in ("unet", "vae", "scheduler") else "transformers", type(comp).__name__]
    index.update(safety_checker=[None, None], feature_extractor=[None, None], requires_safety_checker=False)
    (directory / "model_index.json").write_text(json.dumps(index, indent=2))
    return directory
