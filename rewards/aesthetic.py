"""LAION aesthetic predictor v2 (christophschuhmann/improved-aesthetic-predictor).

Official computation (``simple_inference.py``; DDPO's ``aesthetic_scorer.py`` does the same on
transformers): CLIP ViT-L/14 image embedding (``encode_image`` = projected pooled output) of the
CLIP-preprocessed image (Resize 224 bicubic, CenterCrop 224, CLIP mean/std), divided by its L2 norm,
then the MLP of ``sac+logos+ava1-l14-linearMSE.pth``: Linear(768,1024) → Dropout → Linear(1024,128) →
Dropout → Linear(128,64) → Dropout → Linear(64,16) → Linear(16,1), no activations.

Scale: predicted AVA-style rating, about 1…10 (most photos 4…7); higher = more aesthetic.
Differentiable with respect to the images, but the gradients are those of the clamped function: the
official path is PIL only (8-bit output after resizing), so the resize is clamped to [0, 1] and pixels
where bicubic overshoots (hard edges) get zero gradient (``rewards/preprocess.py``). Not a reward of the
paper (DB drops it; DDPO/DAS use it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from rewards.checkpoints import cache_root, load_strict, load_torch_file, require_keys, resolve_dir, resolve_file
from rewards.clip_common import clip_image_embeds, load_clip_dir
from rewards.preprocess import CLIP_MEAN, CLIP_STD, clip_preprocess
from rewards.registry import check_images, register

MLP_FILE = "sac+logos+ava1-l14-linearMSE.pth"
MLP_URL = f"https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/{MLP_FILE}"
CLIP_REPO = "openai/clip-vit-large-patch14"
MODEL_PATTERNS = ["*.json", "*.txt", "model.safetensors"]
INSTALL = (f"put {MLP_FILE} (from {MLP_URL}) in <cache_dir>/aesthetic/ and a transformers save of {CLIP_REPO} in "
           "<cache_dir>/clip-vit-large-patch14/ (or run once online), or pass checkpoint=... clip_model=...")


def aesthetic_mlp(dim: int = 768) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                         nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))


class AestheticScorer(nn.Module):
    """CLIP ViT-L/14 image embedding → L2 normalise → MLP. Images (N,3,H,W) in [0,1] → (N,) ratings."""

    name = "aesthetic"

    def __init__(self, clip_vision, mlp: nn.Sequential, size: int) -> None:
        super().__init__()
        self.clip, self.mlp, self.size = clip_vision, mlp, size

    def score_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        emb = clip_image_embeds(self.clip, pixel_values)
        return self.mlp(emb / emb.norm(dim=-1, keepdim=True)).squeeze(-1)

    def forward(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        check_images(images, prompts)
        p = self.mlp[0].weight
        # clamped after resizing like the official 8-bit PIL path (the only official one; rewards/preprocess.py)
        pixels = clip_preprocess(images.to(p.device, p.dtype), self.size, CLIP_MEAN, CLIP_STD, crop="torchvision",
                                 clamp=True)
        return self.score_pixels(pixels).float()


def load_aesthetic(checkpoint: str | Path | None = None, clip_model: str | Path | None = None, *,
                   cache_dir: str | Path | None = None, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, allow_download: bool = True) -> AestheticScorer:
    """Load the MLP ``checkpoint`` (``sac+logos+ava1-l14-linearMSE.pth``) and the CLIP ViT-L/14 ``clip_model`` dir.

    Looked for: explicit paths; ``<cache_dir>/aesthetic/<MLP_FILE>`` and ``<cache_dir>/clip-vit-large-patch14/``;
    then, online, the official GitHub URL and the hub repo ``openai/clip-vit-large-patch14``.
    """
    root = cache_root(cache_dir)
    mlp_path = resolve_file(f"LAION aesthetic MLP {MLP_FILE}", explicit=checkpoint,
                            candidates=[root / "aesthetic" / MLP_FILE], install=INSTALL, url=MLP_URL,
                            download_to=root / "aesthetic", allow_download=allow_download)
    clip_dir = resolve_dir("CLIP ViT-L/14 model directory", explicit=clip_model,
                           candidates=[root / "clip-vit-large-patch14"], install=INSTALL, hub_repo=CLIP_REPO,
                           download_to=root / "clip-vit-large-patch14", allow_patterns=MODEL_PATTERNS,
                           allow_download=allow_download)
    sd = load_torch_file(mlp_path, "LAION aesthetic MLP")
    require_keys(sd, ["layers.0.weight", "layers.7.weight"], mlp_path, "LAION aesthetic MLP")
    clip = load_clip_dir(clip_dir, "the LAION aesthetic predictor", "CLIPModel", dtype)
    mlp = aesthetic_mlp(sd["layers.0.weight"].shape[1])
    load_strict(mlp, {k[len("layers."):]: v for k, v in sd.items()}, mlp_path, "LAION aesthetic MLP")
    if mlp[0].in_features != clip.config.projection_dim:
        raise ValueError(f"{mlp_path} expects {mlp[0].in_features}-d embeddings but {clip_dir} gives "
                         f"{clip.config.projection_dim}-d (the v2 predictor needs CLIP ViT-L/14)")
    scorer = AestheticScorer(clip, mlp, clip.config.vision_config.image_size)
    return scorer.to(device=device, dtype=dtype).eval().requires_grad_(False)


@register("aesthetic",
          scale="LAION aesthetic v2 rating, about 1…10 (photos mostly 4…7); higher = more aesthetic",
          description="LAION aesthetic predictor v2: CLIP ViT-L/14 embedding (normalised) → official MLP",
          differentiable=True,
          needs=f"{MLP_FILE} + openai/clip-vit-large-patch14 (see rewards/README.md)")
def _aesthetic(**kwargs) -> AestheticScorer:
    return load_aesthetic(**kwargs)
