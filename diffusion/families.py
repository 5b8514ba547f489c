"""Model families: recognise a diffusers directory's family and load it as a :class:`~diffusion.bundle.ModelBundle`.

| family | pipeline class | denoiser | text encoders | sampler scheduler |
|---|---|---|---|---|
| ``sd`` | ``StableDiffusionPipeline`` (SD 1.x/2.x) | ``unet/`` UNet2DConditionModel | CLIP | DDIM (from its config) |
| ``sdxl`` | ``StableDiffusionXLPipeline`` | ``unet/`` with text-time embeddings | CLIP-L + CLIP-G (projection) | DDIM (from its config) |
| ``sd3`` | ``StableDiffusion3Pipeline`` | ``transformer/`` SD3Transformer2DModel | CLIP-L + CLIP-G + T5 (optional) | flow-matching Euler |

The family comes from ``model_index.json`` (``_class_name``), or, without one, from the folders present. Any
other pipeline class (FLUX, PixArt, Kandinsky, an SDXL refiner, ...) is refused with the list of supported ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from diffusion.bundle import ModelBundle
from diffusion.conditioning import PIPELINE_CLASS

FAMILY_OF_CLASS = {cls: fam for fam, cls in PIPELINE_CLASS.items()}


def supported_text() -> str:
    return ", ".join(f"{cls} ({fam})" for fam, cls in PIPELINE_CLASS.items())


def detect_family(path: str | Path) -> str:
    """``sd``, ``sdxl`` or ``sd3`` for a diffusers model directory; a clear error for anything else."""
    path = Path(path)
    index = path / "model_index.json"
    if index.is_file():
        cls = json.loads(index.read_text()).get("_class_name", "")
        if cls in FAMILY_OF_CLASS:
            return FAMILY_OF_CLASS[cls]
        raise ValueError(f"{path} holds a {cls or 'pipeline of unknown class'} (model_index.json); Diffusion Blend "
                         f"supports {supported_text()}")
    if (path / "transformer").is_dir():
        cfg = path / "transformer" / "config.json"
        cls = json.loads(cfg.read_text()).get("_class_name", "") if cfg.is_file() else ""
        if cls == "SD3Transformer2DModel":
            return "sd3"
        raise ValueError(f"{path} has a transformer/ of class {cls or 'unknown'}; Diffusion Blend supports "
                         f"{supported_text()}")
    if (path / "unet").is_dir():
        return "sdxl" if (path / "text_encoder_2").is_dir() else "sd"
    raise FileNotFoundError(f"{path} is not a diffusers model directory: it has neither model_index.json, unet/ nor "
                            f"transformer/ (supported: {supported_text()})")


def _need(path: Path, parts: list[str], family: str) -> None:
    missing = [p for p in parts if not (path / p).is_dir()]
    if missing:
        raise FileNotFoundError(f"{path} is an incomplete {PIPELINE_CLASS[family]} directory: missing {missing} "
                                f"(expected {', '.join(p + '/' for p in parts)} and optionally vae/)")


def load_local_dir(path: str | Path, device, dtype: torch.dtype) -> ModelBundle:
    """Load a diffusers model directory of any supported family (see the module docstring)."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    path = Path(path)
    family = detect_family(path)
    vae = AutoencoderKL.from_pretrained(path / "vae", torch_dtype=dtype) if (path / "vae").is_dir() else None
    if family in ("sd", "sdxl"):
        from diffusers import UNet2DConditionModel

        parts = ["unet", "text_encoder", "tokenizer", "scheduler"] + (["text_encoder_2", "tokenizer_2"]
                                                                      if family == "sdxl" else [])
        _need(path, parts, family)
        bundle = ModelBundle(
            UNet2DConditionModel.from_pretrained(path / "unet", torch_dtype=dtype),
            CLIPTextModel.from_pretrained(path / "text_encoder", torch_dtype=dtype),
            CLIPTokenizer.from_pretrained(path / "tokenizer"),
            DDIMScheduler.from_pretrained(path / "scheduler"), vae, source=str(path), family=family)
        if family == "sdxl":
            bundle.text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(path / "text_encoder_2",
                                                                                torch_dtype=dtype)
            bundle.tokenizer_2 = CLIPTokenizer.from_pretrained(path / "tokenizer_2")
        return bundle.to(device)
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    _need(path, ["transformer", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler"], family)
    bundle = ModelBundle(
        SD3Transformer2DModel.from_pretrained(path / "transformer", torch_dtype=dtype),
        CLIPTextModelWithProjection.from_pretrained(path / "text_encoder", torch_dtype=dtype),
        CLIPTokenizer.from_pretrained(path / "tokenizer"),
        FlowMatchEulerDiscreteScheduler.from_pretrained(path / "scheduler"), vae, source=str(path), family=family,
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(path / "text_encoder_2", torch_dtype=dtype),
        tokenizer_2=CLIPTokenizer.from_pretrained(path / "tokenizer_2"))
    if (path / "text_encoder_3").is_dir():
        from transformers import AutoTokenizer, T5EncoderModel

        bundle.text_encoder_3 = T5EncoderModel.from_pretrained(path / "text_encoder_3", torch_dtype=dtype)
        bundle.tokenizer_3 = AutoTokenizer.from_pretrained(path / "tokenizer_3")
    return bundle.to(device)
