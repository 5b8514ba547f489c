"""Sample-based distances and errors, each with its sampling-noise scale.

* ``sliced_w2``: sliced 2-Wasserstein distance (same directions for every call, data units).
  Its noise floor is the distance between two independent exact samples of the same size
  (``sw2_floor``): a sampler is indistinguishable from the target when it sits at that floor.
* ``mode_weight_tv``: ½‖mean_n γ(x_n) − π‖₁ with γ the responsibilities of the *target* mixture.
  E_{x~p}[γ_k(x)] = π_k exactly, so it measures mis-weighted modes and is ≈ 0 (up to O(1/√N)) for
  exact samples, however much the modes overlap.
(A mean with its standard error: ``blend.stats.mean_se``.)
"""

from __future__ import annotations

import math

import torch

from theory.mixture import DTYPE, GaussianMixture


def projections(d: int, n: int, seed: int = 1234) -> torch.Tensor:
    """n random unit directions in R^d, (n, d)."""
    v = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    return v / v.norm(dim=1, keepdim=True)


def sliced_w2(x: torch.Tensor, y: torch.Tensor, n_projections: int = 256, seed: int = 1234) -> float:
    """√(mean over directions θ of W2²(θᵀx, θᵀy)); x (N, d), y (M, d). Unequal sizes use quantiles."""
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    theta = projections(x.shape[1], n_projections, seed)
    px = torch.sort((theta @ x.to(DTYPE).T).contiguous(), dim=1).values   # (P, N), sorted per direction
    py = torch.sort((theta @ y.to(DTYPE).T).contiguous(), dim=1).values
    if px.shape[1] != py.shape[1]:
        n = max(px.shape[1], py.shape[1])
        q = (torch.arange(n, dtype=DTYPE) + 0.5) / n
        px, py = torch.quantile(px, q, dim=1).T, torch.quantile(py, q, dim=1).T
    return math.sqrt(float(((px - py) ** 2).mean()))


def sw2_floor(target: GaussianMixture, n: int, repeats: int, seed: int, n_projections: int = 256) -> tuple[float, float]:
    """(mean, max) of ``sliced_w2`` between pairs of independent exact n-samples of ``target``."""
    g = torch.Generator().manual_seed(seed)
    vals = [sliced_w2(target.sample(n, g), target.sample(n, g), n_projections) for _ in range(repeats)]
    return sum(vals) / len(vals), max(vals)


def mode_weight_tv(target: GaussianMixture, x: torch.Tensor) -> float:
    """½ Σ_k |mean_n γ_k(x_n) − π_k|, γ the responsibilities under ``target``."""
    return 0.5 * float((target.responsibilities(x).mean(0) - target.weights).abs().sum())


