"""Regression pins of every seed derivation (dbcore.seeding): the values were computed on the code before the
derivations moved into one module (issue #22), so the move kept every stream bit for bit. A failure here means
stored results (noise, LS draws, baseline chains, training streams) no longer reproduce."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from blend.sampler import draw_adapter_choices
from dbcore import seeding as S

REPO = Path(__file__).resolve().parents[1]


def test_noise_pins():
    assert [S.noise_seed(7), S.noise_seed(7, "a red cube"), S.noise_seed(2**40 + 3, "x")] == [
        7, 13571402958388616811, 11724921059225340613]
    x, z = S.initial_noise(3, (2, 3, 3), 2, prompt="a red cube")
    assert x.shape == (2, 3, 3) and z.shape == (2, 2, 3, 3)
    assert x.flatten()[:3].tolist() == [-0.2784165143966675, 0.6058895587921143, 0.2540733516216278]
    assert z.flatten()[-3:].tolist() == [1.8382654190063477, 0.45824918150901794, -2.0374269485473633]
    x, z = S.initial_noise(3, (2, 3, 3), 2)
    assert x.flatten()[:3].tolist() == [-0.07664429396390915, 0.35988152027130127, -0.5144619941711426]
    assert z.flatten()[-3:].tolist() == [-0.2644413411617279, -0.5871643424034119, 0.8711020350456238]
    gens = S.step_generators([3, 4], "cpu", ["p", "q"]) + S.step_generators([3], "cpu")
    assert [torch.randn(3, generator=g).tolist() for g in gens] == [
        [0.5691839456558228, 0.2882314622402191, 0.8626548051834106],
        [-0.2488713264465332, -0.22356565296649933, -0.23947785794734955],
        [-0.8415850400924683, 0.33484911918640137, -0.9474052786827087]]


def test_ls_draw_pins():
    w = (0.2, 0.3, 0.5)
    assert draw_adapter_choices(5, ("a", "b", "c"), w, 8) == ["c", "b", "c", "b", "a", "a", "c", "a"]
    assert draw_adapter_choices(5, ("a", "b", "c"), w, 8, prompt="p") == ["b", "c", "a", "c", "c", "c", "b", "a"]
    assert draw_adapter_choices([5, 6], ("a", "b"), (0.5, 0.5), 8) == ["a", "b", "a", "a", "b", "a", "a", "b"]


def test_baseline_and_training_pins():
    assert [S.derive_seed(11, 0), S.derive_seed(11, 2), S.derive_seed(11, 1, tag=0xC0DE)] == [
        11, 1713779999572734239, 2963041567401321740]
    assert S.branch_noise(11, 2, 3, (1, 2, 2)).flatten()[:3].tolist() == [
        -0.2887575328350067, -1.4389166831970215, -0.17121566832065582]
    assert S.resample_rng(11).random(3).tolist() == [0.3170196126702455, 0.8986952291818945, 0.9226569664386919]
    assert [S.training_seed(0, 0x10AA), S.training_seed(1, 0, 5, 0xE90C), S.training_seed(3, 1, 2, 7, 9)] == [
        9152444264704819882, 3013454846831920570, 3603567943168670530]
    assert torch.randn(3, generator=S.observe_generator(4)).tolist() == [
        0.5932023525238037, -0.05517062917351723, -1.2301307916641235]


def test_no_seed_derivation_outside_the_seeding_module():
    """The method, baselines and training derive no seed of their own: no ``SeedSequence`` outside dbcore.seeding."""
    found = sorted(p.relative_to(REPO).as_posix() for d in ("blend", "dpok", "diffusion", "diffusion_blend", "dbcore")
                   for p in (REPO / d).rglob("*.py")
                   if re.search(r"SeedSequence", p.read_text(encoding="utf-8")) and p.name != "seeding.py")
    assert not found, found
