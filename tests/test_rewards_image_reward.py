"""ImageReward: an official-format ImageReward.pt (tiny vision tower, random weights) loaded through the public
loader must score exactly like a plain-tensor re-statement of ImageReward.score (BLIP ViT → BERT with
cross-attention → MLP → (x − mean) / std)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest_rewards import (
    attention,
    gelu,
    hard_edge_images,
    layer_norm,
    official_clip_preprocess,
    official_tensor_clip_preprocess,
    quantized_images,
    to_pil,
)

from rewards import get_reward
from rewards.checkpoints import CheckpointMismatchError, MissingCheckpointError
from rewards.image_reward import IR_MEAN, IR_STD, image_reward_tokenizer

D, VLAYERS, VHEADS, PATCH = 32, 2, 2, 32  # tiny BLIP ViT (the real one: 1024, 24, 16, 16)
H, TLAYERS, THEADS, TINTER, MAXPOS = 768, 1, 12, 64, 40  # text width 768 is fixed by the MLP
VOCAB = 30524


def official_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the key names of the official ImageReward.pt."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=None):
        s = s if s is not None else shape[-1] ** -0.5
        return torch.randn(*shape, generator=g) * s

    def ln(prefix, n):
        return {f"{prefix}.weight": 1 + 0.1 * torch.randn(n, generator=g), f"{prefix}.bias": r(n, s=0.05)}

    sd: dict[str, torch.Tensor] = {}
    v = "blip.visual_encoder."
    npos = (224 // PATCH) ** 2 + 1
    sd |= {v + "cls_token": r(1, 1, D, s=0.5), v + "pos_embed": r(1, npos, D, s=0.5),
           v + "patch_embed.proj.weight": r(D, 3, PATCH, PATCH, s=(3 * PATCH * PATCH) ** -0.5),
           v + "patch_embed.proj.bias": r(D, s=0.05)}
    for i in range(VLAYERS):
        b = f"{v}blocks.{i}."
        sd |= ln(b + "norm1", D) | ln(b + "norm2", D)
        sd |= {b + "attn.qkv.weight": r(3 * D, D), b + "attn.qkv.bias": r(3 * D, s=0.05),
               b + "attn.proj.weight": r(D, D), b + "attn.proj.bias": r(D, s=0.05),
               b + "mlp.fc1.weight": r(4 * D, D), b + "mlp.fc1.bias": r(4 * D, s=0.05),
               b + "mlp.fc2.weight": r(D, 4 * D), b + "mlp.fc2.bias": r(D, s=0.05)}
    sd |= ln(v + "norm", D)
    t = "blip.text_encoder."
    sd |= {t + "embeddings.word_embeddings.weight": r(VOCAB, H, s=0.5),
           t + "embeddings.position_embeddings.weight": r(MAXPOS, H, s=0.5),
           t + "embeddings.position_ids": torch.arange(MAXPOS).unsqueeze(0)}
    sd |= ln(t + "embeddings.LayerNorm", H)
    for i in range(TLAYERS):
        b = f"{t}encoder.layer.{i}."
        for att, kv_in in (("attention", H), ("crossattention", D)):
            sd |= {f"{b}{att}.self.query.weight": r(H, H), f"{b}{att}.self.query.bias": r(H, s=0.05),
                   f"{b}{att}.self.key.weight": r(H, kv_in), f"{b}{att}.self.key.bias": r(H, s=0.05),
                   f"{b}{att}.self.value.weight": r(H, kv_in), f"{b}{att}.self.value.bias": r(H, s=0.05),
                   f"{b}{att}.output.dense.weight": r(H, H), f"{b}{att}.output.dense.bias": r(H, s=0.05)}
            sd |= ln(f"{b}{att}.output.LayerNorm", H)
        sd |= {b + "intermediate.dense.weight": r(TINTER, H), b + "intermediate.dense.bias": r(TINTER, s=0.05),
               b + "output.dense.weight": r(H, TINTER), b + "output.dense.bias": r(H, s=0.05)}
        sd |= ln(b + "output.LayerNorm", H)
    sd |= {"blip.vision_proj.weight": r(256, D), "blip.vision_proj.bias": r(256),
           "blip.text_proj.weight": r(256, H), "blip.text_proj.bias": r(256)}
    for i, (o, n) in zip((0, 2, 4, 6, 7), ((1024, 768), (128, 1024), (64, 128), (16, 64), (1, 16))):
        sd |= {f"mlp.layers.{i}.weight": r(o, n), f"mlp.layers.{i}.bias": r(o, s=0.1)}
    return sd


MED_CONFIG = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "hidden_size": H, "initializer_range": 0.02, "intermediate_size": TINTER,
              "layer_norm_eps": 1e-12, "max_position_embeddings": MAXPOS, "model_type": "bert",
              "num_attention_heads": THEADS, "num_hidden_layers": TLAYERS, "pad_token_id": 0,
              "type_vocab_size": 2, "vocab_size": VOCAB, "encoder_width": 768, "add_cross_attention": True}


def restated_image_reward(sd, pixels, ids, mask):
    """ImageReward.score in plain tensor math on the raw official state dict."""
    v, t = "blip.visual_encoder.", "blip.text_encoder."
    n = pixels.shape[0]
    x = F.conv2d(pixels, sd[v + "patch_embed.proj.weight"], sd[v + "patch_embed.proj.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd[v + "cls_token"].expand(n, -1, -1), x], 1) + sd[v + "pos_embed"]
    for i in range(VLAYERS):
        b = f"{v}blocks.{i}."
        y = layer_norm(x, sd[b + "norm1.weight"], sd[b + "norm1.bias"], 1e-6)
        q, k, vv = (y @ sd[b + "attn.qkv.weight"].T + sd[b + "attn.qkv.bias"]).chunk(3, -1)
        x = x + attention(q, k, vv, VHEADS) @ sd[b + "attn.proj.weight"].T + sd[b + "attn.proj.bias"]
        y = layer_norm(x, sd[b + "norm2.weight"], sd[b + "norm2.bias"], 1e-6)
        y = gelu(y @ sd[b + "mlp.fc1.weight"].T + sd[b + "mlp.fc1.bias"])
        x = x + y @ sd[b + "mlp.fc2.weight"].T + sd[b + "mlp.fc2.bias"]
    img = layer_norm(x, sd[v + "norm.weight"], sd[v + "norm.bias"], 1e-6)

    def lin(z, name):
        return z @ sd[name + ".weight"].T + sd[name + ".bias"]

    e = sd[t + "embeddings.word_embeddings.weight"][ids] + sd[t + "embeddings.position_embeddings.weight"][:ids.shape[1]]
    h = layer_norm(e, sd[t + "embeddings.LayerNorm.weight"], sd[t + "embeddings.LayerNorm.bias"], 1e-12)
    pad_bias = (1.0 - mask[:, None, None, :].float()) * -1e9
    for i in range(TLAYERS):
        b = f"{t}encoder.layer.{i}."
        for att, ctx, bias in (("attention", h, pad_bias), ("crossattention", img, None)):
            a = attention(lin(h, f"{b}{att}.self.query"), lin(ctx, f"{b}{att}.self.key"),
                          lin(ctx, f"{b}{att}.self.value"), THEADS, bias)
            h = layer_norm(lin(a, f"{b}{att}.output.dense") + h, sd[f"{b}{att}.output.LayerNorm.weight"],
                           sd[f"{b}{att}.output.LayerNorm.bias"], 1e-12)
            if att == "attention":
                ctx = img
        m = lin(gelu(lin(h, b + "intermediate.dense")), b + "output.dense")
        h = layer_norm(m + h, sd[b + "output.LayerNorm.weight"], sd[b + "output.LayerNorm.bias"], 1e-12)
    z = h[:, 0]
    for i in (0, 2, 4, 6, 7):
        z = lin(z, f"mlp.layers.{i}")
    return (z.squeeze(-1) - IR_MEAN) / IR_STD


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ir")
    sd = official_state_dict()
    torch.save(sd, d / "ImageReward.pt")
    (d / "med_config.json").write_text(json.dumps(MED_CONFIG))
    return d, sd


@pytest.fixture(scope="module")
def scorer(ckpt_dir):
    d, _ = ckpt_dir
    return get_reward("image_reward", checkpoint=d / "ImageReward.pt", med_config=d / "med_config.json",
                      vision_heads=VHEADS)


PROMPTS = ["a photo of a cat", "A red cube on a blue table, highly detailed, 4k"]


def test_tokenizer_offline_matches_official_ids():
    tok = image_reward_tokenizer()
    assert len(tok) == 30524
    assert tok("a photo of a cat")["input_ids"] == [101, 1037, 6302, 1997, 1037, 4937, 102]
    assert tok.convert_tokens_to_ids(["[DEC]", "[ENC]"]) == [30522, 30523]
    enc = tok(PROMPTS, padding="max_length", truncation=True, max_length=35)
    assert all(len(x) == 35 for x in enc["input_ids"])


def test_score_equals_restatement(scorer, ckpt_dir):
    _, sd = ckpt_dir
    images = quantized_images(2, 224, 224, seed=1)
    got = scorer(images, PROMPTS)
    pixels = torch.stack([official_clip_preprocess(p) for p in to_pil(images)])
    enc = image_reward_tokenizer()(PROMPTS, padding="max_length", truncation=True, max_length=35,
                                   return_tensors="pt")
    want = restated_image_reward(sd, pixels, enc["input_ids"], enc["attention_mask"])
    assert got.shape == (2,)
    assert want.std() > 1e-3  # the two images/prompts do score differently
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_other_sizes_close_to_official(scorer, ckpt_dir):
    _, sd = ckpt_dir
    images = quantized_images(2, 97, 64, seed=2)
    pixels = torch.stack([official_clip_preprocess(p) for p in to_pil(images)])
    enc = image_reward_tokenizer()(PROMPTS, padding="max_length", truncation=True, max_length=35,
                                   return_tensors="pt")
    want = restated_image_reward(sd, pixels, enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(scorer(images, PROMPTS), want, atol=0.05, rtol=0)  # uint8 rounding in PIL only


def test_hard_edges_follow_refl_tensor_path(scorer, ckpt_dir):
    """ReFL.py's differentiable path resizes the float tensor without clamping; bicubic overshoots at hard edges
    and the score (and its gradient) must include the overshoot, as there."""
    _, sd = ckpt_dir
    images = hard_edge_images(2, 64, 80, seed=4, cell=8)
    pixels = torch.stack([official_tensor_clip_preprocess(im) for im in images])
    enc = image_reward_tokenizer()(PROMPTS, padding="max_length", truncation=True, max_length=35,
                                   return_tensors="pt")
    want = restated_image_reward(sd, pixels, enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(scorer(images, PROMPTS), want, atol=1e-4, rtol=0)


def test_gradients_reach_images(scorer):
    images = quantized_images(2, 64, 80, seed=3).requires_grad_(True)
    scorer(images, PROMPTS).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_missing_checkpoint_names_file_places_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(MissingCheckpointError) as e:
        get_reward("image_reward", cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert "ImageReward.pt" in msg and str(tmp_path / "cache" / "ImageReward" / "ImageReward.pt") in msg
    assert "install_image_reward.sh" in msg and "offline" in msg
    assert isinstance(e.value, FileNotFoundError)


def test_checkpoint_of_another_model_is_rejected(tmp_path, ckpt_dir):
    d, _ = ckpt_dir
    torch.save({"layers.0.weight": torch.zeros(1024, 768)}, tmp_path / "ImageReward.pt")
    with pytest.raises(CheckpointMismatchError, match="does not look like a ImageReward checkpoint"):
        get_reward("image_reward", checkpoint=tmp_path / "ImageReward.pt", med_config=d / "med_config.json")
    sd = official_state_dict()
    sd["blip.visual_encoder.blocks.0.attn.proj.weight"] = torch.zeros(D, D + 1)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointMismatchError, match="self_attn.projection.weight"):
        get_reward("image_reward", checkpoint=tmp_path / "bad.pt", med_config=d / "med_config.json",
                   vision_heads=VHEADS)
