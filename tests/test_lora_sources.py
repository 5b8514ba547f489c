"""Adapters as people have them: kohya/A1111 files (alpha ≠ rank, conv layers, text-encoder parts) against a
hand merge of ΔW into the weights, diffusers files with a text-encoder part against the stock pipeline, a full
fine-tuned UNet as a blend member, and hub sources (mocked hub)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

from blend.sampler import encode_for_models
from diffusion.adapters import activate
from diffusion.lora import AdapterError
from diffusion.lora_formats import load_adapter_any, read_adapter_parts, resolve_source, te_module_name
from diffusion.tiny import make_tiny_sd

LINEAR = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
CONV3 = "down_blocks.0.resnets.0.conv1"  # a 3×3 conv (kohya "LoCon")
CONV1 = "down_blocks.1.attentions.0.proj_in"  # a 1×1 conv in the tiny UNet
TE = "text_model.encoder.layers.0.self_attn.q_proj"  # as LoRA files name it


def layer_of(bundle, mod):
    """The layer a LoRA file's name means (transformers ≥ 5 has no ``text_model.`` level)."""
    if mod.startswith("text_model"):
        return bundle.text_encoder.get_submodule(te_module_name(mod, bundle.text_encoder))
    return bundle.unet.get_submodule(mod)
KW = dict(num_inference_steps=3, guidance_scale=5.0, eta=1.0, output_type="np")


def _factors(layer: torch.nn.Module, r: int, g: torch.Generator):
    w = layer.weight
    if w.ndim == 4:
        return torch.randn(r, w.shape[1], *w.shape[2:], generator=g) * 0.3, torch.randn(w.shape[0], r, 1, 1,
                                                                                        generator=g) * 0.3
    return torch.randn(r, w.shape[1], generator=g) * 0.3, torch.randn(w.shape[0], r, generator=g) * 0.3


def _delta(down, up, scale):
    if down.ndim == 4:
        return scale * (up.flatten(1) @ down.flatten(1)).view(up.shape[0], *down.shape[1:])
    return scale * up @ down


def write_kohya(path, bundle, alphas: dict):
    """A kohya-layout file (lora_unet_… / lora_te_…, lora_down/lora_up/alpha) and the ΔW of every layer."""
    g = torch.Generator().manual_seed(7)
    sd, deltas = {}, {}
    for mod, alpha in alphas.items():
        part = "te" if mod.startswith("text_model") else "unet"
        down, up = _factors(layer_of(bundle, mod), 4, g)
        key = f"lora_{part}_{mod.replace('.', '_')}"
        sd[f"{key}.lora_down.weight"], sd[f"{key}.lora_up.weight"] = down, up
        if alpha is not None:
            sd[f"{key}.alpha"] = torch.tensor(float(alpha))
        deltas[(part, mod)] = _delta(down, up, (alpha if alpha is not None else 4) / 4)
    save_file(sd, str(path))
    return deltas


def merged(deltas):
    """A fresh tiny model with ΔW added to its weights (the hand merge)."""
    b = make_tiny_sd(seed=0, latent_size=8)
    for (_part, mod), d in deltas.items():
        layer_of(b, mod).weight.data += d
    return b


def unet_out(unet, emb):
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    return unet(x, 500, encoder_hidden_states=emb).sample


def test_kohya_with_alpha_conv_and_text_encoder_matches_a_hand_merge(tmp_path):
    b = make_tiny_sd(seed=0, latent_size=8)
    deltas = write_kohya(tmp_path / "k.safetensors", b, {LINEAR: 1.0, CONV3: 8.0, CONV1: None, TE: 2.0})
    lw = load_adapter_any(b, "k", tmp_path / "k.safetensors")
    assert lw.fmt == "kohya" and lw.alpha[LINEAR] == 1.0 and lw.alpha[CONV1] == 4.0 and lw.rank(LINEAR) == 4
    ref = merged(deltas)
    prompts = ["a red circle", "a cat"]
    emb = encode_for_models(b, prompts, ["k", "__base__"])
    ref_emb = ref.encode_prompts(prompts)
    torch.testing.assert_close(emb["k"], ref_emb, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(emb["__base__"], ref_emb, atol=1e-3)  # the base model keeps its own encoder
    activate(b.unet, "k")
    torch.testing.assert_close(unet_out(b.unet, emb["k"]), unet_out(ref.unet, ref_emb), atol=1e-5, rtol=1e-5)


def test_kohya_agrees_with_diffusers_own_converter_where_it_works(tmp_path):
    """diffusers 0.42.1 converts kohya conv layers with their alphas. On a file that also has an attention layer
    and a text-encoder layer (the hand-merge test's file) it warned that the attention layer's alpha key matched no
    module and then raised "Could not automatically infer state dict type"; so the project resolves kohya names
    against the model itself, and this test checks that both agree where diffusers' converter works."""
    b = make_tiny_sd(seed=0, latent_size=8)
    write_kohya(tmp_path / "k.safetensors", b, {CONV3: 8.0, CONV1: 2.0})
    stock = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                    scheduler=b.scheduler, safety_checker=None, feature_extractor=None,
                                    requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    stock.load_lora_weights(str(tmp_path / "k.safetensors"), adapter_name="diffusers_k")
    ref = stock("a cat", generator=torch.Generator().manual_seed(0), **KW).images
    mine = make_tiny_sd(seed=0, latent_size=8)
    from blend.pipeline import DiffusionBlendPipeline

    pipe = DiffusionBlendPipeline.from_bundle(mine)
    pipe.add_adapter("k", str(tmp_path / "k.safetensors"))
    out = pipe("a cat", weights={"k": 1.0}, generator=torch.Generator().manual_seed(0), **KW).images
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_diffusers_file_with_text_encoder_part_is_applied_per_member(tmp_path):
    """w = 1 on an adapter with a text-encoder part is the stock pipeline with it; the other member keeps the base TE."""
    from blend.pipeline import DiffusionBlendPipeline
    from diffusion.lora import random_lora

    b = make_tiny_sd(seed=0, latent_size=8)
    g = torch.Generator().manual_seed(3)
    sd = {f"unet.{k}": v for k, v in random_lora(b.unet, seed=5, std_b=0.3).peft_state_dict().items()}
    for mod in (TE, TE.replace("q_proj", "v_proj")):
        layer = layer_of(b, mod)
        sd[f"text_encoder.{mod}.lora_A.weight"] = torch.randn(4, layer.in_features, generator=g) * 0.3
        sd[f"text_encoder.{mod}.lora_B.weight"] = torch.randn(layer.out_features, 4, generator=g) * 0.3
    save_file(sd, str(tmp_path / "te_lora.safetensors"))
    stock = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                    scheduler=b.scheduler, safety_checker=None, feature_extractor=None,
                                    requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    stock.load_lora_weights(str(tmp_path / "te_lora.safetensors"), adapter_name="t")
    ref = stock("a cat", generator=torch.Generator().manual_seed(0), **KW).images

    pipe = DiffusionBlendPipeline.from_bundle(make_tiny_sd(seed=0, latent_size=8))
    pipe.add_adapter("t", str(tmp_path / "te_lora.safetensors"))
    parts = read_adapter_parts(str(tmp_path / "te_lora.safetensors"), pipe.unet, pipe.text_encoder)
    assert parts.text_encoder is not None and len(parts.text_encoder.modules) == 2
    out = pipe("a cat", weights={"t": 1.0}, generator=torch.Generator().manual_seed(0), **KW).images
    np.testing.assert_array_equal(out, ref)
    emb = encode_for_models(pipe.bundle(), ["a cat"], ["t", "__base__"])
    torch.testing.assert_close(emb["__base__"], make_tiny_sd(seed=0, latent_size=8).encode_prompts(["a cat"]))
    assert not torch.equal(emb["t"], emb["__base__"])
    from diffusion.lora import read_lora

    with pytest.raises(AdapterError, match="text-encoder LoRA weights"):  # the UNet-only reader no longer drops them
        read_lora(tmp_path / "te_lora.safetensors")


def test_full_unet_member_is_the_fine_tuned_model_and_blends(tmp_path):
    from blend.pipeline import DiffusionBlendPipeline

    ft = make_tiny_sd(seed=0, latent_size=8)
    g = torch.Generator().manual_seed(11)
    for p in ft.unet.parameters():
        p.data += 0.05 * torch.randn(p.shape, generator=g)
    ft.unet.save_pretrained(tmp_path / "ft" / "unet")
    b = make_tiny_sd(seed=0, latent_size=8)
    pipe = DiffusionBlendPipeline.from_bundle(b)
    pipe.add_model("ft", tmp_path / "ft")
    stock = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=ft.unet,
                                    scheduler=b.scheduler, safety_checker=None, feature_extractor=None,
                                    requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    ref = stock("a cat", generator=torch.Generator().manual_seed(0), **KW).images
    out = pipe("a cat", weights={"ft": 1.0}, generator=torch.Generator().manual_seed(0), **KW).images
    np.testing.assert_array_equal(out, ref)

    # DB-KLA between the base UNet and the full member = a hand blend of the two UNets in the stock pipeline
    base_unet = copy.deepcopy(b.unet)
    forward = ft.unet.forward

    def blended(*args, **kwargs):
        return (0.5 * base_unet(*args, **kwargs)[0] + 0.5 * forward(*args, **kwargs)[0],)

    ft.unet.forward = blended
    ref_kla = stock("a cat", generator=torch.Generator().manual_seed(0), **KW).images
    out_kla = pipe("a cat", weights={"ft": 1.0}, method="kla", lam=0.5, generator=torch.Generator().manual_seed(0),
                   **KW).images
    np.testing.assert_allclose(out_kla, ref_kla, atol=2e-5)


def test_refusals_name_the_problem(tmp_path):
    b = make_tiny_sd(seed=0, latent_size=8)
    save_file({"lora_unet_down_blocks_9_nothing.lora_down.weight": torch.zeros(4, 8),
               "lora_unet_down_blocks_9_nothing.lora_up.weight": torch.zeros(8, 4)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(AdapterError, match="another base model"):
        read_adapter_parts(tmp_path / "x.safetensors", b.unet, b.text_encoder)
    save_file({"lora_unet_a.hada_w1_a": torch.zeros(2, 2)}, str(tmp_path / "h.safetensors"))
    with pytest.raises(AdapterError, match="LoHa"):
        read_adapter_parts(tmp_path / "h.safetensors", b.unet, b.text_encoder)
    save_file({f"lora_te2_{TE.replace('.', '_')}.lora_down.weight": torch.zeros(4, 32),
               f"lora_te2_{TE.replace('.', '_')}.lora_up.weight": torch.zeros(32, 4)}, str(tmp_path / "x2.safetensors"))
    with pytest.raises(AdapterError, match="SDXL"):
        read_adapter_parts(tmp_path / "x2.safetensors", b.unet, b.text_encoder)
    with pytest.raises(FileNotFoundError, match="neither a local path nor a hub id"):
        resolve_source("no/such/path.safetensors")


def test_hub_sources_are_downloaded(tmp_path, monkeypatch):
    import huggingface_hub

    b = make_tiny_sd(seed=0, latent_size=8)
    write_kohya(tmp_path / "style.safetensors", b, {LINEAR: 2.0})
    calls = []

    def fake_file(repo, filename, **kw):
        calls.append((repo, filename))
        return str(tmp_path / filename)

    def fake_snapshot(repo, **kw):
        calls.append((repo, None))
        d = tmp_path / "snap"
        d.mkdir(exist_ok=True)
        (d / "style.safetensors").write_bytes((tmp_path / "style.safetensors").read_bytes())
        return str(d)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_file)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    p1 = read_adapter_parts("someone/style-lora:style.safetensors", b.unet, b.text_encoder)
    p2 = read_adapter_parts("someone/style-lora", b.unet, b.text_encoder)
    assert calls == [("someone/style-lora", "style.safetensors"), ("someone/style-lora", None)]
    assert p1.unet.sha256 == p2.unet.sha256 and p1.unet.alpha[LINEAR] == 2.0
