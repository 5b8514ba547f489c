"""Soups run with their ΔW folded into the base weights (``diffusion.adapters.FoldedAdapter``): the same model as
the LoRA path up to float rounding, and the base weights come back bit for bit — after a run, a hybrid, an error."""

from __future__ import annotations

import pytest
import torch

from blend.sampler import SamplerConfig, sample
from blend.soup import ensure_soup_adapter
from blend.spec import BlendSpec
from diffusion.adapters import FoldedAdapter, activate
from diffusion.lora_formats import load_adapter_any
from tests.test_lora_sources import CONV1, CONV3, LINEAR, write_kohya

CFG = SamplerConfig(steps=4, guidance=5.0, eta=1.0)
PROMPTS, SEEDS = ["a red circle", "a blue square"], [3, 4]


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_weights(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = module.state_dict()
    assert after.keys() == before.keys()
    changed = [k for k in before if not torch.equal(after[k], before[k])]
    assert not changed, f"weights not restored exactly: {changed[:3]}"


def eps(unet, name, emb):
    activate(unet, name)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return unet(x, 500, encoder_hidden_states=emb).sample


def test_folding_linear_and_conv_layers_equals_the_lora_path_and_restores_exactly(tiny_with_adapters, tmp_path):
    bundle, _ = tiny_with_adapters
    write_kohya(tmp_path / "k.safetensors", bundle, {LINEAR: 1.0, CONV3: 8.0, CONV1: None})  # alpha ≠ rank, 3×3, 1×1
    load_adapter_any(bundle, "k", tmp_path / "k.safetensors")
    emb = bundle.encode_prompts(PROMPTS)
    base, lora_path = eps(bundle.unet, None, emb), eps(bundle.unet, "k", emb)
    before = snapshot(bundle.unet)
    folded = FoldedAdapter(bundle.unet)
    folded.fold("k")
    assert folded.name == "k"
    with torch.no_grad():  # every adapter disabled: the base layers alone now compute the adapter's model
        out = bundle.unet(torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)), 500,
                          encoder_hidden_states=emb).sample
    torch.testing.assert_close(out, lora_path, rtol=1e-5, atol=1e-5)
    assert not torch.equal(out, base)
    folded.fold("a")  # another adapter: the first comes out before the second goes in
    torch.testing.assert_close(eps(bundle.unet, None, emb), eps_lora_of(bundle, "a", emb, folded), rtol=1e-5,
                               atol=1e-5)
    folded.restore()
    assert folded.name is None
    assert_same_weights(bundle.unet, before)
    assert torch.equal(eps(bundle.unet, None, emb), base)
    folded.restore()  # twice is harmless
    with pytest.raises(KeyError, match="no adapter named 'nope'"):
        folded.fold("nope")
    assert_same_weights(bundle.unet, before)


def eps_lora_of(bundle, name, emb, folded):
    """The adapter's ε through its LoRA layers, with whatever is folded taken out first and put back after."""
    was = folded.name
    folded.restore()
    out = eps(bundle.unet, name, emb)
    if was is not None:
        folded.fold(was)
    return out


def test_a_soup_samples_as_its_lora_and_leaves_the_weights_exact(tiny_with_adapters):
    bundle, loras = tiny_with_adapters
    spec = BlendSpec("soup", ("a", "b"), (0.3, 0.7))
    name = ensure_soup_adapter(bundle.unet, spec, loras)
    before = snapshot(bundle.unet)
    folded = sample(bundle, spec, PROMPTS, SEEDS, CFG)
    assert_same_weights(bundle.unet, before)
    as_lora = sample(bundle, BlendSpec("single", (name,)), PROMPTS, SEEDS, CFG)  # the merged adapter as a LoRA
    torch.testing.assert_close(folded.images, as_lora.images, rtol=0, atol=1e-4)
    assert folded.unet_evals == as_lora.unet_evals == [CFG.steps] * 2
    base = sample(bundle, BlendSpec("base"), PROMPTS, SEEDS, CFG)  # after the soup: the base model, unchanged
    assert (base.images - folded.images).abs().max() > 1e-3
    hybrid = BlendSpec("hybrid_late", ("a", "b"), (0.3, 0.7))  # folded on the first half, restored for DB-MPA
    sample(bundle, hybrid, PROMPTS, SEEDS, CFG)
    assert_same_weights(bundle.unet, before)


def test_an_error_in_the_middle_of_a_soup_run_still_restores_the_weights(tiny_with_adapters, monkeypatch):
    bundle, loras = tiny_with_adapters
    spec = BlendSpec("soup", ("a", "b"), (0.5, 0.5))
    ensure_soup_adapter(bundle.unet, spec, loras)
    before, calls = snapshot(bundle.unet), []
    step = type(bundle.scheduler).step

    def failing_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return step(self, *args, **kwargs)

    monkeypatch.setattr(type(bundle.scheduler), "step", failing_step)
    with pytest.raises(RuntimeError, match="interrupted"):
        sample(bundle, spec, PROMPTS, SEEDS, CFG)
    assert_same_weights(bundle.unet, before)
