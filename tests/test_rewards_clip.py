"""CLIP-family rewards (LAION aesthetic, PickScore, CLIP score, HPSv2.1): tiny checkpoints in the official formats,
loaded through the public loaders, scored against independent re-statements of the official computations."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest_rewards import (
    CLIP_MEAN,
    CLIP_STD,
    attention,
    gelu,
    layer_norm,
    official_clip_preprocess,
    official_letterbox,
    quantized_images,
    randomize_,
    to_pil,
)

from dbcore.clip_tokenizer import clip_tokenizer
from rewards import get_reward
from rewards.checkpoints import CheckpointMismatchError, MissingCheckpointError

PROMPTS = ["a photo of a cat", "an oil painting of a lighthouse at dusk"]


def tiny_clip(projection_dim: int = 16, seed: int = 0):
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                      max_position_embeddings=77, vocab_size=49408),
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, image_size=224, patch_size=32),
                     projection_dim=projection_dim)
    torch.manual_seed(seed)
    model = randomize_(CLIPModel(cfg), seed=seed).eval()
    with torch.no_grad():
        model.logit_scale.fill_(4.6052)  # exp = 100, as in trained CLIPs
    return model


@pytest.fixture(scope="module")
def clip_dirs(tmp_path_factory):
    """A tiny CLIP ViT-L-shaped model dir (projection 768, for the aesthetic MLP), a PickScore-like model dir and a
    laion-style processor dir (tokenizer files + preprocessor_config.json)."""
    from transformers import CLIPImageProcessorPil, CLIPProcessor

    root = tmp_path_factory.mktemp("clip")
    tiny_clip(768, seed=1).save_pretrained(root / "clip_l")
    tiny_clip(16, seed=2).save_pretrained(root / "pick")
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                            image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    CLIPProcessor(image_processor=image_processor, tokenizer=clip_tokenizer()).save_pretrained(root / "proc")
    g = torch.Generator().manual_seed(3)
    mlp = {}
    for i, (o, n) in zip((0, 2, 4, 6, 7), ((1024, 768), (128, 1024), (64, 128), (16, 64), (1, 16))):
        mlp[f"layers.{i}.weight"] = torch.randn(o, n, generator=g) / n ** 0.5
        mlp[f"layers.{i}.bias"] = 0.1 * torch.randn(o, generator=g)
    (root / "aesthetic").mkdir()
    torch.save(mlp, root / "aesthetic" / "sac+logos+ava1-l14-linearMSE.pth")
    return root, mlp


def official_pixels(images, crop):
    return torch.stack([official_clip_preprocess(p, crop=crop) for p in to_pil(images)])


# ---- LAION aesthetic -----------------------------------------------------------------------------------------------

def test_aesthetic_equals_restatement(clip_dirs):
    from transformers import CLIPModel

    root, mlp = clip_dirs
    scorer = get_reward("aesthetic", cache_dir=root.parent, checkpoint=root / "aesthetic" /
                        "sac+logos+ava1-l14-linearMSE.pth", clip_model=root / "clip_l")
    images = quantized_images(3, 224, 224, seed=4)
    got = scorer(images, PROMPTS + ["x"])
    clip = CLIPModel.from_pretrained(root / "clip_l", local_files_only=True).eval()
    with torch.no_grad():
        emb = clip.get_image_features(pixel_values=official_pixels(images, "torchvision")).pooler_output
    z = emb / torch.linalg.vector_norm(emb, dim=1, keepdim=True)
    for i in (0, 2, 4, 6, 7):  # the official MLP, no activations
        z = F.linear(z, mlp[f"layers.{i}.weight"], mlp[f"layers.{i}.bias"])
    want = z[:, 0]
    assert want.std() > 1e-3
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # Other sizes: within the uint8 rounding of the official PIL path.
    images = quantized_images(2, 97, 64, seed=5)
    with torch.no_grad():
        emb = clip.get_image_features(pixel_values=official_pixels(images, "torchvision")).pooler_output
    z = emb / emb.norm(dim=1, keepdim=True)
    for i in (0, 2, 4, 6, 7):
        z = F.linear(z, mlp[f"layers.{i}.weight"], mlp[f"layers.{i}.bias"])
    torch.testing.assert_close(scorer(images, PROMPTS), z[:, 0], atol=0.05, rtol=0)


def test_aesthetic_gradients_and_wrong_files(clip_dirs, tmp_path):
    root, _ = clip_dirs
    ckpt = root / "aesthetic" / "sac+logos+ava1-l14-linearMSE.pth"
    scorer = get_reward("aesthetic", checkpoint=ckpt, clip_model=root / "clip_l")
    images = quantized_images(2, 64, 64).requires_grad_(True)
    scorer(images, PROMPTS).sum().backward()
    assert images.grad.abs().sum() > 0
    torch.save({"visual.conv1.weight": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(CheckpointMismatchError, match="LAION aesthetic MLP"):
        get_reward("aesthetic", checkpoint=tmp_path / "x.pth", clip_model=root / "clip_l")
    (tmp_path / "blip").mkdir()
    (tmp_path / "blip" / "config.json").write_text(json.dumps({"model_type": "blip"}))
    with pytest.raises(CheckpointMismatchError, match="holds a 'blip' model"):
        get_reward("aesthetic", checkpoint=ckpt, clip_model=tmp_path / "blip")


def test_aesthetic_missing_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingCheckpointError) as e:
        get_reward("aesthetic", cache_dir=tmp_path)
    assert "sac+logos+ava1-l14-linearMSE.pth" in str(e.value) and str(tmp_path / "aesthetic") in str(e.value)


# ---- PickScore and CLIP score -------------------------------------------------------------------------------------

def official_pickscore(model_dir, proc_dir, images, prompts):
    """The PickScore README: AutoProcessor + AutoModel, logit_scale.exp() * cosine (per image/prompt pair)."""
    from transformers import AutoModel, AutoProcessor

    processor = AutoProcessor.from_pretrained(proc_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    with torch.no_grad():
        img_in = processor(images=to_pil(images), return_tensors="pt")
        txt_in = processor(text=prompts, padding=True, truncation=True, max_length=77, return_tensors="pt")
        ie = model.get_image_features(**img_in).pooler_output
        te = model.get_text_features(**txt_in).pooler_output
    ie = ie / torch.linalg.vector_norm(ie, dim=-1, keepdim=True)
    te = te / torch.linalg.vector_norm(te, dim=-1, keepdim=True)
    return model.logit_scale.exp() * torch.einsum("nd,nd->n", te, ie), te, ie


def test_pickscore_equals_official(clip_dirs):
    root, _ = clip_dirs
    images = quantized_images(2, 224, 224, seed=6)
    want, _, _ = official_pickscore(root / "pick", root / "proc", images, PROMPTS)
    scorer = get_reward("pickscore", model=root / "pick", processor=root / "proc")
    torch.testing.assert_close(scorer(images, PROMPTS), want, atol=1e-4, rtol=1e-5)
    shifted = get_reward("pickscore_shifted", model=root / "pick", processor=root / "proc")
    torch.testing.assert_close(shifted(images, PROMPTS), want - 19, atol=1e-4, rtol=1e-5)
    images = quantized_images(2, 480, 640, seed=7)  # other size: PIL uint8 rounding only
    want, _, _ = official_pickscore(root / "pick", root / "proc", images, PROMPTS)
    torch.testing.assert_close(scorer(images, PROMPTS), want, atol=1.0, rtol=0)  # ±1 on a ×100 cosine scale
    x = images.clone().requires_grad_(True)
    scorer(x, PROMPTS).sum().backward()
    assert x.grad.abs().sum() > 0


def test_clip_score_equals_official(clip_dirs):
    root, _ = clip_dirs
    images = quantized_images(2, 224, 224, seed=8)
    _, te, ie = official_pickscore(root / "pick", root / "proc", images, PROMPTS)
    want = 100 * (te * ie).sum(-1).clamp(min=0)
    scorer = get_reward("clip_score", model=root / "pick")  # no tokenizer files there: built-in tokenizer
    torch.testing.assert_close(scorer(images, PROMPTS), want, atol=1e-4, rtol=1e-5)


# ---- HPSv2.1 --------------------------------------------------------------------------------------------------------

VW, TW, EMB, LAYERS, HEADS, PATCH = 32, 32, 16, 2, 2, 32


def open_clip_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under open_clip ViT key names (the format of HPS_v2.1_compressed.pt's state_dict)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=None):
        return torch.randn(*shape, generator=g) * (s if s is not None else shape[-1] ** -0.5)

    def block(prefix, w):
        return {f"{prefix}ln_1.weight": 1 + r(w, s=0.1), f"{prefix}ln_1.bias": r(w, s=0.05),
                f"{prefix}attn.in_proj_weight": r(3 * w, w), f"{prefix}attn.in_proj_bias": r(3 * w, s=0.05),
                f"{prefix}attn.out_proj.weight": r(w, w), f"{prefix}attn.out_proj.bias": r(w, s=0.05),
                f"{prefix}ln_2.weight": 1 + r(w, s=0.1), f"{prefix}ln_2.bias": r(w, s=0.05),
                f"{prefix}mlp.c_fc.weight": r(4 * w, w), f"{prefix}mlp.c_fc.bias": r(4 * w, s=0.05),
                f"{prefix}mlp.c_proj.weight": r(w, 4 * w), f"{prefix}mlp.c_proj.bias": r(w, s=0.05)}

    sd = {"visual.class_embedding": r(VW, s=0.5), "visual.positional_embedding": r(50, VW, s=0.5),
          "visual.conv1.weight": r(VW, 3, PATCH, PATCH, s=(3 * PATCH * PATCH) ** -0.5),
          "visual.ln_pre.weight": 1 + r(VW, s=0.1), "visual.ln_pre.bias": r(VW, s=0.05),
          "visual.ln_post.weight": 1 + r(VW, s=0.1), "visual.ln_post.bias": r(VW, s=0.05),
          "visual.proj": r(VW, EMB), "token_embedding.weight": r(49408, TW, s=0.5),
          "positional_embedding": r(77, TW, s=0.5), "ln_final.weight": 1 + r(TW, s=0.1),
          "ln_final.bias": r(TW, s=0.05), "text_projection": r(TW, EMB), "logit_scale": torch.tensor(4.6052)}
    for i in range(LAYERS):
        sd |= block(f"visual.transformer.resblocks.{i}.", VW) | block(f"transformer.resblocks.{i}.", TW)
    return sd


def open_clip_tower(sd, prefix, x, mask=None):
    for i in range(LAYERS):
        b = f"{prefix}transformer.resblocks.{i}."
        y = layer_norm(x, sd[b + "ln_1.weight"], sd[b + "ln_1.bias"], 1e-5)
        q, k, v = (y @ sd[b + "attn.in_proj_weight"].T + sd[b + "attn.in_proj_bias"]).chunk(3, -1)
        x = x + attention(q, k, v, HEADS, mask) @ sd[b + "attn.out_proj.weight"].T + sd[b + "attn.out_proj.bias"]
        y = layer_norm(x, sd[b + "ln_2.weight"], sd[b + "ln_2.bias"], 1e-5)
        y = gelu(y @ sd[b + "mlp.c_fc.weight"].T + sd[b + "mlp.c_fc.bias"])
        x = x + y @ sd[b + "mlp.c_proj.weight"].T + sd[b + "mlp.c_proj.bias"]
    return x


def restated_hps(sd, pixels, prompts):
    """hpsv2.score: open_clip encode_image/encode_text (normalised), diagonal of image @ text.T."""
    n = pixels.shape[0]
    x = F.conv2d(pixels, sd["visual.conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    x = torch.cat([sd["visual.class_embedding"].expand(n, 1, -1), x], 1) + sd["visual.positional_embedding"]
    x = layer_norm(x, sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"], 1e-5)
    x = open_clip_tower(sd, "visual.", x)
    img = layer_norm(x[:, 0], sd["visual.ln_post.weight"], sd["visual.ln_post.bias"], 1e-5) @ sd["visual.proj"]
    tok = clip_tokenizer()
    ids = torch.zeros(n, 77, dtype=torch.long)  # open_clip pads with 0
    for i, p in enumerate(prompts):
        t = tok(p)["input_ids"][:77]
        ids[i, :len(t)] = torch.tensor(t)
    causal = torch.full((77, 77), float("-inf")).triu(1)
    t = open_clip_tower(sd, "", sd["token_embedding.weight"][ids] + sd["positional_embedding"], causal)
    t = layer_norm(t, sd["ln_final.weight"], sd["ln_final.bias"], 1e-5)
    txt = t[torch.arange(n), ids.argmax(-1)] @ sd["text_projection"]
    img, txt = img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)
    return (img @ txt.T).diagonal()


@pytest.fixture
def hps_scorer(tmp_path):
    sd = open_clip_state_dict()
    (tmp_path / "HPSv2").mkdir()
    torch.save({"state_dict": sd}, tmp_path / "HPSv2" / "HPS_v2.1_compressed.pt")
    return get_reward("hps", cache_dir=tmp_path, vision_heads=HEADS, text_heads=HEADS), sd  # found via cache layout


def test_hps_equals_restatement(hps_scorer):
    scorer, sd = hps_scorer
    images = quantized_images(2, 224, 224, seed=9)
    want = restated_hps(sd, official_pixels(images, "torchvision"), PROMPTS)  # 224²: no resize, no padding
    assert (want[0] - want[1]).abs() > 1e-3
    torch.testing.assert_close(scorer(images, PROMPTS), want, atol=1e-5, rtol=1e-5)


# HPSv2's ResizeMaxSize letterbox, by hand: (H, W) → resized (H', W'), paste at (top, left) on black.
@pytest.mark.parametrize("hw,new_hw,top_left", [((48, 64), (168, 224), (28, 0)), ((80, 48), (224, 134), (0, 45))])
def test_hps_non_square_images_are_letterboxed(hps_scorer, hw, new_hw, top_left):
    scorer, sd = hps_scorer
    images = quantized_images(2, *hw, seed=10).requires_grad_(True)
    got = scorer(images, PROMPTS)
    pixels = torch.stack([official_letterbox(im, new_hw, top_left) for im in images.detach()])
    torch.testing.assert_close(got.detach(), restated_hps(sd, pixels, PROMPTS), atol=1e-4, rtol=0)
    got.sum().backward()
    assert (images.grad != 0).float().mean() > 0.99  # every content pixel reaches the score


def test_hps_prompts_cleaned_as_open_clip(hps_scorer):
    """open_clip's tokenizer: ftfy, html.unescape twice, strip, whitespace runs → one space, lower case."""
    scorer, _ = hps_scorer
    raw = ["Rock &amp; Roll", "Tom&#39;s  CAT\tx", "  fish &amp;amp; CHIPS\n", "A\u00a0photo  OF\ta Cat"]
    clean = ["rock & roll", "tom's cat x", "fish & chips", "a photo of a cat"]
    ids = scorer.tokenize(raw)["input_ids"]
    torch.testing.assert_close(ids, scorer.tokenize(clean)["input_ids"])
    assert ids[1, :6].tolist() == [49406, 2435, 568, 2368, 343, 49407]  # <sot> tom 's cat x <eot>
    assert not torch.equal(ids, clip_tokenizer()(raw, padding="max_length", max_length=77,
                                                 return_tensors="pt")["input_ids"])  # the uncleaned ids differ


def test_hps_prompt_clean_without_ftfy_warns(monkeypatch):
    import rewards.open_clip_text as oct

    monkeypatch.setattr(oct, "ftfy", None)
    monkeypatch.setattr(oct, "_warned", False)
    with pytest.warns(UserWarning, match="ftfy is not installed"):
        oct.ftfy_missing_warning()
    assert oct.open_clip_clean(" Tom&amp;#39;s\t CAT ") == "tom's cat"  # &amp;#39; → &#39; → '


def test_hps_prompt_clean_with_ftfy():
    pytest.importorskip("ftfy")
    from rewards.open_clip_text import open_clip_clean

    assert open_clip_clean("Tom\u2019s ﬁsh &amp; CHIPS") == "tom's fish & chips"  # curly quote, ligature


def test_hps_rejects_other_checkpoints(tmp_path):
    torch.save({"layers.0.weight": torch.zeros(2, 2)}, tmp_path / "a.pt")
    with pytest.raises(CheckpointMismatchError, match="HPSv2"):
        get_reward("hps", checkpoint=tmp_path / "a.pt")
    sd = open_clip_state_dict()
    sd["visual.proj"] = torch.zeros(VW, EMB + 1)
    torch.save({"state_dict": sd}, tmp_path / "b.pt")
    with pytest.raises(CheckpointMismatchError, match="shape mismatches"):
        get_reward("hps", checkpoint=tmp_path / "b.pt", vision_heads=HEADS, text_heads=HEADS)
