"""Torch preprocessing vs the official PIL path (and transformers' CLIPImageProcessor) on several sizes.

Tolerance: the official path rounds to uint8 (PIL resizes in two passes with 8-bit intermediates);
the torch path does not. Measured: max ≤ 3.8 uint8 steps, mean ≤ 0.32 step over these sizes; we
allow max 5 steps and mean 0.5 step (1 step = 1/255/std ≈ 0.015 after normalisation). At 224² (no
resize) the two paths are equal to float precision.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest_rewards import official_clip_preprocess, quantized_images, to_pil

from rewards.preprocess import clip_preprocess

SIZES = [(224, 224), (512, 512), (480, 640), (64, 64), (97, 64), (300, 225), (33, 250)]


@pytest.mark.parametrize("crop", ["torchvision", "transformers"])
@pytest.mark.parametrize("hw", SIZES)
def test_torch_preprocess_matches_official(hw, crop):
    images = quantized_images(2, *hw, seed=sum(hw))
    want = torch.stack([official_clip_preprocess(p, crop=crop) for p in to_pil(images)])
    got = clip_preprocess(images, 224, crop=crop)
    assert got.shape == want.shape == (2, 3, 224, 224)
    steps = (got - want).abs() * torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1) * 255
    assert steps.max() < 5 and steps.mean() < 0.5, (steps.max().item(), steps.mean().item())
    if hw == (224, 224):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)  # no resize: identical up to float


@pytest.mark.parametrize("hw", [(480, 640), (97, 64), (64, 64)])
def test_reference_matches_transformers_processor(hw):
    """The test's reference (crop='transformers') is what transformers' CLIPImageProcessor (PIL backend) computes."""
    from transformers import CLIPImageProcessorPil

    proc = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    images = quantized_images(2, *hw, seed=1)
    pil = to_pil(images)
    ref = torch.from_numpy(np.asarray(proc(images=pil, return_tensors="np")["pixel_values"]))
    ours = torch.stack([official_clip_preprocess(p, crop="transformers") for p in pil])
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_crop_rounding_differs_on_odd_margins():
    # 97×64 → 224×339: margin 115, torchvision rounds 57.5 → 58, transformers floors → 57.
    images = quantized_images(1, 64, 97)
    a, b = clip_preprocess(images, crop="torchvision"), clip_preprocess(images, crop="transformers")
    assert not torch.equal(a, b)
    torch.testing.assert_close(a[..., :-1], b[..., 1:])
