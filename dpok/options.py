"""DPOK options for small sample budgets, as pure functions (dpok/README.md, "Options for small budgets").

None of them changes what DPOK estimates; each changes how the samples of an iteration are used:

* :class:`PerPromptStats` — per-prompt reward normalisation with a running mean and std per prompt
  (DDPO's per-prompt stat tracker): A = (r − μ_prompt) / (σ_prompt + ε), where μ, σ are over the
  last ``buffer_size`` rewards of that prompt (this batch's included), or over the whole batch while
  the prompt has fewer than ``min_count``. Subtracting a baseline that does not depend on the sample
  keeps the policy gradient's expectation; dividing by σ rescales it per prompt.
* :func:`subsample_steps` — keep a uniform random subset of ``k`` of a trajectory's stochastic steps.
  The policy loss is a *mean* over transitions, and every step is kept with probability k/S, so the
  mean over the subset is an unbiased estimate of the mean over all S steps (:func:`subset_mean`,
  tested exactly by enumerating every subset). It cuts the policy update's cost by k/S per sample.
* :func:`step_stds`, :func:`trainable_steps` — leave out the transitions whose sampling std σ_k is below
  a floor. The score ∇ log π of a step scales as 1/σ_k, while the noise drawn there (σ_k z) barely
  changes the image when σ_k is small; such a step adds gradient variance and almost no signal (on the
  toy, the last stochastic step has σ = 0.01 and its noise explains ~1 % of the JPEG size's variance).
  Leaving it out drops that step's (small) term from the gradient: a bias traded for variance, like
  the deterministic steps that never have a density.
* :func:`epoch_minibatches` — DDPO/PPO-style use of a rollout: ``epochs`` passes over this
  iteration's fresh transitions in shuffled micro-batches, instead of DPOK's uniform draws from the
  replay buffer. With a ratio clip ≥ the policy's drift within an iteration this is PPO.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class PerPromptStats:
    """Running per-prompt reward statistics. ``store`` maps prompt → list of its last rewards; pass a
    dict kept in the checkpoint (the trainer uses ``counters.extra``) to make resuming exact."""

    def __init__(self, buffer_size: int, min_count: int, store: dict | None = None, eps: float = 1e-6) -> None:
        if buffer_size < 1 or min_count < 1:
            raise ValueError(f"per-prompt stats need buffer_size ≥ 1 and min_count ≥ 1, got {buffer_size}, "
                             f"{min_count}")
        self.buffer_size, self.min_count, self.eps = int(buffer_size), int(min_count), float(eps)
        self.store: dict[str, list[float]] = {} if store is None else store

    def update(self, prompts: Sequence[str], rewards: torch.Tensor) -> torch.Tensor:
        """Add this batch's rewards, then return their advantages (N,) float32 (same order).

        μ and σ (population std) of a prompt are over its last ``buffer_size`` rewards, this batch's
        included; while a prompt has fewer than ``min_count`` rewards, the whole batch's μ, σ are used.
        """
        r = rewards.detach().double().cpu().reshape(-1)
        if len(prompts) != r.numel():
            raise ValueError(f"{len(prompts)} prompts but {r.numel()} rewards")
        for p, v in zip(prompts, r.tolist()):
            hist = self.store.setdefault(p, [])
            hist.append(float(v))
            del hist[:-self.buffer_size]
        batch_mu, batch_sd = r.mean().item(), r.std(unbiased=False).item()
        out = torch.empty_like(r)
        for i, (p, v) in enumerate(zip(prompts, r.tolist())):
            hist = self.store[p]
            if len(hist) < self.min_count:
                mu, sd = batch_mu, batch_sd
            else:
                h = np.asarray(hist)
                mu, sd = float(h.mean()), float(h.std())
            out[i] = (v - mu) / (sd + self.eps)
        return out.float()


def subsample_steps(steps: Sequence[int], k: int | None, rng: np.random.Generator) -> list[int]:
    """A uniform random subset of ``k`` of ``steps`` (sorted), or all of them when k is None or ≥ len."""
    steps = list(steps)
    if k is None or k >= len(steps):
        return steps
    if k < 1:
        raise ValueError(f"cannot keep {k} timesteps per trajectory; use 1 or more")
    return sorted(np.asarray(steps)[rng.choice(len(steps), size=k, replace=False)].tolist())


def subset_mean(per_step: torch.Tensor, subset: Sequence[int]) -> torch.Tensor:
    """The policy loss's per-trajectory estimator on a subset of its steps: mean of ``per_step[subset]``.
    Averaged over every k-subset it equals ``per_step.mean()`` (unbiasedness of the subsampling)."""
    return per_step[list(subset)].mean()


def step_stds(scheduler, eta: float) -> list[float]:
    """σ_k = η √((1−ᾱ_t')/(1−ᾱ_t) · (1 − ᾱ_t/ᾱ_t')) of each step of the inference grid (``diffusion.ddim``'s
    step on zeros, so the same formula), in sampling order. ``scheduler.set_timesteps`` must have been called."""
    from diffusion.ddim import ddim_step

    z = torch.zeros(1, 1)
    return [float(ddim_step(scheduler, z, int(t), z, eta, noise=z).std) for t in scheduler.timesteps.tolist()]


def trainable_steps(stds: Sequence[float], min_std: float) -> list[int]:
    """Indices of the steps with σ_k > 0 and σ_k ≥ ``min_std`` (0: every stochastic step, DPOK's)."""
    if min_std < 0:
        raise ValueError(f"--train_min_std must be ≥ 0, got {min_std}")
    return [k for k, s in enumerate(stds) if s > 0 and s >= min_std]


def epoch_minibatches(n: int, micro_batch: int, accumulation: int, epochs: int,
                      rng: np.random.Generator) -> list[list[np.ndarray]]:
    """Optimizer steps for ``epochs`` shuffled passes over ``n`` transitions.

    Each pass is a fresh permutation cut into micro-batches of ``micro_batch`` (the last may be smaller);
    every ``accumulation`` consecutive micro-batches of a pass form one optimizer step. → a list of
    optimizer steps, each a list of index arrays; every index occurs exactly ``epochs`` times.
    """
    if min(n, micro_batch, accumulation, epochs) < 1:
        raise ValueError(f"epoch_minibatches needs positive sizes, got n={n}, micro_batch={micro_batch}, "
                         f"accumulation={accumulation}, epochs={epochs}")
    steps = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        micro = [perm[s:s + micro_batch] for s in range(0, n, micro_batch)]
        steps.extend(micro[s:s + accumulation] for s in range(0, len(micro), accumulation))
    return steps
