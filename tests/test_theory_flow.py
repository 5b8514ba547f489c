"""Diffusion Blend on the flow-matching path (theory/flow.py): the velocity of a Gaussian mixture in closed form,
the velocity-blending identity, and the blended flow sampler against the exact target."""

from __future__ import annotations

import math

import pytest
import torch

from theory.flow import (
    ExactVelocity,
    blend_velocities,
    exact_velocity,
    flow_marginal,
    flow_sigmas,
    mixture_coefficient_blend,
    run_flow_euler,
    velocity_by_tweedie,
    vp_alpha_bar,
)
from theory.mixture import DTYPE, gaussian_world, square_world


@pytest.mark.parametrize("t", [0.05, 0.3, 0.5, 0.8, 0.97])
def test_velocity_closed_form_equals_tweedie_route(t):
    mixture = square_world(1.5).base
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=DTYPE)
    torch.testing.assert_close(exact_velocity(mixture, x, t), velocity_by_tweedie(mixture, x, t), rtol=1e-10,
                               atol=1e-10)


def test_velocity_matches_monte_carlo_regression():
    """v*(x, t) = E[z − x0 | x_t = x]: check against simulated (x0, z) pairs near one point."""
    mixture = square_world(1.5).base
    g = torch.Generator().manual_seed(1)
    t = 0.6
    x0 = mixture.sample(400_000, g)
    z = torch.randn(x0.shape, generator=g, dtype=DTYPE)
    xt = (1 - t) * x0 + t * z
    point = torch.tensor([[0.2, -0.1]], dtype=DTYPE)
    near = (xt - point).norm(dim=1) < 0.05
    mc = (z - x0)[near].mean(0)
    se = (z - x0)[near].std(0) / math.sqrt(int(near.sum()))
    assert int(near.sum()) > 500
    assert ((mc - exact_velocity(mixture, point, t)[0]).abs() < 5 * se + 0.02).all()


def test_flow_path_is_the_vp_path_rescaled():
    mixture = square_world(1.5).base
    for t in (0.1, 0.5, 0.9):
        alpha_bar, c = vp_alpha_bar(t)
        flow = flow_marginal(mixture, t)
        vp = mixture.noised(alpha_bar)
        torch.testing.assert_close(flow.means, c * vp.means)
        torch.testing.assert_close(flow.covs, c**2 * vp.covs)


def test_blended_velocity_is_blended_score_plus_shared_linear_term():
    world, alpha, w = square_world(1.5), 0.5, (0.3, 0.7)
    models = {f"r{i}": world.finetuned(i, alpha) for i in range(2)}
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(2), dtype=DTYPE)
    for t in (0.2, 0.6):
        blended = mixture_coefficient_blend(models, w)(x, t)
        score_blend = sum(wi * flow_marginal(m, t).score(x) for wi, m in zip(w, models.values()))
        torch.testing.assert_close(blended, -(x + t * score_blend) / (1 - t), rtol=1e-12, atol=1e-12)


def test_blend_is_exact_for_one_gaussian_and_differs_for_separated_modes():
    """DB-MPA and DB-KLA give the target's velocity exactly when the tilt only shifts the mean (one Gaussian);
    with separated modes they do not (the Jensen gap)."""
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(3), dtype=DTYPE)
    alpha = 0.5
    g_world = gaussian_world(2)
    g_models = {f"r{i}": g_world.finetuned(i, alpha) for i in range(2)}
    s_world = square_world(1.5)
    s_models = {f"r{i}": s_world.finetuned(i, alpha) for i in range(2)}
    for t in (0.1, 0.5, 0.9):
        exact = exact_velocity(g_world.target((0.3, 0.7), alpha), x, t)
        torch.testing.assert_close(mixture_coefficient_blend(g_models, (0.3, 0.7))(x, t), exact, rtol=0, atol=1e-12)
        kla = mixture_coefficient_blend({"r0": g_models["r0"]}, (1.0,), base=g_world.base, lam=1.7)(x, t)
        torch.testing.assert_close(kla, exact_velocity(g_world.target((1.0, 0.0), alpha, lam=1.7), x, t),
                                   rtol=0, atol=1e-12)
    gap = (mixture_coefficient_blend(s_models, (0.5, 0.5))(x, 0.5)
           - exact_velocity(s_world.target((0.5, 0.5), alpha), x, 0.5)).abs().max()
    assert gap > 1e-3


def test_euler_grid_is_diffusers_flow_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(8)
    v_fn = ExactVelocity(square_world(1.5).base)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(4), dtype=DTYPE)
    ours = run_flow_euler(v_fn, x, 8, shift=3.0)
    ref = x.clone()
    for t, s in zip(sched.timesteps, sched.sigmas[:-1]):
        ref = sched.step(v_fn(ref, float(s)), t, ref).prev_sample
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    assert flow_sigmas(8, 3.0)[0] == 1.0 and flow_sigmas(8, 3.0)[-1] == 0.0


def test_blended_flow_sampler_reaches_the_target_for_one_gaussian():
    """The whole Euler chain with the DB-MPA velocity samples the w-weighted tilt of a Gaussian: it equals the
    target's own chain on the same noise to float precision, and the samples' moments match the exact target."""
    world, alpha, w = gaussian_world(2), 0.5, (0.25, 0.75)
    models = {f"r{i}": world.finetuned(i, alpha) for i in range(2)}
    target = world.target(w, alpha)
    x1 = torch.randn(4000, 2, generator=torch.Generator().manual_seed(5), dtype=DTYPE)
    db = run_flow_euler(mixture_coefficient_blend(models, w), x1, 100)
    oracle = run_flow_euler(ExactVelocity(target), x1, 100)
    torch.testing.assert_close(db, oracle, rtol=0, atol=1e-10)
    se = db.std(0) / math.sqrt(db.shape[0])
    assert ((db.mean(0) - target.mean()).abs() < 5 * se + 0.02).all()
    cov = torch.cov(db.T)
    assert ((cov.diagonal() / target.covariance().diagonal() - 1).abs() < 0.08).all()


def test_blend_velocities_keeps_the_order_and_reproduces_one_model_bit_for_bit():
    world = square_world(1.5)
    nets = {"a": ExactVelocity(world.finetuned(0, 0.5)), "b": ExactVelocity(world.finetuned(1, 0.5))}
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(6), dtype=DTYPE)
    assert torch.equal(blend_velocities(nets, {"a": 1.0, "b": 0.0})(x, 0.4), nets["a"](x, 0.4))
