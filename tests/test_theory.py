"""Theory lab: closed forms, exact denoisers and exactness of the blend in the single-Gaussian case."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler

from blend.eps import BASE, kl_blend_eps, mixture_coefficients
from diffusion.ddim import ddim_step
from theory.denoiser import ExactEps, eps_star, exact_control, linearised_control, posterior_moments
from theory.experiments import world_models
from theory.metrics import mode_weight_tv, sliced_w2
from theory.mixture import DTYPE, GaussianMixture, RewardWorld, gaussian_world, random_world, square_world
from theory.sampling import SharedNoise, affine_chain_law, blended, make_scheduler, run_ddim, switching


def _mixture3(seed: int = 0) -> GaussianMixture:
    """A generic d = 3 mixture: 3 components, full covariances, unequal weights."""
    return random_world(3, 3, separation=2.0, seed=seed, sigma=0.6).base


# ---- closed forms ------------------------------------------------------------------------------
def test_tilt_density_identity():
    """log p_tilt(x) = log p(x) + bᵀx − log Z(b) at arbitrary points (exact, no sampling)."""
    mix = _mixture3()
    b = torch.tensor([0.7, -0.4, 0.3], dtype=DTYPE)
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=DTYPE) * 2
    lhs = mix.tilt(b).log_prob(x)
    rhs = mix.log_prob(x) + x @ b - mix.log_partition(b)
    torch.testing.assert_close(lhs, rhs, atol=1e-10, rtol=0)


def test_tilt_matches_importance_weighting():
    """The closed-form tilt equals a self-normalised importance-weighted estimate of p·exp(bᵀx),
    for the mean, the covariance, the component weights and log Z, within 5 standard errors."""
    mix = _mixture3()
    b = torch.tensor([0.8, -0.5, 0.4], dtype=DTYPE)
    tilted = mix.tilt(b)
    x = mix.sample(200_000, torch.Generator().manual_seed(2))
    logw = x @ b
    w = torch.softmax(logw, 0)                                   # self-normalised weights

    def check(f: torch.Tensor, exact: torch.Tensor) -> None:   # f (N, k): IS estimate Σ w f, delta-method SE
        est = (w[:, None] * f).sum(0)
        se = torch.sqrt((w[:, None] ** 2 * (f - est) ** 2).sum(0))
        assert bool(((est - exact).abs() <= 5 * se + 1e-12).all()), (est, exact, se)

    check(x, tilted.mean())
    centred = x - tilted.mean()
    check((centred[:, :, None] * centred[:, None, :]).reshape(len(x), -1), tilted.covariance().reshape(-1))
    check(mix.responsibilities(x), tilted.weights)              # E_p[γ_k e^{bᵀx}]/Z = π'_k
    ess = 1.0 / float((w**2).sum())
    assert ess > 10_000, f"importance weights too degenerate for the test (ESS {ess:.0f})"
    log_z_est = float(torch.logsumexp(logw, 0)) - math.log(len(x))
    assert abs(log_z_est - mix.log_partition(b)) < 5 / math.sqrt(ess)


def test_tilt_of_targets():
    """λ = 0 is the base, λ = 1 the fine-tuned model; the MORL target is the tilt by Σ w_i a_i/α."""
    world = square_world(1.5)
    t0 = world.target((1.0, 0.0), 0.5, lam=0.0)
    torch.testing.assert_close(t0.weights, world.base.weights, atol=1e-15, rtol=0)
    torch.testing.assert_close(t0.means, world.base.means, atol=0, rtol=0)
    t1 = world.target((1.0, 0.0), 0.5, lam=1.0)
    ft = world.finetuned(0, 0.5)
    assert torch.equal(t1.weights, ft.weights) and torch.equal(t1.means, ft.means)
    tw = world.target((0.3, 0.7), 0.25)
    ref = world.base.tilt(torch.tensor([0.3, 0.7], dtype=DTYPE) / 0.25)
    assert torch.equal(tw.means, ref.means) and torch.equal(tw.weights, ref.weights)


def test_mixture_validation():
    with pytest.raises(ValueError, match="probability"):
        GaussianMixture(torch.tensor([0.5, 0.6], dtype=DTYPE), torch.zeros(2, 2, dtype=DTYPE),
                        torch.eye(2, dtype=DTYPE).expand(2, 2, 2).clone())
    with pytest.raises(ValueError, match="shapes"):
        GaussianMixture(torch.ones(1, dtype=DTYPE), torch.zeros(1, 2, dtype=DTYPE), torch.eye(3, dtype=DTYPE)[None])
    with pytest.raises(ValueError, match="rewards"):
        RewardWorld("bad", square_world(1.0).base, torch.eye(3, dtype=DTYPE))


# ---- exact denoisers and control terms ---------------------------------------------------------
def test_score_and_posterior_moments_against_autograd():
    """score = ∇log p_t; E[x0|x_t] and Cov[x0|x_t] satisfy Tweedie's first and second order formulas."""
    mix = _mixture3(1)
    ab = 0.4
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(3), dtype=DTYPE)
    noised = mix.noised(ab)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(noised.log_prob(xg).sum(), xg)
    torch.testing.assert_close(noised.score(x), grad, atol=1e-10, rtol=0)
    torch.testing.assert_close(eps_star(mix, x, ab), -math.sqrt(1 - ab) * grad, atol=1e-10, rtol=0)
    mean, cov = posterior_moments(mix, x, ab)
    torch.testing.assert_close(mean, (x + (1 - ab) * grad) / math.sqrt(ab), atol=1e-10, rtol=0)
    for n in range(len(x)):
        hess = torch.autograd.functional.hessian(lambda y: noised.log_prob(y[None])[0], x[n])
        torch.testing.assert_close(cov[n], (1 - ab) / ab * (torch.eye(3, dtype=DTYPE) + (1 - ab) * hess),
                                   atol=1e-9, rtol=0)


def test_linearised_control_is_gradient_of_posterior_reward():
    """ū = ∇_x bᵀE[x0 | x_t = x] (the Jensen-gap approximation of docs/method.md §2.3)."""
    mix = _mixture3(2)
    ab, b = 0.3, torch.tensor([1.0, -2.0, 0.5], dtype=DTYPE)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=DTYPE).requires_grad_(True)
    (grad,) = torch.autograd.grad((posterior_moments(mix, x, ab)[0] @ b).sum(), x)
    torch.testing.assert_close(linearised_control(mix, b, x.detach(), ab), grad, atol=1e-10, rtol=0)


def test_jensen_gap_zero_for_gaussian_nonzero_for_mixture():
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(5), dtype=DTYPE)
    b = torch.tensor([2.0, 1.0], dtype=DTYPE)
    for ab in (0.01, 0.3, 0.9):
        gauss = gaussian_world(2).base
        torch.testing.assert_close(exact_control(gauss, b, x, ab), linearised_control(gauss, b, x, ab),
                                   atol=1e-10, rtol=0)
        mix = square_world(2.0).base
        gap = (exact_control(mix, b, x, ab) - linearised_control(mix, b, x, ab)).norm(dim=1).max()
        assert float(gap) > 1e-3


def test_lemma2_identity():
    """Σ w_i u_i − u_w = Σ w_i Δ_i − Δ_w, since ū is linear in the reward (Lemma 2)."""
    mix = square_world(1.5).base
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(6), dtype=DTYPE)
    ab, w = 0.2, (0.3, 0.7)
    b1, b2 = torch.tensor([4.0, 0.0], dtype=DTYPE), torch.tensor([0.0, 4.0], dtype=DTYPE)
    bw = w[0] * b1 + w[1] * b2
    u = {k: exact_control(mix, b, x, ab) for k, b in (("1", b1), ("2", b2), ("w", bw))}
    d = {k: u[k] - linearised_control(mix, b, x, ab) for k, b in (("1", b1), ("2", b2), ("w", bw))}
    torch.testing.assert_close(w[0] * u["1"] + w[1] * u["2"] - u["w"], w[0] * d["1"] + w[1] * d["2"] - d["w"],
                               atol=1e-10, rtol=0)


# ---- the sampler -------------------------------------------------------------------------------
def test_ddim_step_on_points_matches_diffusers():
    """The project's ddim_step on (N, d) float64 points equals DDIMScheduler.step with the same noise."""
    sched = make_scheduler(10)
    ref = DDIMScheduler.from_config(sched.config)
    ref.set_timesteps(10)
    g = torch.Generator().manual_seed(7)
    x, e, z = (torch.randn(16, 2, generator=g, dtype=DTYPE) for _ in range(3))
    for t in (int(sched.timesteps[0]), int(sched.timesteps[-1])):
        ours = ddim_step(sched, e, t, x, 1.0, noise=z).prev_sample
        theirs = ref.step(e, t, x, eta=1.0, variance_noise=z).prev_sample
        torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)


def _gauss_setup(steps: int, alpha: float = 0.5, d: int = 2):
    world = gaussian_world(d)
    sched = make_scheduler(steps)
    return world, sched, world_models(world, alpha, sched)


def test_blend_is_exact_for_single_gaussian():
    """DB-MPA and DB-KLA (λ up to 2) give the target's ε to rounding error at every t."""
    alpha = 0.5
    world, sched, models = _gauss_setup(20, alpha, d=3)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(8), dtype=DTYPE)
    for t in (int(t) for t in sched.timesteps[::4]):
        for w in (0.0, 0.3, 0.5, 1.0):
            eps = blended(models, mixture_coefficients({"r1": w, "r2": 1 - w}))(x, t)
            torch.testing.assert_close(eps, ExactEps(world.target((w, 1 - w), alpha), sched)(x, t), atol=1e-12, rtol=0)
        for lam in (0.0, 0.5, 1.5, 2.0):
            eps = kl_blend_eps(models[BASE](x, t), models["r1"](x, t), lam)
            torch.testing.assert_close(eps, ExactEps(world.target((1, 0), alpha, lam), sched)(x, t),
                                       atol=1e-12, rtol=0)


def test_single_gaussian_samples_match_target():
    """DB-MPA (w = ½) on a single Gaussian, 100 DDIM steps (η = 1), N = 10000.

    Stated tolerances: the sample mean and covariance agree with the exact law of the DDIM chain within
    4.5 standard errors (sampling noise), and that law agrees with the target up to discretisation:
    mean error < 0.002 and relative covariance error < 0.13 at 100 steps (η = 1 DDIM under-disperses),
    shrinking with more steps (< 0.04 at 400).
    """
    world, sched, models = _gauss_setup(100)
    target = world.target((0.5, 0.5), 0.5)
    eps_fn = blended(models, mixture_coefficients({"r1": 0.5, "r2": 0.5}))
    x = run_ddim(eps_fn, sched, SharedNoise.draw(10_000, 2, 100, seed=9))
    m_chain, c_chain = affine_chain_law(eps_fn, sched, 2)
    n = x.shape[0]
    dg = torch.diagonal(c_chain)
    z_mean = (x.mean(0) - m_chain) / torch.sqrt(dg / n)
    z_cov = (torch.cov(x.T) - c_chain) / torch.sqrt((dg[:, None] * dg[None] + c_chain**2) / n)
    assert float(z_mean.abs().max()) < 4.5 and float(z_cov.abs().max()) < 4.5
    c_tar = target.covariance()
    assert float((m_chain - target.mean()).norm()) < 0.002
    assert float((c_chain - c_tar).norm() / c_tar.norm()) < 0.13
    # the gap to the target is discretisation: it shrinks with the number of steps
    biases = []
    for steps in (25, 100, 400):
        s = make_scheduler(steps)
        _, c = affine_chain_law(ExactEps(target, s), s, 2)
        biases.append(float((c - c_tar).norm() / c_tar.norm()))
    assert biases[0] > biases[1] > biases[2] and biases[2] < 0.04


def test_chain_law_rejects_mixtures():
    sched = make_scheduler(5)
    with pytest.raises(ValueError, match="affine"):
        affine_chain_law(ExactEps(square_world(2.0).base, sched), sched, 2)


def test_lambda_zero_and_one_and_w_one_are_exact_runs():
    """On a mixture: DB-KLA λ = 0 is the base run, λ = 1 the fine-tuned run, DB-MPA w = 1 the r1 run, bit for bit."""
    world = square_world(1.5)
    sched = make_scheduler(10)
    models = world_models(world, 0.25, sched)
    noise = SharedNoise.draw(128, 2, 10, seed=10)
    base = run_ddim(models[BASE], sched, noise)
    ft = run_ddim(models["r1"], sched, noise)
    assert torch.equal(run_ddim(blended(models, mixture_coefficients({"r1": 1.0}, 0.0)), sched, noise), base)
    assert torch.equal(run_ddim(blended(models, mixture_coefficients({"r1": 1.0}, 1.0)), sched, noise), ft)
    assert torch.equal(run_ddim(blended(models, mixture_coefficients({"r1": 1.0, "r2": 0.0})), sched, noise), ft)
    target0 = ExactEps(world.target((1, 0), 0.25, lam=0.0), sched)
    torch.testing.assert_close(run_ddim(target0, sched, noise), base, atol=1e-12, rtol=0)


def test_switching_modes():
    world = square_world(1.5)
    sched = make_scheduler(6)
    models = world_models(world, 0.5, sched)
    noise = SharedNoise.draw(64, 2, 6, seed=11)
    only_r1 = run_ddim(switching(models, {"r1": 1.0, "r2": 0.0}, seed=0), sched, noise)
    assert torch.equal(only_r1, run_ddim(models["r1"], sched, noise))
    for per_sample in (False, True):
        x = run_ddim(switching(models, {"r1": 0.5, "r2": 0.5}, seed=0, per_sample=per_sample), sched, noise)
        assert x.shape == (64, 2) and bool(torch.isfinite(x).all())


# ---- metrics -----------------------------------------------------------------------------------
def test_metrics():
    g = torch.Generator().manual_seed(12)
    x = torch.randn(2000, 2, generator=g, dtype=DTYPE)
    assert sliced_w2(x, x) == 0.0
    shift = torch.tensor([0.6, 0.0], dtype=DTYPE)
    # SW2² = mean_θ (θᵀc)² = |c|²/2 for uniform directions in 2-D
    assert abs(sliced_w2(x, x + shift, n_projections=512) - 0.6 / math.sqrt(2)) < 0.02
    assert sliced_w2(x, x[:1000] + shift) > 0.3
    target = square_world(2.0).base
    assert mode_weight_tv(target, target.sample(20_000, g)) < 0.02
    assert mode_weight_tv(target, target.tilt(torch.tensor([3.0, 0.0], dtype=DTYPE)).sample(2000, g)) > 0.3
