"""Gaussian mixtures in R^d: density, VP-noised marginals and exponential tilts, all in closed form.

Data and its noised marginal (VP forward process x_t = √ᾱ_t x0 + √(1−ᾱ_t) z):

    p0  = Σ_k π_k N(μ_k, Σ_k)
    p_t = Σ_k π_k N(√ᾱ_t μ_k, ᾱ_t Σ_k + (1−ᾱ_t) I)

Tilt by a linear reward r(x) = aᵀx at KL strength α, with natural parameter b = a/α
(docs/method.md §1: p^tar ∝ p^pre · exp(r/α)):

    p0(x) · exp(bᵀx) / Z(b) = Σ_k π'_k N(μ_k + Σ_k b, Σ_k)
    π'_k ∝ π_k · exp(bᵀμ_k + ½ bᵀΣ_k b),      log Z(b) = logsumexp_k(log π_k + bᵀμ_k + ½ bᵀΣ_k b)

A weighted reward Σ_i w_i a_iᵀx is linear too, so the MORL target for weights w is the tilt by
b = Σ_i w_i a_i / α, and the target at KL strength α/λ is the tilt by λ·b (λ = 0: the base itself).
With one component the tilt only shifts the mean, linearly in b: that is why blending is exact
for a single Gaussian; with several components the re-weighting π'(b) is nonlinear (Jensen gap).

Everything here is float64; shapes are written as (N, d) for points, (K,) (K, d) (K, d, d) for
the components.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

DTYPE = torch.float64


@dataclass(frozen=True)
class GaussianMixture:
    """Σ_k π_k N(μ_k, Σ_k). ``weights`` (K,), ``means`` (K, d), ``covs`` (K, d, d), float64."""

    weights: torch.Tensor
    means: torch.Tensor
    covs: torch.Tensor

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d):
            raise ValueError(f"shapes disagree: weights {tuple(self.weights.shape)}, means {tuple(self.means.shape)}, "
                             f"covs {tuple(self.covs.shape)}; expected (K,), (K, d), (K, d, d)")
        if any(t.dtype != DTYPE for t in (self.weights, self.means, self.covs)):
            raise ValueError("GaussianMixture tensors must be float64 (closed forms are compared at 1e-12)")
        if abs(float(self.weights.sum()) - 1.0) > 1e-9 or bool((self.weights < 0).any()):
            raise ValueError(f"weights must be a probability vector, got {self.weights.tolist()}")
        if not torch.allclose(self.covs, self.covs.transpose(-1, -2)):
            raise ValueError("covariances must be symmetric")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    # ---- closed forms -------------------------------------------------------------------------
    def noised(self, alpha_bar: float) -> GaussianMixture:
        """The marginal p_t of the VP forward process at ᾱ_t = ``alpha_bar``."""
        eye = torch.eye(self.dim, dtype=DTYPE)
        return GaussianMixture(self.weights, math.sqrt(alpha_bar) * self.means,
                               alpha_bar * self.covs + (1.0 - alpha_bar) * eye)

    def tilt_logits(self, b: torch.Tensor) -> torch.Tensor:
        """log π_k + bᵀμ_k + ½ bᵀΣ_k b, (K,): the unnormalised log-weights of the tilted mixture."""
        b = torch.as_tensor(b, dtype=DTYPE)
        return self.weights.log() + self.means @ b + 0.5 * torch.einsum("i,kij,j->k", b, self.covs, b)

    def tilt(self, b: torch.Tensor) -> GaussianMixture:
        """p0 · exp(bᵀx) / Z(b) (b = a/α for the reward aᵀx at KL strength α)."""
        b = torch.as_tensor(b, dtype=DTYPE)
        if b.shape != (self.dim,):
            raise ValueError(f"tilt vector has shape {tuple(b.shape)}, expected ({self.dim},)")
        weights = torch.softmax(self.tilt_logits(b), dim=0)
        return GaussianMixture(weights, self.means + self.covs @ b, self.covs)

    def log_partition(self, b: torch.Tensor) -> float:
        """log Z(b) = log E_p0[exp(bᵀx)]."""
        return float(torch.logsumexp(self.tilt_logits(b), dim=0))

    def mean(self) -> torch.Tensor:
        return self.weights @ self.means

    def covariance(self) -> torch.Tensor:
        m = self.mean()
        second = torch.einsum("k,kij->ij", self.weights, self.covs + self.means[:, :, None] * self.means[:, None, :])
        return second - torch.outer(m, m)

    def expected_linear(self, a: torch.Tensor) -> float:
        """E[aᵀx] = Σ_k π_k aᵀμ_k."""
        return float(self.mean() @ torch.as_tensor(a, dtype=DTYPE))

    # ---- densities ----------------------------------------------------------------------------
    def component_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log N(x; μ_k, Σ_k) (N, K),  Σ_k⁻¹(x − μ_k) (N, K, d))."""
        chol = torch.linalg.cholesky(self.covs)                              # (K, d, d)
        diff = x[:, None, :] - self.means[None]                               # (N, K, d)
        sol = torch.cholesky_solve(diff.permute(1, 2, 0), chol).permute(2, 0, 1)  # (N, K, d)
        maha = (diff * sol).sum(-1)
        logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        return -0.5 * (maha + logdet + self.dim * math.log(2 * math.pi)), sol

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        log_n, _ = self.component_terms(x)
        return torch.logsumexp(log_n + self.weights.log(), dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """P(component k | x), (N, K)."""
        log_n, _ = self.component_terms(x)
        return torch.softmax(log_n + self.weights.log(), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """∇ log p(x) = −Σ_k γ_k(x) Σ_k⁻¹(x − μ_k), (N, d)."""
        log_n, sol = self.component_terms(x)
        gamma = torch.softmax(log_n + self.weights.log(), dim=1)
        return -(gamma[:, :, None] * sol).sum(1)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n exact draws, (n, d)."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=DTYPE)
        chol = torch.linalg.cholesky(self.covs)
        return self.means[comp] + torch.einsum("nij,nj->ni", chol[comp], z)


@dataclass(frozen=True)
class RewardWorld:
    """A base (pretrained) mixture and m linear basis rewards r_i(x) = a_iᵀx, ``rewards`` (m, d)."""

    name: str
    base: GaussianMixture
    rewards: torch.Tensor

    def __post_init__(self) -> None:
        if self.rewards.ndim != 2 or self.rewards.shape[1] != self.base.dim:
            raise ValueError(f"rewards must be (m, {self.base.dim}), got {tuple(self.rewards.shape)}")

    def reward_vector(self, w: Sequence[float]) -> torch.Tensor:
        """a(w) = Σ_i w_i a_i."""
        w = torch.as_tensor(list(w), dtype=DTYPE)
        if w.shape != (self.rewards.shape[0],):
            raise ValueError(f"{len(w)} weights for {self.rewards.shape[0]} rewards")
        return w @ self.rewards

    def target(self, w: Sequence[float], alpha: float, lam: float = 1.0) -> GaussianMixture:
        """The exact optimum for reward r(w) at KL strength α/λ: tilt by λ·a(w)/α."""
        return self.base.tilt(lam * self.reward_vector(w) / alpha)

    def finetuned(self, i: int, alpha: float) -> GaussianMixture:
        """The exact fine-tuned model for basis reward i at KL strength α."""
        w = [0.0] * self.rewards.shape[0]
        w[i] = 1.0
        return self.target(w, alpha)


# ---- worlds used by the lab --------------------------------------------------------------------
def square_world(separation: float, sigma: float = 0.35,
                 weights: Sequence[float] = (0.1, 0.3, 0.3, 0.3)) -> RewardWorld:
    """d = 2: four isotropic modes at (±s/2, ±s/2), ordered (+,+), (+,−), (−,+), (−,−).

    r1 = x₁ (prefers the right), r2 = x₂ (prefers the top). The mode both rewards like, (+,+), is
    the rarest, so the MORL target at w = ½ moves mass there while each fine-tuned model keeps
    most of its mass on a mode the other reward dislikes. s = 0 is a single Gaussian N(0, σ²I).
    """
    h = separation / 2
    means = torch.tensor([[h, h], [h, -h], [-h, h], [-h, -h]], dtype=DTYPE)
    covs = (sigma**2) * torch.eye(2, dtype=DTYPE).expand(4, 2, 2).clone()
    base = GaussianMixture(torch.tensor(weights, dtype=DTYPE), means, covs)
    return RewardWorld(f"square(s={separation:g})", base, torch.eye(2, dtype=DTYPE))


def _random_spd(d: int, generator: torch.Generator, scale: float, spread: float = 0.5) -> torch.Tensor:
    """A random SPD matrix with eigenvalues scale²·[1−spread, 1+spread] and a random basis."""
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=DTYPE))
    ev = scale**2 * (1 - spread + 2 * spread * torch.rand(d, generator=generator, dtype=DTYPE))
    return (q * ev) @ q.T


def _unit_rewards(m: int, d: int, generator: torch.Generator) -> torch.Tensor:
    a = torch.randn(m, d, generator=generator, dtype=DTYPE)
    return a / a.norm(dim=1, keepdim=True)


def gaussian_world(d: int, seed: int = 0, scale: float = 0.5) -> RewardWorld:
    """The control: one anisotropic Gaussian (random mean, full covariance), two unit rewards."""
    g = torch.Generator().manual_seed(seed)
    mean = 0.3 * torch.randn(1, d, generator=g, dtype=DTYPE)
    cov = _random_spd(d, g, scale)[None]
    base = GaussianMixture(torch.ones(1, dtype=DTYPE), mean, cov)
    rewards = torch.eye(2, dtype=DTYPE) if d == 2 else _unit_rewards(2, d, g)
    return RewardWorld(f"gauss(d={d})", base, rewards)


def random_world(d: int, n_components: int, separation: float, seed: int = 0, sigma: float = 0.35,
                 aligned: bool = False) -> RewardWorld:
    """Stress test: K modes at random directions (pairwise distance ≈ ``separation``), random
    anisotropic covariances of scale σ, random mixture weights and two unit rewards: random
    directions, or (``aligned``) r_i pointing from the centre of the modes to mode i, so that each
    reward prefers a different mode (in high d a random direction barely sees the mode structure)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_components, d, generator=g, dtype=DTYPE)
    means = (separation / math.sqrt(2)) * dirs / dirs.norm(dim=1, keepdim=True)
    covs = torch.stack([_random_spd(d, g, sigma) for _ in range(n_components)])
    u = torch.rand(n_components, generator=g, dtype=DTYPE) + 0.5  # weights within a factor 3 of each other
    weights = u / u.sum()
    rewards = _unit_rewards(2, d, g)
    if aligned:
        rewards = means[:2] - means.mean(0)
        rewards = rewards / rewards.norm(dim=1, keepdim=True)
    kind = "aligned" if aligned else "random"
    return RewardWorld(f"random(d={d},K={n_components},s={separation:g},{kind} rewards)",
                       GaussianMixture(weights, means, covs), rewards)
