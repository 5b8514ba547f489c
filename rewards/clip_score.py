"""CLIP score with transformers' CLIP (default ``openai/clip-vit-large-patch14``).

``clip_score = 100 · max(cos(image, text), 0)``, the convention of torchmetrics' ``CLIPScore``
(Hessel et al. 2021 use 2.5·max(cos, 0); DB's CoDe baseline multiplies the cosine by 20). Images
are CLIP-preprocessed (Resize 224 bicubic, CenterCrop 224, CLIP mean/std) as ``CLIPProcessor`` does.

Scale: about 15…35 for SD images; higher = better text–image agreement. Differentiable (except
where the cosine is clamped at 0); the resize is clamped to [0, 1] like the processor's 8-bit output, so
pixels where bicubic overshoots get zero gradient (``rewards/preprocess.py``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from rewards.checkpoints import cache_root, resolve_dir
from rewards.clip_common import ClipPairScorer, load_clip_dir, preprocess_params, tokenizer_from
from rewards.preprocess import clip_preprocess
from rewards.registry import register

MODEL_REPO = "openai/clip-vit-large-patch14"
INSTALL = ("put a transformers save of openai/clip-vit-large-patch14 in <cache_dir>/clip-vit-large-patch14/, "
           "or run once online, or pass model=/path/to/clip")


def load_clip_score(model: str | Path | None = None, *, scale: float = 100.0, cache_dir: str | Path | None = None,
                    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                    allow_download: bool = True) -> ClipPairScorer:
    """CLIP score from a CLIP model dir: explicit → ``<cache_dir>/clip-vit-large-patch14`` → hub."""
    root = cache_root(cache_dir)
    model_dir = resolve_dir("CLIP model directory", explicit=model, candidates=[root / "clip-vit-large-patch14"],
                            install=INSTALL, hub_repo=MODEL_REPO, download_to=root / "clip-vit-large-patch14",
                            allow_patterns=["*.json", "*.txt", "model.safetensors"], allow_download=allow_download)
    clip = load_clip_dir(model_dir, "CLIP score", "CLIPModel", dtype)
    size, mean, std = preprocess_params(model_dir, clip.config.vision_config.image_size)
    # CLIPProcessor works on 8-bit images: clamped after resizing (rewards/preprocess.py)
    pre = partial(clip_preprocess, size=size, mean=mean, std=std, crop="transformers", clamp=True)
    scorer = ClipPairScorer("clip_score", clip, tokenizer_from(model_dir), pre, scale=scale, floor=0.0)
    return scorer.to(device=device, dtype=dtype).eval().requires_grad_(False)


@register("clip_score",
          scale="100·max(cos(image, text), 0) (torchmetrics CLIPScore), about 15…35; higher = better agreement",
          description="CLIP score with openai/clip-vit-large-patch14 (transformers)", differentiable=True,
          needs="openai/clip-vit-large-patch14")
def _clip_score(**kwargs) -> ClipPairScorer:
    return load_clip_score(**kwargs)
