"""Shared fixtures: a tiny SD-family model built in code, with random LoRA adapters."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# One torch thread for the whole session: the models are tiny, several threads oversubscribe a shared
# 2-core machine (5-20x slower), and float results depend on the thread count, so every fixture and test
# (and the subprocesses, via OMP_NUM_THREADS) must compute with the same one.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Re-assert one thread before each test, in case code under test changed it."""
    torch.set_num_threads(1)


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


def gens(n: int = 2, offset: int = 0) -> list[torch.Generator]:
    """One seeded generator per image (seeds offset, offset + 1, …)."""
    return [torch.Generator().manual_seed(offset + i) for i in range(n)]


@pytest.fixture
def pipes(tiny_bundle, tmp_path):
    """(stock pipeline with random adapters a, b loaded by diffusers, DiffusionBlendPipeline.from_pipe of it)."""
    from diffusers import StableDiffusionPipeline

    from blend.pipeline import DiffusionBlendPipeline
    from diffusion.lora import random_lora, save_lora

    b = tiny_bundle
    for name, seed in (("a", 1), ("b", 2)):
        save_lora(random_lora(b.unet, seed=seed, std_b=0.3), tmp_path / name)
    stock = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                    scheduler=b.scheduler, safety_checker=None, feature_extractor=None,
                                    requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    for name in ("a", "b"):
        stock.load_lora_weights(tmp_path / name, weight_name="pytorch_lora_weights.safetensors", adapter_name=name)
    pipe = DiffusionBlendPipeline.from_pipe(stock)
    pipe.set_progress_bar_config(disable=True)
    return stock, pipe
