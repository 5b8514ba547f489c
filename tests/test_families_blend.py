"""Blending on the SDXL and SD3 families (tiny models built in code): the exact identities of the sampler, bit for
bit with the same seeds, and every method running through run_DB.py's sampler."""

from __future__ import annotations

import pytest
import torch

from blend.sampler import SamplerConfig, sample
from blend.soup import ensure_soup_adapter
from blend.spec import BlendSpec
from diffusion.loading import load_bundle
from diffusion.lora import add_lora, random_lora

PROMPTS = ["a red circle", "a green square"]
SEEDS = [0, 1]
CFG = SamplerConfig(steps=3, guidance=4.0, eta=1.0)


@pytest.fixture(scope="module", params=["builtin:tiny-xl", "builtin:tiny-sd3"])
def family_bundle(request):
    bundle = load_bundle(request.param)
    loras = {"a": random_lora(bundle.unet, seed=1, std_b=0.3), "b": random_lora(bundle.unet, seed=2, std_b=0.3)}
    for name, lw in loras.items():
        add_lora(bundle.unet, name, lw)
    return bundle, loras


def run(bundle, spec):
    return sample(bundle, spec, PROMPTS, SEEDS, CFG).images


def test_identities(family_bundle):
    bundle, _ = family_bundle
    base, a = run(bundle, BlendSpec("base")), run(bundle, BlendSpec("single", ("a",)))
    assert not torch.equal(base, a)
    assert torch.equal(run(bundle, BlendSpec("mpa", ("a", "b"), (1.0, 0.0))), a)
    assert torch.equal(run(bundle, BlendSpec("mpa", ("a",), (1.0,))), a)
    assert torch.equal(run(bundle, BlendSpec("kla", ("a",), (1.0,), lam=0.0)), base)
    assert torch.equal(run(bundle, BlendSpec("kla", ("a",), (1.0,), lam=1.0)), a)
    assert torch.equal(run(bundle, BlendSpec("mpa_ls", ("a", "b"), (1.0, 0.0))), a)


def test_every_method_runs_and_blends_differ(family_bundle):
    bundle, loras = family_bundle
    outs = {}
    for spec in (BlendSpec("mpa", ("a", "b"), (0.5, 0.5)), BlendSpec("mpa_ls", ("a", "b"), (0.5, 0.5)),
                 BlendSpec("kla", ("a", "b"), (0.5, 0.5), lam=1.5), BlendSpec("soup", ("a", "b"), (0.5, 0.5)),
                 BlendSpec("soup_factors", ("a", "b"), (0.5, 0.5))):
        if spec.is_soup:
            ensure_soup_adapter(bundle.unet, spec, loras)
        outs[spec.label] = run(bundle, spec)
        assert outs[spec.label].shape == (2, 3, 32, 32) and torch.isfinite(outs[spec.label]).all()
    assert not torch.equal(outs["mpa_a0.5_b0.5"], outs["soup_a0.5_b0.5"])


def test_baselines_on_each_family(family_bundle):
    """Best-of-N runs on every family; CoDe and RGG (which step the DDIM chain) run on SDXL and are refused on the
    flow-matching SD3 model with a message that names best-of-N."""
    from blend.baselines.dispatch import sample_any

    bundle, _ = family_bundle
    bright = dict(rewards=("brightness",), weights=(1.0,))
    bon = sample_any(bundle, BlendSpec("bon", **bright, options={"N": 2}), PROMPTS, SEEDS, CFG)
    assert torch.isfinite(bon.images).all() and bon.costs[0]["unet_forwards"] == 2 * CFG.steps
    for spec in (BlendSpec("code", **bright, options={"N": 2, "B": 2}), BlendSpec("rgg", **bright)):
        if bundle.family == "sd3":
            with pytest.raises(ValueError, match="Best-of-N"):
                sample_any(bundle, spec, PROMPTS, SEEDS, CFG)
        else:
            out = sample_any(bundle, spec, PROMPTS, SEEDS, CFG)
            assert torch.isfinite(out.images).all() and out.images.shape == (2, 3, 32, 32)
