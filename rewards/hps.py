"""HPSv2.1 (Wu et al. 2023, ``xswu/HPSv2``: ``HPS_v2.1_compressed.pt``) on transformers' CLIP.

The official checkpoint is an open_clip ViT-H-14 state dict (``{"state_dict": ...}``); open_clip drags
torchvision in, so the weights are converted to ``transformers.CLIPModel`` by the key map below.
Official score (``hpsv2.score``, ``hps_version="v2.1"``; HPSv2's vendored open_clip with
``light_augmentation=True`` → ``image_transform(..., resize_longest_max=True)``):

* image: ``ToTensor`` → ``ResizeMaxSize(224, fill=0)`` on the float tensor (longest edge → 224, bicubic,
  not clamped; zero letterbox to 224×224, no crop) → CLIP mean/std; re-stated by
  :func:`rewards.preprocess.letterbox_preprocess`;
* prompt: open_clip's clean-up (ftfy, HTML unescape ×2, whitespace, lower case;
  :mod:`rewards.open_clip_text`), then the CLIP BPE (77 tokens);
* ``model(image, text)`` → L2-normalised features, HPS = ``image_features @ text_features.T`` diagonal,
  i.e. the plain cosine (no logit scale).

Scale: cosine, about 0.20…0.35 for SD images (the HPSv2 paper reports ×100); higher = more preferred
by humans. Differentiable with respect to the images (no clamp anywhere, as in the official transform).
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import torch

from rewards.checkpoints import (
    CheckpointMismatchError,
    cache_root,
    load_strict,
    load_torch_file,
    require_keys,
    resolve_file,
)
from rewards.clip_common import ClipPairScorer, tokenizer_from
from rewards.open_clip_text import ftfy_missing_warning, open_clip_clean
from rewards.preprocess import CLIP_MEAN, CLIP_STD, letterbox_preprocess
from rewards.registry import register

HUB_REPO = "xswu/HPSv2"
FILES = {"v2.1": "HPS_v2.1_compressed.pt", "v2.0": "HPS_v2_compressed.pt"}
INSTALL = ("python -c \"from huggingface_hub import hf_hub_download as d; d('xswu/HPSv2', 'HPS_v2.1_compressed.pt', "
           "local_dir='<cache_dir>/HPSv2')\"  (or pass checkpoint=/path/to/HPS_v2.1_compressed.pt)")
UNUSED_KEYS = ("attn_mask", "visual.attn_mask")  # buffers of some open_clip versions

_BLOCK = [(r"\.ln_1\.", ".layer_norm1."), (r"\.ln_2\.", ".layer_norm2."), (r"\.attn\.out_proj\.", ".self_attn.out_proj."),
          (r"\.mlp\.c_fc\.", ".mlp.fc1."), (r"\.mlp\.c_proj\.", ".mlp.fc2.")]


def map_open_clip_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip CLIP (ViT) state dict → transformers ``CLIPModel`` state dict."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k in UNUSED_KEYS:
            continue
        if k.startswith("visual."):
            tower, name = "vision_model.", k[len("visual."):]
        else:
            tower, name = "text_model.", k
        if name.startswith("transformer.resblocks."):
            name = "encoder.layers." + name[len("transformer.resblocks."):]
            if ".attn.in_proj_" in name:
                head, kind = name.split(".attn.in_proj_")
                for part, t in zip(("q", "k", "v"), v.chunk(3, dim=0)):
                    out[f"{tower}{head}.self_attn.{part}_proj.{kind}"] = t
                continue
            for pat, rep in _BLOCK:
                name = re.sub(pat, rep, name)
            out[tower + name] = v
            continue
        simple = {"visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
                  "visual.class_embedding": "vision_model.embeddings.class_embedding",
                  "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
                  "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
                  "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
                  "visual.ln_post.weight": "vision_model.post_layernorm.weight",
                  "visual.ln_post.bias": "vision_model.post_layernorm.bias",
                  "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
                  "positional_embedding": "text_model.embeddings.position_embedding.weight",
                  "ln_final.weight": "text_model.final_layer_norm.weight",
                  "ln_final.bias": "text_model.final_layer_norm.bias",
                  "logit_scale": "logit_scale"}
        if k in simple:
            out[simple[k]] = v
        elif k == "visual.proj":
            out["visual_projection.weight"] = v.t().contiguous()
        elif k == "text_projection":
            out["text_projection.weight"] = v.t().contiguous()
        else:
            raise CheckpointMismatchError(f"HPS checkpoint has a key the open_clip ViT → CLIP map does not know: {k!r}")
    return out


def clip_config_from_open_clip(sd: dict[str, torch.Tensor], vision_heads: int, text_heads: int):
    """A ``CLIPConfig`` with every size read from the open_clip state dict (heads are not in the shapes)."""
    from transformers import CLIPConfig

    vw = sd["visual.class_embedding"].shape[-1]
    patch = sd["visual.conv1.weight"].shape[-1]
    grid = int(round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5))
    tw = sd["token_embedding.weight"].shape[1]

    def n_layers(prefix):
        return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})

    text = dict(vocab_size=sd["token_embedding.weight"].shape[0], hidden_size=tw,
                intermediate_size=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                num_hidden_layers=n_layers("transformer.resblocks."), num_attention_heads=text_heads,
                max_position_embeddings=sd["positional_embedding"].shape[0], hidden_act="gelu",
                layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    vision = dict(hidden_size=vw, intermediate_size=sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                  num_hidden_layers=n_layers("visual.transformer.resblocks."), num_attention_heads=vision_heads,
                  image_size=grid * patch, patch_size=patch, hidden_act="gelu", layer_norm_eps=1e-5)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=sd["visual.proj"].shape[1])


def load_hps(checkpoint: str | Path | None = None, *, version: str = "v2.1", cache_dir: str | Path | None = None,
             device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, vision_heads: int = 16,
             text_heads: int = 16, allow_download: bool = True) -> ClipPairScorer:
    """HPSv2.x from its open_clip checkpoint: explicit → ``<cache_dir>/HPSv2/<file>`` → hub ``xswu/HPSv2``.

    ``vision_heads``/``text_heads``: 16/16 for ViT-H-14 (vision head width 80, text 64).
    """
    from transformers import CLIPModel

    if version not in FILES:
        raise ValueError(f"HPS version must be one of {sorted(FILES)}, got {version!r}")
    root = cache_root(cache_dir) / "HPSv2"
    path = resolve_file(f"HPS{version} checkpoint {FILES[version]}", explicit=checkpoint,
                        candidates=[root / FILES[version]], install=INSTALL.replace("HPS_v2.1_compressed.pt", FILES[version]),
                        hub=(HUB_REPO, FILES[version]), download_to=root, allow_download=allow_download)
    obj = load_torch_file(path, "HPSv2")
    sd = obj.get("state_dict", obj)
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    require_keys(sd, ["visual.conv1.weight", "visual.proj", "token_embedding.weight", "text_projection"], path,
                 "HPSv2 (open_clip ViT)")
    mapped = map_open_clip_keys(sd)
    model = CLIPModel(clip_config_from_open_clip(sd, vision_heads, text_heads))
    load_strict(model, {k: v.float() for k, v in mapped.items()}, path, "HPSv2 (transformers CLIP)")
    size = model.config.vision_config.image_size
    ftfy_missing_warning()
    pre = partial(letterbox_preprocess, size=size, mean=CLIP_MEAN, std=CLIP_STD)
    scorer = ClipPairScorer(f"hps_{version}", model.eval().requires_grad_(False), tokenizer_from(None, 77), pre,
                            text_clean=open_clip_clean, scale=1.0)
    return scorer.to(device=device, dtype=dtype).eval().requires_grad_(False)


@register("hps",
          scale="HPSv2.1 = cos(image, text), about 0.20…0.35 (×100 in the HPSv2 paper); higher = more preferred",
          description="Human Preference Score v2.1 (open_clip ViT-H-14 converted to transformers CLIP)",
          differentiable=True, needs="HPS_v2.1_compressed.pt from xswu/HPSv2")
def _hps(**kwargs) -> ClipPairScorer:
    return load_hps(**kwargs)
