"""``--algorithm draft``: DRaFT-K / AlignProp-style fine-tuning of the same LoRA (docs/toy_world.md, probe 6).

Per optimizer step, ``gradient_accumulation_steps`` rollouts of ``g_batch_size × num_samples``
images are sampled with the current LoRA. The first T − K steps run without a graph; the last K keep
it, with their noise fixed (the reparameterisation), so a differentiable reward of the decoded image
back-propagates into the LoRA:

    loss = −reward_weight · mean(r(x0) / s) + kl_weight · mean over the K steps of mean((ε̂_θ − ε̂_pre)²)

ε̂ are guided, ε̂_pre comes from the same UNet with its adapter disabled, and s is 1, the reward's
std over the first rollout (``--reward_norm base_std``; the LoRA starts at the base model) or a
running std (``running_std``). Policy gradient needs 10⁴–10⁵ samples; this learns on a CPU in
minutes, but only for differentiable rewards.
"""

from __future__ import annotations

import contextlib
import time

import torch

from diffusion.adapters import activate
from diffusion.ddim import ddim_step
from dpok.losses import kl_penalty
from dpok.rollout import draw_noise, guided_eps

RUNNING_MOMENTUM = 0.9


def check_differentiable(trainer) -> None:
    bad = [n for n, d in trainer.reward.differentiable.items() if not d]
    if bad:
        raise ValueError(f"--algorithm draft back-propagates through the reward, but {bad} is not differentiable "
                         f"(e.g. JPEG size); use --algorithm dpok for it, or a differentiable reward/surrogate")


def reward_scale(trainer, r: torch.Tensor) -> float:
    """s of the normalisation; updates its state (kept in the checkpoint)."""
    mode, extra = trainer.cfg.reward_norm, trainer.counters.extra
    if mode == "none":
        return 1.0
    std = float(trainer.acc.gather(r.detach().float().contiguous()).std(unbiased=False).item())
    if mode == "base_std":
        if "reward_std" not in extra:
            extra["reward_std"] = max(std, 1e-8)
        return extra["reward_std"]
    prev = extra.get("reward_std")
    extra["reward_std"] = max(std if prev is None else RUNNING_MOMENTUM * prev + (1 - RUNNING_MOMENTUM) * std, 1e-8)
    return extra["reward_std"]


def draft_rollout_loss(trainer, it: int, step: int, micro: int) -> dict:
    cfg, bundle, unet = trainer.cfg, trainer.bundle, trainer.unet
    device, dtype, sched = trainer.acc.device, bundle.dtype, bundle.scheduler
    prompts = trainer.prompts_for(it, step * cfg.gradient_accumulation_steps + micro)
    n = len(prompts)
    x_t, z = draw_noise(trainer.generator(it, 0xD4AF, step, micro), n, bundle.sample_shape, cfg.num_inference_steps)
    cond, uncond = trainer.cache.hidden(prompts), trainer.cache.hidden([""] * n)
    timesteps = trainer.timesteps.tolist()
    first_grad = len(timesteps) - cfg.draft_k
    x = x_t.to(device, dtype) * sched.init_noise_sigma
    activate(unet, "dpok")
    with torch.no_grad(), trainer.autocast():
        for i in range(first_grad):
            eps = guided_eps(unet, x, timesteps[i], cond, uncond, cfg.guidance_scale)
            x = ddim_step(sched, eps.float(), timesteps[i], x.float(), cfg.eta, noise=z[i].to(device)).prev_sample
            x = x.to(dtype)
    kl = torch.zeros((), device=device)
    for i in range(first_grad, len(timesteps)):
        t = timesteps[i]
        with torch.no_grad():
            eps_pre = trainer.reference_eps(x, t, cond, uncond)
        with trainer.autocast():
            eps = guided_eps(trainer.train_unet, x, t, cond, uncond, cfg.guidance_scale)
        kl = kl + kl_penalty(eps, eps_pre) / cfg.draft_k
        x = ddim_step(sched, eps.float(), t, x.float(), cfg.eta, noise=z[i].to(device)).prev_sample
    with trainer.autocast():
        images = bundle.decode(x.to(dtype))
    r, parts = trainer.reward(images, prompts)
    scale = reward_scale(trainer, r)
    use_kl = it + 1 > cfg.kl_warmup
    reward_term = -cfg.reward_weight * (r / scale).mean()
    loss = reward_term + (cfg.kl_weight * kl if use_kl else 0.0 * kl)
    return {"loss": loss, "kl": kl, "policy_loss": reward_term, "reward": r.detach().cpu(),
            "parts": {k: v.detach().cpu() for k, v in parts.items()}, "scale": scale, "n": n}


def draft_iteration(trainer, it: int) -> dict:
    cfg = trainer.cfg
    check_differentiable(trainer)
    t0 = time.perf_counter()
    sums = {"loss": 0.0, "kl": 0.0, "policy_loss": 0.0, "grad_norm": 0.0}
    rewards, parts, n_images = [], [], 0
    n_micro = cfg.p_step * cfg.gradient_accumulation_steps
    for s in range(cfg.p_step):
        trainer.optimizer.zero_grad()
        for a in range(cfg.gradient_accumulation_steps):
            last = a == cfg.gradient_accumulation_steps - 1
            with (contextlib.nullcontext() if last else trainer.acc.no_sync(trainer.train_unet)):
                out = draft_rollout_loss(trainer, it, s, a)
                trainer.acc.backward(out["loss"] / cfg.gradient_accumulation_steps)
            for k in ("loss", "kl", "policy_loss"):
                sums[k] += out[k].item() / n_micro
            rewards.append(out["reward"])
            parts.append(out["parts"])
            n_images += out["n"]
        norm = trainer.acc.clip_grad_norm_(trainer.lora_params, cfg.clip_norm)
        sums["grad_norm"] += float(norm) / cfg.p_step
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        trainer.counters.optimizer_steps += 1
    rollouts = [{"reward": r, "parts": p} for r, p in zip(rewards, parts)]
    metrics = trainer.reward_metrics(rollouts)
    metrics.update(sums)
    n = n_images * trainer.world
    trainer.counters.samples_seen += n
    dt = time.perf_counter() - t0
    metrics.update({"samples_per_second": n / dt, "iteration_seconds": dt, "reward_scale": out["scale"],
                    "lr": trainer.lr_scheduler.get_last_lr()[0], "samples_seen": trainer.counters.samples_seen})
    return metrics
