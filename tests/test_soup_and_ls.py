"""Rewarded-soup merges and the DB-MPA-LS draw frequencies."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from blend.sampler import draw_adapter_choices
from blend.soup import average_factors, merge_delta
from blend.spec import BlendSpec
from diffusion.adapters import activate
from diffusion.lora import add_lora


def test_ls_draw_frequencies():
    w = (0.2, 0.5, 0.3)
    draws = [c for seed in range(400) for c in draw_adapter_choices(seed, ("a", "b", "c"), w, 50)]
    freq = np.array([draws.count(n) for n in "abc"]) / len(draws)
    se = np.sqrt(np.array(w) * (1 - np.array(w)) / len(draws))
    assert np.all(np.abs(freq - w) < 4 * se), freq
    assert draw_adapter_choices(7, ("a", "b"), (0.5, 0.5), 20) == draw_adapter_choices(7, ("a", "b"), (0.5, 0.5), 20)


def _eps(unet, x, emb, name):
    activate(unet, name)
    with torch.no_grad():
        return unet(x, 500, encoder_hidden_states=emb).sample


def test_delta_soup_equals_hand_merged_weights(tiny_with_adapters):
    bundle, loras = tiny_with_adapters
    w = (0.3, 0.7)
    hand = copy.deepcopy(bundle.unet)
    activate(hand, None)
    with torch.no_grad():
        for mod in loras["a"].modules:
            layer = hand.get_submodule(mod).base_layer
            delta = w[0] * loras["a"].delta(mod) + w[1] * loras["b"].delta(mod)
            layer.weight += delta.to(layer.weight.dtype)
    add_lora(bundle.unet, "soup", merge_delta([loras["a"], loras["b"]], w))
    x, emb = torch.randn(2, 4, 8, 8), bundle.encode_prompts(["a", "b"])
    torch.testing.assert_close(_eps(bundle.unet, x, emb, "soup"), _eps(hand, x, emb, None), rtol=1e-5, atol=1e-5)


def test_factor_average_is_not_the_delta_soup(tiny_with_adapters):
    bundle, loras = tiny_with_adapters
    w = (0.5, 0.5)
    exact, factors = merge_delta([loras["a"], loras["b"]], w), average_factors([loras["a"], loras["b"]], w)
    mod = loras["a"].modules[0]
    want_factors = loras["a"].scale(mod) * (0.5 * loras["a"].B[mod] + 0.5 * loras["b"].B[mod]).double() @ \
        (0.5 * loras["a"].A[mod] + 0.5 * loras["b"].A[mod]).double()
    torch.testing.assert_close(factors.delta(mod), want_factors)
    torch.testing.assert_close(exact.delta(mod), 0.5 * loras["a"].delta(mod) + 0.5 * loras["b"].delta(mod))
    assert (factors.delta(mod) - exact.delta(mod)).abs().max() > 1e-3  # the cross terms


def test_soup_of_one_adapter_with_weight_one_is_that_adapter(tiny_with_adapters):
    bundle, loras = tiny_with_adapters
    add_lora(bundle.unet, "s1", merge_delta([loras["a"], loras["b"]], (1.0, 0.0)))
    x, emb = torch.randn(2, 4, 8, 8), bundle.encode_prompts(["a", "b"])
    torch.testing.assert_close(_eps(bundle.unet, x, emb, "s1"), _eps(bundle.unet, x, emb, "a"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="mpa", adapters=("a", "b"), weights=(0.5, 0.6)), "sum to 1"),
    (dict(method="mpa", adapters=("a", "b"), weights=(1.0,)), "2 adapters"),
    (dict(method="mpa_ls", adapters=("a", "b"), weights=(1.5, -0.5)), "≥ 0"),
    (dict(method="kla", adapters=("a",), weights=(1.0,), lam=-1.0), "λ ≥ 0"),
    (dict(method="mpa", adapters=(), weights=()), "at least one adapter"),
    (dict(method="blend", adapters=("a",), weights=(1.0,)), "unknown method"),
    (dict(method="mpa", adapters=("a", "b"), weights=(float("nan"), 1.0)), "finite"),
])
def test_bad_blend_specs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlendSpec(**kwargs)


def test_kla_warns_past_two():
    with pytest.warns(UserWarning, match="extrapolates"):
        BlendSpec("kla", ("a",), (1.0,), lam=2.5)
