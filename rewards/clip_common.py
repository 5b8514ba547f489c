"""Shared pieces of the CLIP-based rewards (LAION aesthetic, PickScore, HPSv2, CLIP score).

* :func:`load_clip_dir` loads a transformers CLIP model directory after checking it holds a CLIP;
* :func:`tokenizer_from` takes the tokenizer from a checkpoint/processor directory when it has
  ``vocab.json`` + ``merges.txt`` (length checked: 49408), else builds the real one offline
  (``dbcore.clip_tokenizer``);
* :func:`preprocess_params` reads size/mean/std from ``preprocessor_config.json`` when present;
* :class:`ClipPairScorer` computes ``scale · cos(image, text)`` for image/prompt pairs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from rewards.checkpoints import CheckpointMismatchError
from rewards.preprocess import CLIP_MEAN, CLIP_STD
from rewards.registry import check_images

CLIP_VOCAB_SIZE = 49408


def check_clip_dir(path: Path, what: str) -> dict:
    """Return ``config.json`` of a CLIP directory; raise CheckpointMismatchError when it holds another model."""
    cfg = json.loads((Path(path) / "config.json").read_text())
    kind = cfg.get("model_type")
    if kind not in ("clip", "clip_vision_model"):
        raise CheckpointMismatchError(f"{path} holds a {kind!r} model (config.json model_type), not the CLIP that "
                                      f"{what} needs")
    return cfg


def load_clip_dir(path: Path, what: str, cls_name: str = "CLIPModel", dtype: torch.dtype = torch.float32):
    import transformers

    check_clip_dir(path, what)
    cls = getattr(transformers, cls_name)
    try:
        model, info = cls.from_pretrained(str(path), local_files_only=True, dtype=dtype, output_loading_info=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointMismatchError(f"could not load {what} from {path}: {type(e).__name__}: {e}") from e
    # transformers only warns (and re-initialises) on missing or mis-shaped weights: refuse instead.
    bad = {k: sorted(info.get(k) or [])[:5] for k in ("missing_keys", "mismatched_keys") if info.get(k)}
    if bad:
        raise CheckpointMismatchError(f"{path} does not fit {cls_name} for {what}: {bad}")
    return model.eval().requires_grad_(False)


def tokenizer_from(path: Path | None, model_max_length: int = 77):
    """CLIP tokenizer from ``path`` (vocab.json + merges.txt, or tokenizer.json), else the vendored builder.

    The length is always checked (49408): transformers silently builds a 2-token CLIP tokenizer from
    an incomplete directory.
    """
    from dbcore.clip_tokenizer import check_clip_tokenizer, clip_tokenizer

    if path is None:
        return clip_tokenizer(model_max_length)
    path = Path(path)
    if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        from transformers import CLIPTokenizer

        tok = CLIPTokenizer(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"),
                            model_max_length=model_max_length)
    elif (path / "tokenizer.json").is_file():
        from transformers import CLIPTokenizer

        tok = CLIPTokenizer.from_pretrained(str(path), local_files_only=True, model_max_length=model_max_length)
    else:
        return clip_tokenizer(model_max_length)
    check_clip_tokenizer(tok, source=str(path))
    return tok


def _image_processor_config(path: Path) -> dict | None:
    if (path / "preprocessor_config.json").is_file():
        return json.loads((path / "preprocessor_config.json").read_text())
    if (path / "processor_config.json").is_file():  # transformers ≥5 saves processors as one file
        return json.loads((path / "processor_config.json").read_text()).get("image_processor")
    return None


def preprocess_params(path: Path | None, default_size: int) -> tuple[int, tuple, tuple]:
    """(size, mean, std) from the directory's image-processor config if present, else (default_size, CLIP mean/std)."""
    c = _image_processor_config(Path(path)) if path is not None else None
    if not c:
        return default_size, CLIP_MEAN, CLIP_STD
    crop = c.get("crop_size", default_size)
    size = crop.get("height", default_size) if isinstance(crop, dict) else int(crop)
    return size, tuple(c.get("image_mean", CLIP_MEAN)), tuple(c.get("image_std", CLIP_STD))


def clip_image_embeds(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Projected image embedding (not normalised): visual_projection(vision_model(x).pooler_output). (N, P)"""
    return model.visual_projection(model.vision_model(pixel_values=pixel_values).pooler_output)


def clip_text_embeds(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Projected text embedding (not normalised). (N, P)"""
    out = model.text_model(input_ids=input_ids, attention_mask=attention_mask)
    return model.text_projection(out.pooler_output)


class ClipPairScorer(nn.Module):
    """``scale · cos(image_i, prompt_i)`` (optionally ``+ shift``, clamped at ``floor``) for a CLIPModel. → (N,)

    ``preprocess``: (N, 3, H, W) in [0, 1] → normalised (N, 3, S, S) pixels (``rewards.preprocess``).
    ``text_clean``: applied to each prompt before the tokenizer (HPSv2: open_clip's clean-up), or None.
    ``scale="logit_scale"`` uses the model's ``logit_scale.exp()`` (PickScore); a number is used as is.
    """

    def __init__(self, name: str, model, tokenizer, preprocess: Callable[[torch.Tensor], torch.Tensor], *,
                 text_clean: Callable[[str], str] | None = None, scale: float | str = 1.0, shift: float = 0.0,
                 floor: float | None = None) -> None:
        super().__init__()
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.preprocess, self.text_clean = preprocess, text_clean
        self.scale, self.shift, self.floor = scale, shift, floor

    def tokenize(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        texts = [self.text_clean(p) for p in prompts] if self.text_clean is not None else list(prompts)
        enc = self.tokenizer(texts, padding="max_length", truncation=True,
                             max_length=self.tokenizer.model_max_length, return_tensors="pt")
        dev = self.model.logit_scale.device
        return {"input_ids": enc["input_ids"].to(dev), "attention_mask": enc["attention_mask"].to(dev)}

    def score_pixels(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor) -> torch.Tensor:
        img = clip_image_embeds(self.model, pixel_values)
        txt = clip_text_embeds(self.model, input_ids, attention_mask)
        cos = (img / img.norm(dim=-1, keepdim=True) * (txt / txt.norm(dim=-1, keepdim=True))).sum(-1)
        scale = self.model.logit_scale.exp() if self.scale == "logit_scale" else self.scale
        s = scale * cos
        if self.floor is not None:
            s = s.clamp(min=self.floor)
        return s + self.shift

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        check_images(images, prompts)
        p = self.model.logit_scale
        pixels = self.preprocess(images.to(p.device, p.dtype))
        return self.score_pixels(pixels, **self.tokenize(prompts)).float()
