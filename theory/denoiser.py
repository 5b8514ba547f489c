"""Exact noise predictors, posterior moments and the control terms of docs/method.md §2 for Gaussian mixtures.

For data p0 and x_t = √ᾱ x0 + √(1−ᾱ) z (all at one ᾱ = ᾱ_t):

    ε*(x, t)       = −√(1−ᾱ) ∇log p_t(x)                        (the ideal ε-network)
    E[x0 | x_t]    = (x + (1−ᾱ) ∇log p_t(x)) / √ᾱ                (Tweedie)
    Cov[x0 | x_t]  = (1−ᾱ)/ᾱ · (I + (1−ᾱ) ∇²log p_t(x))          (second-order Tweedie)

Control terms (Prop. 1 and the Jensen-gap approximation) for the tilt b = a/α:

    u(x, t)  = ∇log E[exp(bᵀx0) | x_t = x] = ∇log p_t^tar(x) − ∇log p_t^pre(x)       (exact, Doob h)
    ū(x, t)  = ∇ E[bᵀx0 | x_t = x] = (∂E[x0|x_t]/∂x)ᵀ b = √ᾱ/(1−ᾱ) · Cov[x0 | x_t] b  (linear in b)
    Δ        = u − ū                                                                   (the Jensen gap)

For one Gaussian component Cov[x0|x_t] does not depend on x and log E[exp(bᵀx0)|x_t] = bᵀE[x0|x_t] +
const, so Δ = 0. In ε units every score term is multiplied by −√(1−ᾱ).
"""

from __future__ import annotations

import math

import torch
from diffusers import DDIMScheduler

from theory.mixture import DTYPE, GaussianMixture


def eps_star(mixture: GaussianMixture, x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """ε*(x, t) = −√(1−ᾱ) ∇log p_t(x), (N, d)."""
    return -math.sqrt(1.0 - alpha_bar) * mixture.noised(alpha_bar).score(x)


def posterior_moments(mixture: GaussianMixture, x: torch.Tensor, alpha_bar: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(E[x0 | x_t = x] (N, d), Cov[x0 | x_t = x] (N, d, d)) under p0 = ``mixture``.

    Per component k, with C_k = ᾱΣ_k + (1−ᾱ)I:  m_k = μ_k + √ᾱ Σ_k C_k⁻¹(x − √ᾱμ_k),
    S_k = Σ_k − ᾱ Σ_k C_k⁻¹ Σ_k; then mix with the responsibilities γ_k(x) of p_t.
    """
    noised = mixture.noised(alpha_bar)
    log_n, sol = noised.component_terms(x)                                  # (N, K), (N, K, d)
    gamma = torch.softmax(log_n + mixture.weights.log(), dim=1)             # (N, K)
    sq = math.sqrt(alpha_bar)
    m_k = mixture.means[None] + sq * torch.einsum("kij,nkj->nki", mixture.covs, sol)  # (N, K, d)
    s_k = mixture.covs - alpha_bar * mixture.covs @ torch.linalg.solve(noised.covs, mixture.covs)  # (K, d, d)
    mean = (gamma[:, :, None] * m_k).sum(1)
    second = torch.einsum("nk,kij->nij", gamma, s_k) + torch.einsum("nk,nki,nkj->nij", gamma, m_k, m_k)
    return mean, second - mean[:, :, None] * mean[:, None, :]


def exact_control(base: GaussianMixture, b: torch.Tensor, x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """u = ∇log p_t^tar − ∇log p_t^pre for the tilt b, (N, d)."""
    return base.tilt(b).noised(alpha_bar).score(x) - base.noised(alpha_bar).score(x)


def linearised_control(base: GaussianMixture, b: torch.Tensor, x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """ū = √ᾱ/(1−ᾱ) Cov[x0 | x_t] b, (N, d): the Jensen-gap approximation of u (linear in b)."""
    _, cov = posterior_moments(base, x, alpha_bar)
    return math.sqrt(alpha_bar) / (1.0 - alpha_bar) * cov @ torch.as_tensor(b, dtype=DTYPE)


class ExactEps:
    """The exact ε-network of a mixture, called like a model: ``eps(x, t)`` with t a scheduler timestep.

    ᾱ_t is read from ``scheduler.alphas_cumprod`` (the same float32 values ``ddim_step`` uses).
    """

    def __init__(self, mixture: GaussianMixture, scheduler: DDIMScheduler):
        self.mixture = mixture
        self.alphas_cumprod = scheduler.alphas_cumprod.to(DTYPE)

    def alpha_bar(self, t: int) -> float:
        return float(self.alphas_cumprod[int(t)])

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return eps_star(self.mixture, x, self.alpha_bar(t))
