"""Drive the project's DDIM step and blend algebra with exact ε-networks.

Nothing here re-implements sampling: every step is ``diffusion.ddim.ddim_step`` and every blend is
``blend.eps.combine`` with ``blend.eps.mixture_coefficients`` (the functions ``run_DB.py`` uses). The
points are (N, d) tensors; ``ddim_step`` broadcasts its scalar coefficients over them as it does
over (B, C, H, W) latents.

* DB-MPA      ε = Σ_i w_i ε_i                    coefficients ``mixture_coefficients(w)``
* DB-KLA      ε = (1−λ) ε_pre + λ ε_i            coefficients ``mixture_coefficients({i: 1}, λ)``
* DB-MPA-LS   ε = ε_j, j ~ w, redrawn every step (one draw for the whole batch, as the paper's
              code does, or one per sample)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler

from blend.eps import combine
from diffusion.ddim import ddim_step
from theory.mixture import DTYPE

EpsFn = Callable[[torch.Tensor, int], torch.Tensor]
"""ε(x_t (N, d), t) -> (N, d)."""

StepHook = Callable[[int, int, torch.Tensor, torch.Tensor], None]
"""hook(step_index, t, x_t, ε) called before each step."""


def make_scheduler(num_inference_steps: int) -> DDIMScheduler:
    """SD1.5's DDIM scheduler (docs/method.md §3): 1000 train steps, scaled-linear β 0.00085→0.012."""
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    scheduler.set_timesteps(num_inference_steps)
    return scheduler


@dataclass(frozen=True)
class SharedNoise:
    """x_T (N, d) and the per-step noise z (S, N, d): every method sees the same draws."""

    x_T: torch.Tensor
    z: torch.Tensor

    @classmethod
    def draw(cls, n: int, d: int, steps: int, seed: int) -> SharedNoise:
        g = torch.Generator().manual_seed(seed)
        x_T = torch.randn(n, d, generator=g, dtype=DTYPE)
        return cls(x_T, torch.randn(steps, n, d, generator=g, dtype=DTYPE))


def run_ddim(eps_fn: EpsFn, scheduler: DDIMScheduler, noise: SharedNoise, eta: float = 1.0,
             hook: StepHook | None = None) -> torch.Tensor:
    """x_T ~ N(0, I) → x_0 through ``ddim_step`` at every timestep of ``scheduler``. Returns (N, d)."""
    timesteps = [int(t) for t in scheduler.timesteps]
    if noise.z.shape[0] < len(timesteps):
        raise ValueError(f"{noise.z.shape[0]} noise draws for {len(timesteps)} steps")
    x = noise.x_T
    for i, t in enumerate(timesteps):
        eps = eps_fn(x, t)
        if hook is not None:
            hook(i, t, x, eps)
        x = ddim_step(scheduler, eps, t, x, eta, noise=noise.z[i]).prev_sample
    return x


def blended(models: Mapping[str, EpsFn], coeffs: Mapping[str, float]) -> EpsFn:
    """Σ_j c_j ε_j over the models named in ``coeffs`` (``blend.eps.combine``); others are not run."""
    missing = [k for k in coeffs if k not in models]
    if missing:
        raise KeyError(f"no model for {missing}")

    def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        return combine({name: models[name](x, t) for name in coeffs}, coeffs)

    return eps_fn


def switching(models: Mapping[str, EpsFn], probs: Mapping[str, float], seed: int,
              per_sample: bool = False) -> EpsFn:
    """DB-MPA-LS: at every call pick one model with probability ``probs`` (normalised).

    ``per_sample=False`` is the paper's code: one draw ``u = rand(1)`` per step selects the model by
    the cumulative probabilities, for the whole batch. ``per_sample=True`` draws independently for
    each sample, which is the process of Prop. 2 sampled N times.
    """
    names = [n for n, p in probs.items() if p > 0]
    if not names:
        raise ValueError("DB-MPA-LS needs at least one positive probability")
    p = torch.tensor([probs[n] for n in names], dtype=DTYPE)
    p = p / p.sum()
    cum = torch.cumsum(p, 0)
    g = torch.Generator().manual_seed(seed)

    def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        if not per_sample:
            u = float(torch.rand(1, generator=g, dtype=DTYPE))
            j = min(int((cum <= u).sum()), len(names) - 1)
            return models[names[j]](x, t)
        pick = torch.multinomial(p, x.shape[0], replacement=True, generator=g)
        out = torch.empty_like(x)
        for j, name in enumerate(names):
            rows = pick == j
            if bool(rows.any()):
                out[rows] = models[name](x[rows], t)
        return out

    return eps_fn


def affine_chain_law(eps_fn: EpsFn, scheduler: DDIMScheduler, d: int, eta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact law (mean (d,), cov (d, d)) of the DDIM chain's output from x_T ~ N(0, I) when ε is affine in x.

    Each step is then x' = c + M x + σ_t z, so the law stays Gaussian: m' = c + M m, P' = M P Mᵀ + σ_t² I.
    c and M are read off ``ddim_step`` itself (noise 0) at x = 0 and x = e_j. A check at a random point
    raises if ε is not affine (e.g. a mixture with more than one component).
    """
    m = torch.zeros(d, dtype=DTYPE)
    cov = torch.eye(d, dtype=DTYPE)
    probe = torch.cat([torch.zeros(1, d, dtype=DTYPE), torch.eye(d, dtype=DTYPE),
                       torch.randn(1, d, generator=torch.Generator().manual_seed(0), dtype=DTYPE)])
    for t in (int(t) for t in scheduler.timesteps):
        step = ddim_step(scheduler, eps_fn(probe, t), t, probe, eta, noise=torch.zeros_like(probe))
        c = step.mean[0]
        lin = (step.mean[1:d + 1] - c).T                                   # M, (d, d)
        if not torch.allclose(step.mean[d + 1], c + lin @ probe[d + 1], atol=1e-9, rtol=1e-9):
            raise ValueError("ε is not affine in x: the chain law is Gaussian only for a single-Gaussian world")
        std = float(step.std)
        m = c + lin @ m
        cov = lin @ cov @ lin.T + std**2 * torch.eye(d, dtype=DTYPE)
    return m, cov
