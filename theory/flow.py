"""Diffusion Blend on a flow-matching (rectified-flow) path, in closed form for Gaussian mixtures.

SD3-family models are trained on the straight path between data and noise and predict a velocity:

    x_t = (1 − t) x0 + t z,   t ∈ [0, 1] (t = σ of ``FlowMatchEulerDiscreteScheduler``),
    v*(x, t) = E[z − x0 | x_t = x].

The marginal of a mixture p0 = Σ_k π_k N(μ_k, Σ_k) is p_t = Σ_k π_k N((1−t) μ_k, (1−t)² Σ_k + t² I).
With the score s_t = ∇log p_t and Tweedie for this path (E[z|x] = −t s_t(x),
E[x0|x] = (x + t² s_t(x)) / (1 − t)):

    v*(x, t) = −t s_t(x) − (x + t² s_t(x)) / (1 − t) = −(x + t s_t(x)) / (1 − t).          (V)

The velocity is an affine function of the score whose x-term, −x/(1−t), is the same for every model on
the path. So for coefficients c_j with Σ_j c_j = 1 (DB-MPA: c = w; DB-KLA: (1−λ, λ); their combination):

    Σ_j c_j v_j(x, t) = −(x + t Σ_j c_j s_j(x, t)) / (1 − t),

i.e. blending velocities is blending scores plus the shared linear term, exactly as blending ε is
blending scores on the VP path (ε = −√(1−ᾱ) s). The approximation DB makes is the same one: the tilted
target's score s^tar = s^pre + u is replaced by Σ_j c_j s_j, whose error is the Jensen gap of docs/method.md §2.3.
The path is also the VP path rescaled: x_t = c_t·y with y = √ᾱ x0 + √(1−ᾱ) z, c_t = √((1−t)² + t²) and
√ᾱ = (1 − t)/c_t, so a score blend at flow time t is the score blend at that ᾱ (``vp_alpha_bar``).
DB-MPA-LS carries over unchanged (one model's velocity per step, drawn with probability w_j).

Everything is float64, points are (N, d).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch

from theory.denoiser import posterior_moments
from theory.mixture import DTYPE, GaussianMixture

VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]
"""v(x_t (N, d), t ∈ (0, 1)) -> (N, d)."""


def flow_marginal(mixture: GaussianMixture, t: float) -> GaussianMixture:
    """p_t of the rectified-flow path x_t = (1−t) x0 + t z."""
    eye = torch.eye(mixture.dim, dtype=DTYPE)
    return GaussianMixture(mixture.weights, (1.0 - t) * mixture.means, (1.0 - t) ** 2 * mixture.covs + t**2 * eye)


def velocity_from_score(x: torch.Tensor, score: torch.Tensor, t: float) -> torch.Tensor:
    """Equation (V): v = −(x + t·s) / (1 − t), (N, d). Needs t < 1."""
    if not 0.0 <= t < 1.0:
        raise ValueError(f"flow time must be in [0, 1), got {t}")
    return -(x + t * score) / (1.0 - t)


def exact_velocity(mixture: GaussianMixture, x: torch.Tensor, t: float) -> torch.Tensor:
    """v*(x, t) of the mixture through its score, (N, d).

    At t = 1, where (V) is 0/0, x_1 = z is independent of x0 and v*(x, 1) = x − E[x0] (the limit of (V)).
    """
    if t >= 1.0:
        return x - mixture.mean()
    return velocity_from_score(x, flow_marginal(mixture, t).score(x), t)


def vp_alpha_bar(t: float) -> tuple[float, float]:
    """(ᾱ, c_t) with x_t^flow = c_t · x^VP at that ᾱ: c_t = √((1−t)² + t²), √ᾱ = (1−t)/c_t."""
    c = math.sqrt((1.0 - t) ** 2 + t**2)
    return ((1.0 - t) / c) ** 2, c


def velocity_by_tweedie(mixture: GaussianMixture, x: torch.Tensor, t: float) -> torch.Tensor:
    """v*(x, t) = E[z|x] − E[x0|x] computed on the VP path (an independent route to (V), for tests).

    E[x0 | x_t = x] is the VP posterior mean at ᾱ(t) for the point x / c_t; then z = (x − (1−t) x0) / t.
    """
    alpha_bar, c = vp_alpha_bar(t)
    x0_mean, _ = posterior_moments(mixture, x / c, alpha_bar)
    z_mean = (x - (1.0 - t) * x0_mean) / t
    return z_mean - x0_mean


class ExactVelocity:
    """The exact velocity network of a mixture, called like a model: ``v(x, t)``."""

    def __init__(self, mixture: GaussianMixture) -> None:
        self.mixture = mixture

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return exact_velocity(self.mixture, x, t)


def blend_velocities(models: Mapping[str, VelocityFn], coeffs: Mapping[str, float]) -> VelocityFn:
    """Σ_j c_j v_j: DB-MPA (c = w), DB-KLA (c = (1−λ, λ)) or their combination on the velocity."""
    names = list(coeffs)

    def v(x: torch.Tensor, t: float) -> torch.Tensor:
        out = coeffs[names[0]] * models[names[0]](x, t)
        for n in names[1:]:
            out = out + coeffs[n] * models[n](x, t)
        return out

    return v


def flow_sigmas(steps: int, shift: float = 1.0) -> list[float]:
    """The σ (= t) grid of ``FlowMatchEulerDiscreteScheduler(shift=...)``: steps + 1 values from 1 down to 0."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(steps)
    return [float(s) for s in sched.sigmas]


def run_flow_euler(velocity: VelocityFn, x_1: torch.Tensor, steps: int, shift: float = 1.0) -> torch.Tensor:
    """Integrate dx/dt = v from t = 1 (noise ``x_1``) to t = 0 with the Euler steps of diffusers'
    ``FlowMatchEulerDiscreteScheduler`` (x ← x + (σ_next − σ) v, its ``step`` on the same grid). → (N, d)

    The first grid point is σ = 1 (see :func:`exact_velocity` for the velocity there).
    """
    sigmas = flow_sigmas(steps, shift)
    x = x_1.clone()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s) * velocity(x, s)
    return x


def mixture_coefficient_blend(models: Mapping[str, GaussianMixture], weights: Sequence[float],
                              base: GaussianMixture | None = None, lam: float = 1.0) -> VelocityFn:
    """The combined rule (1−λ) v_pre + λ Σ_i w_i v_i over exact velocity networks (base needed when λ ≠ 1)."""
    nets: dict[str, VelocityFn] = {n: ExactVelocity(m) for n, m in models.items()}
    coeffs = {n: lam * w for n, w in zip(models, weights)}
    if lam != 1.0:
        if base is None:
            raise ValueError("λ ≠ 1 needs the base model")
        nets["__base__"] = ExactVelocity(base)
        coeffs = {"__base__": 1.0 - lam, **coeffs}
    return blend_velocities(nets, coeffs)
