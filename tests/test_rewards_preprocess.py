"""Torch preprocessing vs the official paths: PIL (shortest edge + centre crop), HPSv2's letterbox, gradients.

Shortest edge: the official PIL path rounds to uint8 (PIL resizes in two passes with 8-bit intermediates);
the torch path does not, so they differ by a few uint8 steps (1 step = 1/255/std ≈ 0.015 after
normalisation); the measured gap is asserted in ``test_gap_to_pil_path`` and quoted in rewards/README.md.
At 224² (no resize) the two paths are equal to float precision.

HPSv2: ``ResizeMaxSize`` works on the float tensor (no rounding), so the torch letterbox must equal a
hand construction (PIL float resize pasted on a black canvas) to float precision.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest_rewards import (
    CLIP_MEAN,
    CLIP_STD,
    hard_edge_images,
    official_clip_preprocess,
    official_letterbox,
    official_tensor_clip_preprocess,
    quantized_images,
    to_pil,
)

from rewards.preprocess import clip_preprocess, letterbox_preprocess, longest_edge_shape

SIZES = [(224, 224), (512, 512), (480, 640), (64, 64), (97, 64), (300, 225), (33, 250)]
STEP = torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255  # normalised difference × STEP = uint8 steps
MEAN, STD = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)


@pytest.mark.parametrize("crop", ["torchvision", "transformers"])
@pytest.mark.parametrize("hw", SIZES)
def test_torch_preprocess_matches_official(hw, crop):
    images = quantized_images(2, *hw, seed=sum(hw))
    want = torch.stack([official_clip_preprocess(p, crop=crop) for p in to_pil(images)])
    got = clip_preprocess(images, 224, crop=crop, clamp=True)
    assert got.shape == want.shape == (2, 3, 224, 224)
    steps = (got - want).abs() * STEP
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
    a, b = clip_preprocess(images, crop="torchvision", clamp=True), clip_preprocess(images, crop="transformers",
                                                                                    clamp=True)
    assert not torch.equal(a, b)
    torch.testing.assert_close(a[..., :-1], b[..., 1:])


# ---- the measured gap to the PIL path (rewards/README.md quotes these numbers) --------------------------------------

GAP_SIZES = [(512, 512), (480, 640), (64, 64), (97, 64), (300, 225), (768, 512), (1024, 1024)]
# (max, worst per-size mean) in uint8 steps, measured (torch 2.13.0, Pillow 12.3.0) and rounded up
GAP_BOUNDS = {("smooth", True): (4.0, 0.33), ("smooth", False): (6.0, 0.33),
              ("blocks16", True): (17.0, 0.45), ("blocks16", False): (41.0, 3.7),
              ("blocks4", True): (23.0, 2.3), ("blocks4", False): (52.0, 5.8)}


def gap_images(kind: str, hw: tuple[int, int]) -> torch.Tensor:
    if kind == "smooth":
        return quantized_images(2, *hw, seed=sum(hw))
    return hard_edge_images(2, *hw, seed=sum(hw), cell=int(kind[len("blocks"):]))


@pytest.mark.parametrize("kind,clamp", sorted(GAP_BOUNDS))
def test_gap_to_pil_path(kind, clamp):
    """Shortest-edge torch path vs the official PIL path on smooth and hard-edged (flat 0/1 blocks) images.

    Print the numbers: ``.venv/bin/python -m pytest -q tests/test_rewards_preprocess.py -k gap -s``.
    """
    worst_max = worst_mean = 0.0
    for hw in GAP_SIZES:
        images = gap_images(kind, hw)
        want = torch.stack([official_clip_preprocess(p) for p in to_pil(images)])
        steps = (clip_preprocess(images, 224, clamp=clamp) - want).abs() * STEP
        worst_max, worst_mean = max(worst_max, steps.max().item()), max(worst_mean, steps.mean().item())
    print(f"\n{kind} clamp={clamp}: max {worst_max:.2f} uint8 steps, worst mean {worst_mean:.3f}")
    bound_max, bound_mean = GAP_BOUNDS[kind, clamp]
    assert worst_max < bound_max and worst_mean < bound_mean, (worst_max, worst_mean)


# ---- HPSv2 letterbox ------------------------------------------------------------------------------------------------

# (H, W) → resized (H', W') and paste position (top, left), computed by hand: scale = 224 / max(H, W),
# H' = round(H · scale) with Python's round (half to even); top = (224 − H') // 2, left = (224 − W') // 2.
LETTERBOX = {
    (48, 64): ((168, 224), (28, 0)),  # 48 · 3.5 = 168
    (80, 48): ((224, 134), (0, 45)),  # 48 · 2.8 = 134.4 → 134
    (50, 64): ((175, 224), (24, 0)),  # 49 rows of padding: 24 on top, 25 below
    (448, 301): ((224, 150), (0, 37)),  # 301 · 0.5 = 150.5 → 150 (half to even), not 151
    (97, 64): ((224, 148), (0, 38)),  # 64 · 224 / 97 = 147.8 → 148
    (224, 224): ((224, 224), (0, 0)),  # nothing to do
    (224, 160): ((224, 160), (0, 32)),  # official: no resize *and no padding* (the ViT then fails); we pad
}


def test_longest_edge_shape_rounds_half_to_even():
    for hw, (new, _) in LETTERBOX.items():
        assert longest_edge_shape(*hw, 224) == new


@pytest.mark.parametrize("hw", sorted(LETTERBOX))
def test_letterbox_equals_hand_construction(hw):
    new_hw, top_left = LETTERBOX[hw]
    images = quantized_images(2, *hw, seed=sum(hw))
    want = torch.stack([official_letterbox(im, new_hw, top_left) for im in images])
    got = letterbox_preprocess(images, 224)
    assert got.shape == (2, 3, 224, 224)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)  # PIL (double) vs torch (float) accumulation
    (top, left), (nh, nw) = top_left, new_hw
    border = torch.ones(224, 224, dtype=torch.bool)
    border[top:top + nh, left:left + nw] = False
    pad_value = (-MEAN / STD).expand(2, 3, 224, 224)  # fill 0 *before* Normalize
    assert torch.equal(got[..., border], pad_value[..., border])
    assert border.sum() == 224 * 224 - nh * nw


@pytest.mark.parametrize("hw", [(48, 64), (80, 48)])
def test_letterbox_gradient_reaches_every_input_pixel(hw):
    images = quantized_images(1, *hw, seed=3).requires_grad_(True)
    weights = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    (letterbox_preprocess(images) * weights).sum().backward()
    assert (images.grad != 0).all()


def overshoot_grad(pre, images: torch.Tensor, unclamped) -> tuple[torch.Tensor, int]:
    """Gradient w.r.t. ``images`` of the sum of the output pixels of ``pre`` where the resize overshoots [0, 1]
    (found with ``unclamped``, the same geometry without clamping)."""
    x = images.clone().requires_grad_(True)
    raw = unclamped(images) * STD + MEAN
    mask = (raw < -1e-3) | (raw > 1 + 1e-3)
    (pre(x) * mask).sum().backward()
    return x.grad, int(mask.sum())


@pytest.mark.parametrize("hw", [(48, 64), (64, 64)])
def test_gradient_where_bicubic_overshoots(hw):
    """Hard edges make bicubic overshoot [0, 1]; the official tensor paths (HPSv2, ImageReward's ReFL) do not clamp,
    so those pixels must pass gradient. The clamped variant (aesthetic, PickScore, CLIP score) has none there."""
    images = hard_edge_images(1, *hw, seed=5, cell=8)
    unclamped = lambda x: clip_preprocess(x, clamp=False)  # noqa: E731
    for pre, ref in ((letterbox_preprocess, letterbox_preprocess), (unclamped, unclamped)):
        grad, n_over = overshoot_grad(pre, images, ref)
        assert n_over > 100 and grad.abs().sum() > 0
    grad, n_over = overshoot_grad(lambda x: clip_preprocess(x, clamp=True), images, unclamped)
    assert n_over > 100 and grad.abs().sum() == 0


@pytest.mark.parametrize("hw", [(64, 64), (97, 64), (480, 640)])
def test_unclamped_path_equals_refl_tensor_path(hw):
    """clamp=False is ImageReward's ReFL.py transform (float Resize, CenterCrop, Normalize), also on hard edges."""
    images = hard_edge_images(2, *hw, seed=7, cell=8)
    want = torch.stack([official_tensor_clip_preprocess(im) for im in images])
    torch.testing.assert_close(clip_preprocess(images, clamp=False), want, atol=1e-4, rtol=0)
