"""The DDIM step (Song et al. 2021, eq. 12) with the Gaussian log-probability of the transition.

Written to match ``diffusers.DDIMScheduler.step`` (diffusers 0.42.1) operation for operation, so the
same model output and noise give the same ``prev_sample`` bit for bit. Additions: the mean and the
standard deviation of the transition are returned, ``timestep`` may be a per-row tensor (training
on transitions from a replay buffer), and :func:`gaussian_logprob` gives DPOK's per-step
log-probability (mean over latent elements, not sum; see docs/method.md §4).

With ᾱ_t the cumulative product of alphas, t' the previous timestep of the inference grid and
ε the (guided) noise prediction:

    x̂0       = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t
    σ_t      = η · √((1−ᾱ_t')/(1−ᾱ_t) · (1 − ᾱ_t/ᾱ_t'))
    μ_t      = √ᾱ_t' x̂0 + √(1−ᾱ_t'−σ_t²) ε
    x_t'     = μ_t + σ_t z,   z ~ N(0, I)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler


@dataclass
class DDIMStep:
    """Result of one step. Shapes are those of the sample, (B, C, H, W); ``std`` broadcasts to it."""

    prev_sample: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    pred_original_sample: torch.Tensor


def previous_timestep(scheduler: DDIMScheduler, timestep: int | torch.Tensor) -> int | torch.Tensor:
    """t' = t − T_train / n_inference_steps (negative at the last step: ᾱ_t' is then ``final_alpha_cumprod``)."""
    if scheduler.num_inference_steps is None:
        raise ValueError("call scheduler.set_timesteps(n) before stepping")
    return timestep - scheduler.config.num_train_timesteps // scheduler.num_inference_steps


def _alpha_prod(scheduler: DDIMScheduler, t: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """ᾱ at ``t`` (``final_alpha_cumprod`` where t < 0), shaped to broadcast against ``like``."""
    ac = scheduler.alphas_cumprod
    if isinstance(t, torch.Tensor) and t.ndim > 0:
        t_cpu = t.detach().to("cpu", torch.long)
        vals = torch.where(t_cpu >= 0, ac[t_cpu.clamp(min=0)], scheduler.final_alpha_cumprod)
        return vals.to(like.device).view(-1, *([1] * (like.ndim - 1)))
    t = int(t)
    return ac[t] if t >= 0 else scheduler.final_alpha_cumprod


def _to_epsilon_and_x0(scheduler, model_output, sample, alpha_prod_t):
    beta_prod_t = 1 - alpha_prod_t
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        x0 = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        eps = model_output
    elif kind == "sample":
        x0 = model_output
        eps = (sample - alpha_prod_t ** (0.5) * x0) / beta_prod_t ** (0.5)
    elif kind == "v_prediction":
        x0 = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
        eps = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
    else:
        raise ValueError(f"unsupported prediction_type {kind!r}; use 'epsilon', 'sample' or 'v_prediction'")
    return eps, x0


def transition(mean: torch.Tensor, std: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """x_t' = μ_t + σ_t z: the stochastic part of a DDIM step, for a step's own noise and for callers that re-draw a
    transition from a step's (μ_t, σ_t) (CoDe's extra branches, SMC after resampling)."""
    return mean + std * noise


def ddim_step(
    scheduler: DDIMScheduler,
    model_output: torch.Tensor,
    timestep: int | torch.Tensor,
    sample: torch.Tensor,
    eta: float,
    noise: torch.Tensor | None = None,
) -> DDIMStep:
    """One DDIM step from x_t to x_t'.

    Args:
        scheduler: a ``DDIMScheduler`` after ``set_timesteps``.
        model_output: the (guided, blended) network output at (x_t, t), same shape as ``sample``.
        timestep: t, an int or a (B,) tensor of per-row timesteps on the same inference grid.
        sample: x_t, (B, C, H, W).
        eta: η ≥ 0; 0 is deterministic DDIM, 1 is DDPM-like (the paper's setting).
        noise: z for the stochastic part; required when η > 0 (pass pre-drawn noise so that every
            method sees the same z for the same (prompt, seed)).
    """
    if scheduler.config.thresholding:
        raise ValueError("dynamic thresholding is not supported; load the scheduler with thresholding=False")
    prev_t = previous_timestep(scheduler, timestep)
    alpha_prod_t = _alpha_prod(scheduler, timestep, sample)
    alpha_prod_t_prev = _alpha_prod(scheduler, prev_t, sample)
    eps, x0 = _to_epsilon_and_x0(scheduler, model_output, sample, alpha_prod_t)
    if scheduler.config.clip_sample:
        x0 = x0.clamp(-scheduler.config.clip_sample_range, scheduler.config.clip_sample_range)

    beta_prod_t = 1 - alpha_prod_t
    beta_prod_t_prev = 1 - alpha_prod_t_prev
    variance = (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)
    std = eta * variance ** (0.5)

    direction = (1 - alpha_prod_t_prev - std**2) ** (0.5) * eps
    mean = alpha_prod_t_prev ** (0.5) * x0 + direction
    if eta > 0:
        if noise is None:
            raise ValueError("eta > 0 needs the noise tensor z (same shape as the sample)")
        prev = transition(mean, std, noise)
    else:
        prev = mean
    std_t = std if isinstance(std, torch.Tensor) else torch.tensor(std)
    return DDIMStep(prev_sample=prev, mean=mean, std=std_t, pred_original_sample=x0)


def gaussian_logprob(x_prev: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log N(x_prev; mean, std² I), averaged over all non-batch elements (DPOK's convention). → (B,)

    Raises if any std is 0 (η = 0, or a deterministic last step): the density is then undefined.
    """
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    if bool((std <= 0).any()):
        raise ValueError("log-probability of a deterministic transition (std = 0) is undefined; use eta > 0")
    lp = -((x_prev.detach() - mean) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
    return lp.mean(dim=tuple(range(1, lp.ndim)))


def ddim_step_with_logprob(
    scheduler: DDIMScheduler,
    model_output: torch.Tensor,
    timestep: int | torch.Tensor,
    sample: torch.Tensor,
    eta: float,
    noise: torch.Tensor | None = None,
    prev_sample: torch.Tensor | None = None,
) -> tuple[DDIMStep, torch.Tensor]:
    """:func:`ddim_step` plus log π(x_t' | x_t) → (B,).

    Pass ``prev_sample`` to score a stored transition (DPOK's policy loss) instead of sampling one.
    """
    if eta <= 0:
        raise ValueError("the log-probability of a DDIM step needs eta > 0 (eta = 0 is deterministic)")
    step = ddim_step(scheduler, model_output, timestep, sample, eta,
                     noise=noise if prev_sample is None else torch.zeros_like(sample))
    if prev_sample is not None:
        step.prev_sample = prev_sample
    return step, gaussian_logprob(step.prev_sample, step.mean, step.std)
