"""The toy world's data generator and learned alignment scorer (issue 5, tests 1–2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from toy.data import (
    COLOR_NAMES,
    COLORS,
    SHAPES,
    all_combos,
    caption,
    draw,
    make_batch,
    palette_attributes,
    parse_caption,
    split_combos,
    tuning_combos,
    write_prompt_files,
)

ROOT = Path(__file__).resolve().parent.parent


def test_generator_is_deterministic():
    a, ca, la = make_batch(16, 3)
    b, cb, lb = make_batch(16, 3)
    assert torch.equal(a, b) and ca == cb and torch.equal(la, lb)
    c, _, _ = make_batch(16, 4)
    assert not torch.equal(a, c)


def test_background_texture_is_a_style_axis_the_caption_does_not_name():
    plain, caps, labels = make_batch(16, 3)
    same, caps0, labels0 = make_batch(16, 3, texture=0.0)
    assert torch.equal(plain, same)  # texture 0 is the generator as it was, bit for bit
    tex, caps1, labels1 = make_batch(16, 3, texture=40.0)
    assert caps1 == caps and torch.equal(labels1, labels)  # same captions: nothing names the stripes
    changed = (tex - plain).abs().amax(1)  # (16, 32, 32)
    assert changed.amax() <= 40 / 127.5 + 1e-6 and changed.mean() > 0.01
    # the object is untouched: its pixels far from an edge are identical
    colour = torch.tensor([COLORS[COLOR_NAMES[int(lab[0])]] for lab in labels], dtype=torch.float32) / 127.5 - 1
    inside = ((plain - colour[:, :, None, None]).abs().amax(1) < 1e-6).float()  # (16, 32, 32) object pixels
    inside = -torch.nn.functional.max_pool2d(-inside[:, None], 3, 1, 1)[:, 0] > 0.5  # eroded by a pixel
    assert inside.sum() > 100 and (changed[inside] == 0).all()
    with pytest.raises(ValueError, match="0–255"):
        make_batch(2, 3, texture=-1.0)


def test_ground_truth_reads_textured_images_right():
    from toy.data import all_combos, truth_attributes

    x, _, labels = make_batch(256, (123,), all_combos(), texture=40.0)
    acc = (truth_attributes(x / 2 + 0.5) == labels).float().mean(0)
    assert acc[0] == 1 and acc[2] == 1 and acc[1] >= 0.95  # colour, shape, background


def test_split_and_prompt_files():
    train, held = split_combos()
    assert len(all_combos()) == 120 and len(held) == 12 and len(train) == 108
    assert not set(train) & set(held)
    assert json.loads((ROOT / "dataset/toy_test_prompts.json").read_text()) == [caption(c) for c in held]
    assert json.loads((ROOT / "dataset/toy_train_prompts.json").read_text()) == [caption(c) for c in train]
    for c in all_combos():
        assert parse_caption(caption(c)) == c
    with pytest.raises(ValueError):
        parse_caption("a photo of a cat")


def test_tuning_prompts_are_training_prompts_never_held_out(tmp_path):
    train, held = split_combos()
    tune = tuning_combos()
    assert len(tune) == len(set(tune)) == 12 and set(tune) <= set(train) and not set(tune) & set(held)
    assert tuning_combos() == tune  # fixed, not drawn anew
    written = write_prompt_files(tmp_path)
    assert [p.name for p in written] == ["toy_train_prompts.json", "toy_test_prompts.json", "toy_tune_prompts.json"]
    for p in written:  # the committed files are the ones the generator writes
        assert p.read_text() == (ROOT / "dataset" / p.name).read_text()


def test_captions_match_colours_read_from_pixels():
    x, caps, labels = make_batch(96, 11, all_combos())
    pa = palette_attributes(x / 2 + 0.5)
    assert torch.equal(pa[:, 0], labels[:, 0])  # object colour
    assert torch.equal(pa[:, 1], labels[:, 2])  # background colour
    for cap, lab in zip(caps, labels.tolist()):
        assert parse_caption(cap) == tuple(lab)


def _object_mask(combo, seed):
    import numpy as np

    img = draw(combo, np.random.default_rng(seed)).astype(float)
    col = np.array(COLORS[COLOR_NAMES[combo[0]]], dtype=float)
    mask = ((img - col) ** 2).sum(-1) < 40**2
    ys, xs = np.nonzero(mask)
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


@pytest.mark.parametrize("seed", range(4))
def test_captions_match_shapes(seed):
    """Each shape has its own geometry: fill of its bounding box, and where the box is filled."""
    fill = {}
    for s, name in enumerate(SHAPES):
        m = _object_mask((0, s, 2), seed)
        h, w = m.shape
        fill[name] = m.mean()
        if name == "cross":
            assert m[h // 2, w // 2] and not m[0, 0] and not m[-1, -1] and not m[0, -1]
        if name == "triangle":
            assert m[-1].mean() > 0.6 and m[0].mean() < 0.4
    assert fill["square"] > 0.9
    assert 0.65 < fill["circle"] < 0.9
    assert fill["triangle"] < 0.65 and fill["cross"] < 0.7


def test_judge_ranks_correct_captions_above_wrong_ones():
    """On fresh (unseen) images, the toy_alignment reward prefers the true caption over captions with
    one attribute changed, far above chance (0.5)."""
    from rewards import get_reward

    reward = get_reward("toy_alignment")
    x, caps, labels = make_batch(60, (424242,), split_combos()[1])  # held-out combos, unseen seeds
    images = x / 2 + 0.5
    good = reward(images, caps)
    wins = []
    for k in range(3):
        wrong = []
        for lab in labels.tolist():
            lab = list(lab)
            n = len(SHAPES) if k == 1 else len(COLOR_NAMES)
            lab[k] = (lab[k] + 1) % n
            if k != 1 and lab[0] == lab[2]:
                lab[k] = (lab[k] + 1) % n
            wrong.append(caption(tuple(lab)))
        wins.append((good > reward(images, wrong)).float())
    rate = torch.cat(wins).mean().item()
    assert rate > 0.9, rate
    assert torch.isfinite(good).all() and (good <= 0).all()


def test_toy_rewards_are_differentiable():
    from rewards import REGISTRY, get_reward

    assert REGISTRY["toy_alignment"].differentiable and REGISTRY["toy_smoothness"].differentiable
    x, caps, _ = make_batch(4, 5)
    images = (x / 2 + 0.5).requires_grad_(True)
    (get_reward("toy_alignment")(images, caps).sum() + get_reward("toy_smoothness")(images, caps).sum()).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    flat = torch.full((2, 3, 32, 32), 0.5)
    assert torch.allclose(get_reward("toy_smoothness")(flat, ["", ""]), torch.zeros(2))


def test_standardised_toy_rewards():
    from rewards import get_reward

    stats = json.loads((ROOT / "toy/weights/reward_stats.json").read_text())
    x, caps, _ = make_batch(4, 6)
    images = x / 2 + 0.5
    raw = get_reward("toy_alignment")(images, caps)
    z = get_reward("toy_alignment_z")(images, caps)
    s = stats["toy_alignment"]
    assert torch.allclose(z, (raw - s["mean"]) / s["std"], atol=1e-5)
    jz = get_reward("toy_jpeg_z")(images, caps)
    jraw = get_reward("jpeg_compressibility")(images, caps)
    assert torch.allclose(jz, (jraw - stats["jpeg_compressibility"]["mean"]) / stats["jpeg_compressibility"]["std"],
                          atol=1e-4)


def test_capped_compressibility_is_a_soft_minimum_with_the_target():
    import math

    from rewards import get_reward
    from rewards.toy import CAP_SCALE, soft_cap
    from rewards.toy import CAP_SOFTNESS as TAU
    from rewards.toy import COMPRESS_CAP as C

    assert CAP_SCALE.startswith(f"{C:g} (") and f"τ = {TAU:g})" in CAP_SCALE  # the scale --list_rewards prints

    z = torch.tensor([-4.0, 0.0, C, C + 3.0, 40.0], requires_grad=True)
    y = soft_cap(z)
    lo = torch.minimum(z, torch.tensor(C)) - TAU * math.log(2)
    assert torch.all(y <= torch.minimum(z, torch.tensor(C)) + 1e-6) and torch.all(y >= lo - 1e-6)
    assert y[2].item() == pytest.approx(C - TAU * math.log(2)) and y[4].item() == pytest.approx(C)
    y.sum().backward()  # the slope is σ((c − z)/τ): 1 far below the target, ½ at it, 0 far above
    assert torch.allclose(z.grad, torch.sigmoid((C - z.detach()) / TAU))
    x, caps, _ = make_batch(4, 6)
    images = x / 2 + 0.5
    assert torch.allclose(get_reward("toy_jpeg_capped_z")(images, caps), soft_cap(get_reward("toy_jpeg_z")(images, caps)))
    smooth = get_reward("toy_smoothness_capped_z")(images, caps)
    assert torch.allclose(smooth, soft_cap(get_reward("toy_smoothness_z")(images, caps)))
    flat = torch.full((2, 3, 32, 32), 0.5)  # the flattest image earns the target, no more
    assert torch.allclose(get_reward("toy_smoothness_capped_z")(flat, ["", ""]), torch.full((2,), C), atol=1e-4)


def test_ground_truth_reads_clean_images_right():
    from toy.data import all_combos, truth_attributes

    x, _, labels = make_batch(256, (123,), all_combos())
    acc = (truth_attributes(x / 2 + 0.5) == labels).float().mean(0)
    assert acc[0] == 1 and acc[2] == 1 and acc[1] >= 0.97  # colour, shape, background
    assert (truth_attributes(torch.full((1, 3, 32, 32), 0.5))[0, 1] == -1)  # no object: no shape


def test_the_held_out_judge_shares_nothing_with_the_training_judge():
    from rewards import get_reward
    from toy import WEIGHTS_DIR

    cfg_train = json.loads((WEIGHTS_DIR / "judge/config.json").read_text())
    cfg_held = json.loads((WEIGHTS_DIR / "judge_heldout/config.json").read_text())
    assert cfg_train.get("arch", "cnn5") != cfg_held["arch"]
    man = [json.loads((WEIGHTS_DIR / d / "manifest.json").read_text()) for d in ("judge", "judge_heldout")]
    assert man[0]["seed"] != man[1]["seed"] and "--pool_seed" in man[1]["command"]
    x, caps, _ = make_batch(4, 6)
    a, b = get_reward("toy_align")(x / 2 + 0.5, caps), get_reward("toy_align_heldout")(x / 2 + 0.5, caps)
    assert (a <= 0).all() and (b <= 0).all() and not torch.equal(a, b)
    stats = json.loads((WEIGHTS_DIR / "reward_stats.json").read_text())
    z = get_reward("toy_align_heldout_z")(x / 2 + 0.5, caps)
    s = stats["toy_align_heldout"]
    assert torch.allclose(z, (b - s["mean"]) / s["std"], atol=1e-5)


def test_the_rewards_read_the_toy_weights_where_the_toy_keeps_them():
    """rewards/ cannot import toy/ (tests/test_layering.py), so it names the folder itself: the same one."""
    from rewards.toy_judge import TOY_WEIGHTS_DIR
    from toy import WEIGHTS_DIR

    assert TOY_WEIGHTS_DIR == WEIGHTS_DIR
