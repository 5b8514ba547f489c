"""Shared fixtures: a tiny SD-family model built in code, with random LoRA adapters."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread per test: the models are tiny, and on a shared 2-core machine several threads
    oversubscribe the cores and run 5-20x slower. Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_bundle():
    from diffusion.tiny import make_tiny_sd

    return make_tiny_sd(seed=0, latent_size=8)


@pytest.fixture
def tiny_with_adapters(tiny_bundle):
    """The tiny model with adapters ``a`` and ``b`` (random, seeds 1 and 2); returns (bundle, {name: LoraWeights})."""
    from diffusion.lora import add_lora, random_lora

    loras = {"a": random_lora(tiny_bundle.unet, seed=1), "b": random_lora(tiny_bundle.unet, seed=2)}
    for name, lw in loras.items():
        add_lora(tiny_bundle.unet, name, lw)
    return tiny_bundle, loras
