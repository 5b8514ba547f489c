"""Exact identities of the blended sampler (bit for bit, same seeds)."""

from __future__ import annotations

import pytest
import torch

from blend.sampler import SamplerConfig, sample
from blend.spec import BlendSpec

PROMPTS = ["a red circle on a blue background", "a green square"]
SEEDS = [0, 1]
CFG = SamplerConfig(steps=4, guidance=5.0, eta=1.0)


def run(bundle, spec, config=CFG, prompts=PROMPTS, seeds=SEEDS):
    return sample(bundle, spec, prompts, seeds, config)


def test_adapters_change_the_output(tiny_with_adapters):
    bundle, _ = tiny_with_adapters
    base = run(bundle, BlendSpec("base")).images
    a = run(bundle, BlendSpec("single", ("a",))).images
    b = run(bundle, BlendSpec("single", ("b",))).images
    assert not torch.equal(base, a) and not torch.equal(a, b)


def test_weight_one_zero_is_adapter_one(tiny_with_adapters):
    bundle, _ = tiny_with_adapters
    single = run(bundle, BlendSpec("single", ("a",)))
    mpa = run(bundle, BlendSpec("mpa", ("a", "b"), (1.0, 0.0)))
    assert torch.equal(single.images, mpa.images)
    assert mpa.unet_evals == single.unet_evals == [CFG.steps] * 2


def test_one_adapter_mpa_equals_plain_sampling(tiny_with_adapters):
    bundle, _ = tiny_with_adapters
    assert torch.equal(run(bundle, BlendSpec("mpa", ("b",), (1.0,))).images,
                       run(bundle, BlendSpec("single", ("b",))).images)


def test_kla_endpoints(tiny_with_adapters):
    bundle, _ = tiny_with_adapters
    base = run(bundle, BlendSpec("base")).images
    ft = run(bundle, BlendSpec("single", ("a",))).images
    assert torch.equal(run(bundle, BlendSpec("kla", ("a",), (1.0,), lam=0.0)).images, base)
    assert torch.equal(run(bundle, BlendSpec("kla", ("a",), (1.0,), lam=1.0)).images, ft)
    mid = run(bundle, BlendSpec("kla", ("a",), (1.0,), lam=0.5))
    assert not torch.equal(mid.images, base) and not torch.equal(mid.images, ft)
    assert mid.unet_evals == [2 * CFG.steps] * 2


def test_ls_with_one_hot_weights_is_the_adapter(tiny_with_adapters):
    bundle, _ = tiny_with_adapters
    ls = run(bundle, BlendSpec("mpa_ls", ("a", "b"), (1.0, 0.0)))
    assert torch.equal(ls.images, run(bundle, BlendSpec("single", ("a",))).images)
    assert ls.choices == [["a"] * CFG.steps] * 2


@pytest.mark.parametrize("spec", [BlendSpec("mpa", ("a", "b"), (0.3, 0.7)),
                                  BlendSpec("kla", ("a", "b"), (0.5, 0.5), lam=1.5),
                                  BlendSpec("mpa_ls", ("a", "b"), (0.5, 0.5))])
def test_batched_equals_looped(tiny_with_adapters, spec):
    """Same numbers up to float rounding: CPU GEMM/conv kernels round differently at different batch
    sizes (the same adapter on a batch of 4 vs 8 already differs by ~1e-6 in ε), nothing more."""
    bundle, _ = tiny_with_adapters
    looped = run(bundle, spec)
    batched = run(bundle, spec, SamplerConfig(steps=CFG.steps, guidance=CFG.guidance, batched=True))
    torch.testing.assert_close(batched.images, looped.images, rtol=0, atol=1e-4)
    assert batched.unet_evals == looped.unet_evals
    assert batched.choices == looped.choices


def test_same_seed_same_noise_across_batches(tiny_with_adapters):
    """An image depends on its (prompt, seed) only, not on what else is in the batch."""
    bundle, _ = tiny_with_adapters
    spec = BlendSpec("mpa", ("a", "b"), (0.5, 0.5))
    pair = run(bundle, spec).images
    alone = run(bundle, spec, prompts=PROMPTS[1:], seeds=SEEDS[1:]).images
    torch.testing.assert_close(pair[1:], alone, rtol=0, atol=1e-4)  # batch-size rounding only
