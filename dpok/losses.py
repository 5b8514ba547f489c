"""DPOK's loss terms as pure functions (docs/method.md §4, ``_train_policy_func``).

    adv   = R − V(x_t, c, k)                                   (R when there is no value function)
    ratio = clamp(exp(log π_θ(x_{t−1}|x_t) − log π_old), 1 − δ, 1 + δ)
    KL    = mean((ε̂_θ − ε̂_pre)²)                                (guided ε, all elements)
    L     = −reward_weight · mean(adv · ratio) + kl_weight · KL

With the tight clamp (δ = 1e-4) only near-on-policy transitions carry gradient, and for those the
gradient is −reward_weight · adv · ∇ log π_θ (REINFORCE).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clipped_ratio(log_prob: torch.Tensor, old_log_prob: torch.Tensor, ratio_clip: float) -> torch.Tensor:
    """clamp(exp(log_prob − old_log_prob), 1 − ratio_clip, 1 + ratio_clip). → (B,)"""
    return torch.clamp(torch.exp(log_prob - old_log_prob.detach()), 1.0 - ratio_clip, 1.0 + ratio_clip)


def policy_loss(advantage: torch.Tensor, log_prob: torch.Tensor, old_log_prob: torch.Tensor,
                ratio_clip: float, reward_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """−reward_weight · mean(adv · ratio), and the ratio. The advantage is treated as a constant."""
    ratio = clipped_ratio(log_prob, old_log_prob, ratio_clip)
    loss = -reward_weight * (advantage.detach().float().reshape(-1) * ratio.float().reshape(-1)).mean()
    return loss, ratio


def kl_penalty(eps_theta: torch.Tensor, eps_pre: torch.Tensor) -> torch.Tensor:
    """mean((ε̂_θ − ε̂_pre)²) over every element (DPOK's per-step KL bound, constants dropped). → scalar"""
    return ((eps_theta.float() - eps_pre.detach().float()) ** 2).mean()


def dpok_loss(advantage: torch.Tensor, log_prob: torch.Tensor, old_log_prob: torch.Tensor,
              eps_theta: torch.Tensor, eps_pre: torch.Tensor, *, ratio_clip: float, reward_weight: float,
              kl_weight: float, use_kl: bool = True) -> dict[str, torch.Tensor]:
    """The full micro-batch loss (before the division by the accumulation steps) and its parts."""
    p_loss, ratio = policy_loss(advantage, log_prob, old_log_prob, ratio_clip, reward_weight)
    kl = kl_penalty(eps_theta, eps_pre)
    loss = p_loss + (kl_weight * kl if use_kl else 0.0 * kl)
    return {"loss": loss, "policy_loss": p_loss, "kl": kl, "ratio": ratio}


def value_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE(V, final reward) (DPOK divides it by v_step and accumulates v_step minibatches)."""
    return F.mse_loss(pred.float().reshape(-1), target.detach().float().reshape(-1))


def normalise_advantage(rewards: torch.Tensor, mode: str, group_size: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """none: rewards as they are; batch: z-score over all; prompt: z-score within consecutive groups of
    ``group_size`` (the samples of one prompt). → same shape as ``rewards``"""
    if mode == "none":
        return rewards
    if mode == "batch":
        return (rewards - rewards.mean()) / (rewards.std(unbiased=False) + eps)
    if mode == "prompt":
        if rewards.numel() % group_size:
            raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
        g = rewards.reshape(-1, group_size)
        return ((g - g.mean(1, keepdim=True)) / (g.std(1, unbiased=False, keepdim=True) + eps)).reshape(-1)
    raise ValueError(f"unknown advantage normalisation {mode!r}; use none, batch or prompt")
