"""Every adapter format loads to the same ε as the adapter it was saved from; bad adapters fail clearly."""

from __future__ import annotations

import pytest
import torch

from diffusion.adapters import activate
from diffusion.lora import AdapterError, load_adapter, random_lora, read_lora, save_lora
from diffusion.tiny import make_tiny_sd


def _eps(bundle, name, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    activate(bundle.unet, name)
    with torch.no_grad():
        return bundle.unet(x, 400, encoder_hidden_states=bundle.encode_prompts(["a cat", "a dog"])).sample


@pytest.mark.parametrize("fmt", ["diffusers", "peft", "legacy"])
def test_round_trip_gives_the_same_eps(tmp_path, tiny_bundle, fmt):
    lw = random_lora(tiny_bundle.unet, seed=3)
    save_lora(lw, tmp_path / fmt, formats=(fmt,))
    from diffusion.lora import add_lora

    add_lora(tiny_bundle.unet, "orig", lw)
    loaded = load_adapter(tiny_bundle.unet, "loaded", tmp_path / fmt)
    assert loaded.sha256 and loaded.fmt
    assert torch.equal(_eps(tiny_bundle, "orig"), _eps(tiny_bundle, "loaded"))
    assert not torch.equal(_eps(tiny_bundle, "orig"), _eps(tiny_bundle, None))


def test_legacy_file_equals_hand_merge(tmp_path, tiny_bundle):
    """A DPOK attention-processor file: W + up·down with scale 1 (no alpha)."""
    import copy

    lw = random_lora(tiny_bundle.unet, seed=4)
    save_lora(lw, tmp_path, formats=("legacy",))
    sd = torch.load(tmp_path / "pytorch_lora_weights.bin", weights_only=True)
    assert any(k.endswith("attn1.processor.to_q_lora.down.weight") for k in sd)
    hand = copy.deepcopy(tiny_bundle)
    with torch.no_grad():
        for key, down in sd.items():
            if ".down." not in key:
                continue
            up = sd[key.replace(".down.", ".up.")]
            mod, proj = key.split(".processor.")
            proj = proj.split("_lora")[0]
            proj = "to_out.0" if proj == "to_out" else proj
            hand.unet.get_submodule(f"{mod}.{proj}").weight += up @ down
    load_adapter(tiny_bundle.unet, "legacy", tmp_path / "pytorch_lora_weights.bin")
    torch.testing.assert_close(_eps(tiny_bundle, "legacy"), _eps(hand, None), rtol=1e-5, atol=1e-5)


def test_diffusers_pipeline_reads_our_safetensors(tmp_path, tiny_bundle):
    """Interop: diffusers' own loader reads the file we write and gives the same ε."""
    lw = random_lora(tiny_bundle.unet, seed=5)
    save_lora(lw, tmp_path, formats=("diffusers",))
    import copy

    other = copy.deepcopy(tiny_bundle)
    other.unet.load_lora_adapter(str(tmp_path), weight_name="pytorch_lora_weights.safetensors", prefix="unet",
                                 adapter_name="d")
    load_adapter(tiny_bundle.unet, "ours", tmp_path)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    emb = tiny_bundle.encode_prompts(["a", "b"])
    activate(tiny_bundle.unet, "ours")
    with torch.no_grad():
        ours = tiny_bundle.unet(x, 400, encoder_hidden_states=emb).sample
        theirs = other.unet(x, 400, encoder_hidden_states=emb).sample
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_adapter_for_another_base_names_the_layer(tmp_path):
    wide = make_tiny_sd(seed=0, latent_size=8)
    lw = random_lora(wide.unet, seed=1)
    key = next(m for m in lw.modules if m.endswith("attn2.to_k"))
    lw.A[key] = torch.randn(4, 768)  # as if made for a base with 768-d text features (SD 1.5)
    save_lora(lw, tmp_path)
    fresh = make_tiny_sd(seed=0, latent_size=8)
    with pytest.raises(AdapterError, match=r"attn2\.to_k.*\(4, 32\).*\(4, 768\)"):
        load_adapter(fresh.unet, "x", tmp_path)
    assert not hasattr(fresh.unet, "peft_config") or "x" not in fresh.unet.peft_config  # nothing half-loaded


def test_missing_and_garbage_adapters(tmp_path, tiny_bundle):
    with pytest.raises(FileNotFoundError, match="adapter not found"):
        load_adapter(tiny_bundle.unet, "x", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no LoRA weights"):
        read_lora(tmp_path / "empty")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "junk.bin")
    with pytest.raises(AdapterError, match="not LoRA weights"):
        read_lora(tmp_path / "junk.bin")
    (tmp_path / "bad.bin").write_bytes(b"not a torch file")
    with pytest.raises(AdapterError, match="cannot read"):
        read_lora(tmp_path / "bad.bin")


def test_duplicate_and_reserved_names(tiny_bundle):
    from diffusion.lora import add_lora

    lw = random_lora(tiny_bundle.unet, seed=1)
    add_lora(tiny_bundle.unet, "a", lw)
    with pytest.raises(AdapterError, match="already has"):
        add_lora(tiny_bundle.unet, "a", lw)
    with pytest.raises(AdapterError, match="letters"):
        add_lora(tiny_bundle.unet, "a.b", lw)
