"""The DDIM step and its log-probability against diffusers and against hand computation."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler

from diffusion.ddim import ddim_step, ddim_step_with_logprob, gaussian_logprob, transition
from diffusion.tiny import SD15_SCHEDULER


@pytest.fixture
def sched():
    s = DDIMScheduler(**SD15_SCHEDULER)
    s.set_timesteps(20)
    return s


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_step_matches_diffusers_bit_for_bit(sched, eta):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 8, 8, generator=gen)
    for t in sched.timesteps.tolist():
        eps = torch.randn(3, 4, 8, 8, generator=gen)
        z = torch.randn(3, 4, 8, 8, generator=gen)
        ref = sched.step(eps, t, x, eta=eta, variance_noise=z if eta > 0 else None)
        ours = ddim_step(sched, eps, t, x, eta, noise=z)
        assert torch.equal(ours.prev_sample, ref.prev_sample), t
        assert torch.equal(ours.pred_original_sample, ref.pred_original_sample)
        x = ref.prev_sample


def test_clip_sample_and_v_prediction_match_diffusers():
    s = DDIMScheduler(**{**SD15_SCHEDULER, "clip_sample": True, "prediction_type": "v_prediction"})
    s.set_timesteps(10)
    gen = torch.Generator().manual_seed(1)
    x, out, z = (torch.randn(2, 3, 4, 4, generator=gen) for _ in range(3))
    for t in s.timesteps.tolist():
        assert torch.equal(ddim_step(s, out, t, x, 1.0, noise=z).prev_sample,
                           s.step(out, t, x, eta=1.0, variance_noise=z).prev_sample)


def test_per_row_timesteps_equal_scalar_steps(sched):
    gen = torch.Generator().manual_seed(2)
    ts = sched.timesteps[[0, 7, 19]]
    x, eps, z = (torch.randn(3, 4, 8, 8, generator=gen) for _ in range(3))
    batched = ddim_step(sched, eps, ts, x, 1.0, noise=z)
    for i, t in enumerate(ts.tolist()):
        single = ddim_step(sched, eps[i:i + 1], t, x[i:i + 1], 1.0, noise=z[i:i + 1])
        torch.testing.assert_close(batched.prev_sample[i:i + 1], single.prev_sample, rtol=0, atol=0)
        torch.testing.assert_close(batched.std.flatten()[i], single.std.flatten()[0])


def test_logprob_by_hand():
    """log N(x; μ, σ²) averaged over elements: x − μ = (1, −2), σ = 0.5."""
    mean = torch.zeros(1, 2)
    x = torch.tensor([[1.0, -2.0]])
    std = torch.tensor(0.5)
    by_hand = sum(-(v**2) / (2 * 0.25) - math.log(0.5) - 0.5 * math.log(2 * math.pi) for v in (1.0, -2.0)) / 2
    assert gaussian_logprob(x, mean, std).item() == pytest.approx(by_hand, rel=1e-6)


def test_logprob_of_sampled_step_matches_density(sched):
    """The stored-transition path gives the same log-prob as the sampling path, and it equals the Gaussian density."""
    gen = torch.Generator().manual_seed(3)
    x, eps, z = (torch.randn(2, 4, 8, 8, generator=gen) for _ in range(3))
    t = sched.timesteps[5].item()
    step, lp = ddim_step_with_logprob(sched, eps, t, x, 1.0, noise=z)
    _, lp_again = ddim_step_with_logprob(sched, eps, t, x, 1.0, prev_sample=step.prev_sample)
    torch.testing.assert_close(lp, lp_again)
    expected = (-0.5 * z**2 - torch.log(step.std) - 0.5 * math.log(2 * math.pi)).mean(dim=(1, 2, 3))
    torch.testing.assert_close(lp, expected, rtol=1e-5, atol=1e-5)


def test_logprob_needs_eta(sched):
    x = torch.zeros(1, 4, 8, 8)
    with pytest.raises(ValueError, match="eta > 0"):
        ddim_step_with_logprob(sched, x, sched.timesteps[0].item(), x, 0.0)
    with pytest.raises(ValueError, match="noise"):
        ddim_step(sched, x, sched.timesteps[0].item(), x, 1.0)


def test_transition_is_the_steps_own_update(sched):
    """``transition(μ, σ, z)`` is the step's x_t' bit for bit: CoDe's branches and SMC re-draw with it."""
    gen = torch.Generator().manual_seed(1)
    x, eps, z = (torch.randn(2, 4, 8, 8, generator=gen) for _ in range(3))
    step = ddim_step(sched, eps, int(sched.timesteps[3]), x, 1.0, noise=z)
    assert torch.equal(transition(step.mean, step.std, z), step.prev_sample)


def test_no_ddim_update_outside_diffusion_ddim():
    """The DDIM update is written once (diffusion/ddim.py): no other module reads ᾱ or forms μ + σ z by hand."""
    repo = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"alphas_cumprod|final_alpha_cumprod|\bmean\b[^\n=]*\+[^\n]*\bstd\b\s*\*")
    found = sorted(p.relative_to(repo).as_posix() for d in ("blend", "dpok", "diffusion", "diffusion_blend")
                   for p in (repo / d).rglob("*.py")
                   if p.name != "ddim.py" and pattern.search(p.read_text(encoding="utf-8")))
    assert not found, found
