"""PickScore v1 (Kirstain et al. 2023, ``yuvalkirstain/PickScore_v1``).

Official computation (the PickScore README): processor ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``
(CLIP tokenizer, 77 tokens; Resize 224 bicubic, CenterCrop 224, CLIP mean/std), model
``yuvalkirstain/PickScore_v1`` (a CLIP ViT-H/14), score = ``logit_scale.exp() · cos(text, image)``.

Scale: raw PickScore is about 17…25 for SD-1.5 images (logit_scale.exp() ≈ 100 times a cosine);
higher = more preferred by Pick-a-Pic users. The paper reports PickScore **shifted by −19**
(DB's ``baselines/scorers/PickScore_scorer.py`` returns score − 19), so ``pickscore_shifted`` (or
``shift=-19``) gives the paper's numbers (about −2…+6). Differentiable with respect to the images; the
resize is clamped to [0, 1] like the processor's 8-bit output, so the gradients are those of the clamped
function (zero where bicubic overshoots; ``rewards/preprocess.py``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from rewards.checkpoints import cache_root, resolve_dir
from rewards.clip_common import ClipPairScorer, load_clip_dir, preprocess_params, tokenizer_from
from rewards.preprocess import clip_preprocess
from rewards.registry import register

MODEL_REPO = "yuvalkirstain/PickScore_v1"
PROCESSOR_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
PAPER_SHIFT = -19.0
INSTALL = ("put a transformers save of yuvalkirstain/PickScore_v1 in <cache_dir>/PickScore_v1/ (and optionally the "
           "processor files of laion/CLIP-ViT-H-14-laion2B-s32B-b79K in <cache_dir>/CLIP-ViT-H-14-laion2B-s32B-b79K/)"
           ", or run once online, or pass model=/path/to/PickScore_v1")


def load_pickscore(model: str | Path | None = None, processor: str | Path | None = None, *, shift: float = 0.0,
                   cache_dir: str | Path | None = None, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, allow_download: bool = True) -> ClipPairScorer:
    """Load PickScore from the ``model`` dir and the processor dir (tokenizer + preprocessing config).

    Model: explicit → ``<cache_dir>/PickScore_v1`` → hub. Processor: explicit →
    ``<cache_dir>/CLIP-ViT-H-14-laion2B-s32B-b79K`` → the model dir → hub → the built-in CLIP tokenizer
    with the standard CLIP preprocessing (which is what the laion processor holds).
    """
    root = cache_root(cache_dir)
    model_dir = resolve_dir("PickScore_v1 model directory", explicit=model, candidates=[root / "PickScore_v1"],
                            install=INSTALL, hub_repo=MODEL_REPO, download_to=root / "PickScore_v1",
                            allow_patterns=["*.json", "*.txt", "model.safetensors"], allow_download=allow_download)
    try:
        proc_dir = resolve_dir("PickScore processor directory", explicit=processor,
                               candidates=[root / "CLIP-ViT-H-14-laion2B-s32B-b79K", model_dir], install=INSTALL,
                               hub_repo=PROCESSOR_REPO, download_to=root / "CLIP-ViT-H-14-laion2B-s32B-b79K",
                               allow_patterns=["*.json", "*.txt"], marker=("preprocessor_config.json", "processor_config.json"),
                               allow_download=allow_download)
    except FileNotFoundError:
        if processor is not None:
            raise
        proc_dir = None  # same BPE vocabulary and CLIP preprocessing, built in
    clip = load_clip_dir(model_dir, "PickScore", "CLIPModel", dtype)
    size, mean, std = preprocess_params(proc_dir, clip.config.vision_config.image_size)
    tok_dir = proc_dir if proc_dir is not None else model_dir
    # CLIPProcessor works on 8-bit images: clamped after resizing (rewards/preprocess.py)
    pre = partial(clip_preprocess, size=size, mean=mean, std=std, crop="transformers", clamp=True)
    scorer = ClipPairScorer("pickscore" if shift == 0 else "pickscore_shifted", clip, tokenizer_from(tok_dir), pre,
                            scale="logit_scale", shift=shift)
    return scorer.to(device=device, dtype=dtype).eval().requires_grad_(False)


@register("pickscore",
          scale="raw PickScore = logit_scale·cos, about 17…25; higher = more preferred (DB's test_eval.py scale)",
          description="PickScore v1 (CLIP ViT-H/14 fine-tuned on Pick-a-Pic)", differentiable=True,
          needs="yuvalkirstain/PickScore_v1 (+ laion/CLIP-ViT-H-14-laion2B-s32B-b79K processor)")
def _pickscore(**kwargs) -> ClipPairScorer:
    return load_pickscore(**kwargs)


@register("pickscore_shifted",
          scale="PickScore − 19, about −2…+6; higher = more preferred (the paper's reported scale)",
          description="PickScore v1 shifted by −19 as in the paper", differentiable=True,
          needs="yuvalkirstain/PickScore_v1 (+ laion/CLIP-ViT-H-14-laion2B-s32B-b79K processor)")
def _pickscore_shifted(**kwargs) -> ClipPairScorer:
    kwargs.setdefault("shift", PAPER_SHIFT)
    return load_pickscore(**kwargs)
