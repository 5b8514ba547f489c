"""ImageReward (Xu et al. 2023, zai-org/ImageReward v1.0, formerly THUDM) rebuilt on transformers' BLIP models.

The ``image-reward`` package cannot be installed beside the pinned stack (docs/environment.md §1–§2),
so the scorer is rebuilt from ``BlipVisionModel`` + ``BlipTextModel`` and the official ``ImageReward.pt``
is loaded through a key map. The computation is the package's ``ImageReward.score``:

* image: Resize(224, bicubic) → CenterCrop(224) → Normalize(CLIP mean/std) (torchvision crop rounding);
* prompt: bert-base-uncased tokenizer + ``[DEC]`` (bos) + ``[ENC]`` (30524 tokens), padded/truncated
  to 35 tokens, ids used as they are;
* BLIP ViT-L/16 image tokens → BERT text encoder with cross-attention → hidden state of token 0 →
  MLP 768-1024-128-64-16-1 (no activations; the dropouts are inactive) →
  ``(mlp − 0.16717362830052426) / 1.0333394966054072``.

Scale: normalised ImageReward, roughly −2 … +2 (mean 0, std 1 over the authors' data); higher =
better text–image alignment and preference. Differentiable with respect to the images: the resize is not
clamped to [0, 1], as in the official differentiable path (``ImageReward/ReFL.py``: the decoded image is
clamped *before* ``Resize(224, BICUBIC)`` on the float tensor, nothing after); the official PIL path
(``ImageReward.score``) clamps implicitly by its 8-bit output, so values differ slightly at hard edges.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from rewards.checkpoints import (
    CheckpointMismatchError,
    MissingCheckpointError,
    cache_root,
    is_offline,
    load_strict,
    load_torch_file,
    require_keys,
    resolve_file,
)
from rewards.preprocess import clip_preprocess
from rewards.registry import check_images, register

IR_MEAN = 0.16717362830052426
IR_STD = 1.0333394966054072
MAX_LENGTH = 35
TOKENIZER_LEN = 30524
HUB_REPO = "zai-org/ImageReward"  # the hub organisation THUDM was renamed zai-org
HUB_REPO_OLD = "THUDM/ImageReward"  # tried when the new name cannot be fetched
VENDORED_VOCAB = Path(__file__).parent / "assets" / "bert-base-uncased-vocab.txt"
INSTALL = "bash install_image_reward.sh --cache_dir <cache_dir>   (or pass checkpoint=/path/to/ImageReward.pt)"

# Keys of ImageReward.pt that the scorer does not use (BLIP's contrastive projections, position-id buffer).
UNUSED_PREFIXES = ("blip.vision_proj.", "blip.text_proj.", "blip.itm_head.", "blip.text_encoder.embeddings.position_ids")
_VISION_RENAMES = [  # (pattern, replacement) on keys after stripping "blip.visual_encoder."
    (r"^blocks\.", "encoder.layers."),
    (r"\.attn\.qkv\.", ".self_attn.qkv."),
    (r"\.attn\.proj\.", ".self_attn.projection."),
    (r"\.norm1\.", ".layer_norm1."),
    (r"\.norm2\.", ".layer_norm2."),
    (r"^norm\.", "post_layernorm."),
    (r"^patch_embed\.proj\.", "embeddings.patch_embedding."),
    (r"^pos_embed$", "embeddings.position_embedding"),
    (r"^cls_token$", "embeddings.class_embedding"),
]


def map_image_reward_keys(sd: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """Split an ``ImageReward.pt`` state dict into (vision, text, mlp) dicts with transformers names."""
    vision, text, mlp = {}, {}, {}
    for k, v in sd.items():
        if k.startswith(UNUSED_PREFIXES):
            continue
        if k.startswith("blip.visual_encoder."):
            name = k[len("blip.visual_encoder."):]
            for pat, rep in _VISION_RENAMES:
                name = re.sub(pat, rep, name)
            vision[name] = v
        elif k.startswith("blip.text_encoder."):
            text[k[len("blip.text_encoder."):]] = v
        elif k.startswith("mlp.layers."):
            mlp[k[len("mlp."):]] = v
        else:
            raise CheckpointMismatchError(f"ImageReward checkpoint has an unknown key {k!r}")
    return vision, text, mlp


def image_reward_tokenizer(vocab: str | Path = VENDORED_VOCAB):
    """The ImageReward tokenizer built offline: bert-base-uncased + ``[DEC]`` bos + ``[ENC]`` (30524 tokens)."""
    from transformers import BertTokenizer

    if not Path(vocab).is_file():
        raise MissingCheckpointError("bert-base-uncased vocab.txt", [str(vocab)], INSTALL)
    tok = BertTokenizer(vocab=str(vocab), do_lower_case=True)  # transformers 5: `vocab=`, not `vocab_file=`
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    if len(tok) != TOKENIZER_LEN:
        raise ValueError(f"ImageReward tokenizer from {vocab} has {len(tok)} tokens, expected {TOKENIZER_LEN} "
                         "(the vocab.txt is not bert-base-uncased's)")
    return tok


def _mlp() -> nn.Sequential:
    # ImageReward's MLP: the ReLUs are commented out upstream; dropouts are no-ops in eval.
    return nn.Sequential(nn.Linear(768, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                         nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))


class ImageRewardScorer(nn.Module):
    """BLIP ViT + BERT cross-attention encoder + MLP. Call with images (N,3,H,W) in [0,1] and N prompts → (N,)."""

    name = "image_reward"

    def __init__(self, vision_config, text_config, tokenizer) -> None:
        super().__init__()
        from transformers import BlipTextModel, BlipVisionModel

        self.vision = BlipVisionModel(vision_config)
        self.text = BlipTextModel(text_config, add_pooling_layer=False)
        self.layers = _mlp()  # named so that "mlp.layers.*" → "layers.*"
        self.tokenizer = tokenizer
        self.image_size = vision_config.image_size

    def tokenize(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=MAX_LENGTH,
                             return_tensors="pt")
        dev = self.layers[0].weight.device
        return {"input_ids": enc["input_ids"].to(dev), "attention_mask": enc["attention_mask"].to(dev)}

    def score_pixels(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised ImageReward from preprocessed pixels (N,3,224,224) and token ids (N,35). → (N,)"""
        image_embeds = self.vision(pixel_values=pixel_values).last_hidden_state
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        out = self.text(input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds,
                        encoder_attention_mask=image_atts)
        raw = self.layers(out.last_hidden_state[:, 0, :]).squeeze(-1)
        return (raw - IR_MEAN) / IR_STD

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        check_images(images, prompts)
        p = self.layers[0].weight
        # not clamped after resizing: the official differentiable path (ReFL.py) is not (rewards/preprocess.py)
        pixels = clip_preprocess(images.to(p.device, p.dtype), self.image_size, crop="torchvision", clamp=False)
        return self.score_pixels(pixels, **self.tokenize(prompts)).float()


def _configs(sd_vision: dict, sd_text: dict, med_config: dict, vision_heads: int):
    from transformers import BlipTextConfig, BlipVisionConfig

    hidden = sd_vision["embeddings.class_embedding"].shape[-1]
    patch = sd_vision["embeddings.patch_embedding.weight"].shape[-1]
    n_pos = sd_vision["embeddings.position_embedding"].shape[1]
    layers = len({k.split(".")[2] for k in sd_vision if k.startswith("encoder.layers.")})
    inter = sd_vision["encoder.layers.0.mlp.fc1.weight"].shape[0]
    vcfg = BlipVisionConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                            num_attention_heads=vision_heads, image_size=int(round((n_pos - 1) ** 0.5)) * patch,
                            patch_size=patch, layer_norm_eps=1e-6)
    c = med_config
    tcfg = BlipTextConfig(vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], encoder_hidden_size=hidden,
                          intermediate_size=c["intermediate_size"], num_hidden_layers=c["num_hidden_layers"],
                          num_attention_heads=c["num_attention_heads"],
                          max_position_embeddings=c["max_position_embeddings"],
                          layer_norm_eps=c.get("layer_norm_eps", 1e-12), hidden_act=c.get("hidden_act", "gelu"),
                          type_vocab_size=c.get("type_vocab_size", 2), pad_token_id=c.get("pad_token_id", 0))
    return vcfg, tcfg


def _resolve_from_hub(what: str, filename: str, **kwargs) -> Path:
    """``resolve_file`` with the hub repo ``zai-org/ImageReward``, then the old ``THUDM/ImageReward``."""
    try:
        return resolve_file(what, hub=(HUB_REPO, filename), **kwargs)
    except MissingCheckpointError:
        if not kwargs.get("allow_download", True) or is_offline() or kwargs.get("explicit") is not None:
            raise
        return resolve_file(what, hub=(HUB_REPO_OLD, filename), **kwargs)


def load_image_reward(checkpoint: str | Path | None = None, med_config: str | Path | None = None,
                      vocab: str | Path | None = None, *, cache_dir: str | Path | None = None,
                      device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                      vision_heads: int = 16, allow_download: bool = True) -> ImageRewardScorer:
    """Load ImageReward v1.0 from ``ImageReward.pt`` + ``med_config.json`` (+ bert-base-uncased ``vocab.txt``).

    Looked for, in order: the explicit paths; ``<cache_dir>/ImageReward/``; ``~/.cache/ImageReward/`` (where
    the official package downloads); the hub ``zai-org/ImageReward`` (then the old name ``THUDM/ImageReward``)
    when online. The vocabulary falls back
    to the copy vendored in ``rewards/assets``. ``vision_heads``: 16 for BLIP ViT-L (head dim 64).
    """
    root = cache_root(cache_dir) / "ImageReward"
    legacy = Path.home() / ".cache" / "ImageReward"
    ckpt = _resolve_from_hub("ImageReward checkpoint ImageReward.pt", "ImageReward.pt", explicit=checkpoint,
                             candidates=[root / "ImageReward.pt", legacy / "ImageReward.pt"], install=INSTALL,
                             download_to=root, allow_download=allow_download)
    cfg_path = _resolve_from_hub("ImageReward config med_config.json", "med_config.json", explicit=med_config,
                                 candidates=[ckpt.parent / "med_config.json", root / "med_config.json",
                                             legacy / "med_config.json"], install=INSTALL,
                                 download_to=root, allow_download=allow_download)
    vocab_path = resolve_file("bert-base-uncased vocab.txt", explicit=vocab,
                              candidates=[root / "vocab.txt", VENDORED_VOCAB], install=INSTALL)
    med = json.loads(Path(cfg_path).read_text())
    if med.get("vocab_size") != TOKENIZER_LEN:
        raise CheckpointMismatchError(f"{cfg_path}: vocab_size {med.get('vocab_size')} != {TOKENIZER_LEN}; "
                                      "this is not ImageReward's med_config.json")

    sd = load_torch_file(ckpt, "ImageReward")
    require_keys(sd, ["blip.visual_encoder.cls_token", "blip.text_encoder.embeddings.word_embeddings.weight",
                      "mlp.layers.0.weight"], ckpt, "ImageReward")
    vision_sd, text_sd, mlp_sd = map_image_reward_keys(sd)
    vcfg, tcfg = _configs(vision_sd, text_sd, med, vision_heads)
    model = ImageRewardScorer(vcfg, tcfg, image_reward_tokenizer(vocab_path))
    load_strict(model.vision, vision_sd, ckpt, "ImageReward BLIP vision")
    load_strict(model.text, text_sd, ckpt, "ImageReward BLIP text")
    load_strict(model.layers, {k[len("layers."):]: v for k, v in mlp_sd.items()}, ckpt, "ImageReward MLP")
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


@register("image_reward",
          scale="normalised ImageReward, about −2…+2 (z-score over the authors' data); higher = better text–image "
                "alignment/preference (the paper's convention)",
          description="ImageReward v1.0 (BLIP ViT-L + BERT + MLP), rebuilt on transformers BLIP",
          differentiable=True,
          needs="ImageReward.pt + med_config.json (bash install_image_reward.sh)")
def _image_reward(**kwargs) -> ImageRewardScorer:
    return load_image_reward(**kwargs)
