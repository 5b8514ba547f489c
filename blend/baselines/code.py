"""CoDe (Singh et al., TMLR 2025) as the DB paper runs it (docs/method.md §6): blockwise best-of-N on the base model.

At every step i with i mod B = 0 and i < T − 1, the DDIM step from x_t is branched: N candidates
x_{t−1} = μ_t + σ_t z_c share the mean (one ε); candidate 0 uses the chain's own z, the others fresh
noise. Each candidate gets one look-ahead UNet call at t−1, whose x̂0 is decoded and scored with
Σ_i w_i r_i / s_i; the best candidate continues. Other steps are plain DDIM steps. The look-ahead ε of
the chosen candidate is not reused (as in the reference), so the cost is T + N·S UNet calls with
S = ⌈(T − 1)/B⌉ branch steps (``blend.baselines.costs``). N = 1 skips the look-ahead: plain sampling.
Rewards are used as black boxes (JPEG, VILA work).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from blend.baselines.common import WeightedReward
from blend.baselines.costs import Costs, code_branch_steps
from blend.predictor import NoisePredictor
from blend.sampler import SamplerConfig, SampleResult
from blend.spec import BlendSpec
from dbcore.seeding import branch_noise, initial_noise, noise_seed
from diffusion.bundle import ModelBundle
from diffusion.ddim import ddim_step, transition
from diffusion.guidance import BASE


@torch.no_grad()
def code_sample(bundle: ModelBundle, spec: BlendSpec, prompts: Sequence[str], seeds: Sequence[int],
                config: SamplerConfig, objective: WeightedReward, max_rows: int = 64,
                progress: bool = False) -> SampleResult:
    start = time.perf_counter()
    n_cand, block = int(spec.option("N", 20)), int(spec.option("B", 5))
    if n_cand < 1 or block < 1:
        raise ValueError(f"CoDe needs N ≥ 1 and B ≥ 1, got N = {n_cand}, B = {block}")
    n, device, dtype = len(prompts), bundle.device, bundle.dtype
    sched = bundle.scheduler
    sched.set_timesteps(config.steps)
    timesteps = sched.timesteps.tolist()
    n_steps = len(timesteps)
    branch_at = [i for i in range(n_steps - 1) if i % block == 0] if n_cand > 1 else []
    keys = list(prompts) if config.noise == "per_image" else [None] * n
    noises = [initial_noise(s, bundle.sample_shape, n_steps, prompt=key) for s, key in zip(seeds, keys)]
    x = torch.stack([xt for xt, _ in noises]).to(device, dtype) * sched.init_noise_sigma
    z = torch.stack([zz for _, zz in noises], dim=1).to(device, dtype)  # (steps, n, C, H, W)
    extra = None
    if branch_at:
        extra = torch.stack([branch_noise(noise_seed(s, key), n_cand - 1, len(branch_at), bundle.sample_shape)
                             for s, key in zip(seeds, keys)],
                            dim=1).to(device, dtype)  # (S, n, N−1, C, H, W)
    cond = bundle.encode_prompts(list(prompts))
    uncond = bundle.encode_prompts([""] * n)
    predictor = NoisePredictor(bundle, config.guidance, batched=config.batched)
    costs = [Costs() for _ in range(n)]

    for i, t in enumerate(tqdm(timesteps, desc=spec.label, disable=not progress, leave=False)):
        eps = predictor(x, t, cond, uncond, {BASE: None})[BASE]
        for c in costs:
            c.unet_forwards += 1
        step = ddim_step(sched, eps, t, x, config.eta, noise=z[i])
        if i not in branch_at:
            x = step.prev_sample
            continue
        b = branch_at.index(i)
        cand = torch.cat([step.prev_sample[:, None], transition(step.mean[:, None], step.std, extra[b])], dim=1)
        flat = cand.reshape(n * n_cand, *cand.shape[2:])  # image-major
        rep = torch.arange(n, device=cond.device).repeat_interleave(n_cand)
        t_next = timesteps[i + 1]
        scores = []
        for c0 in range(0, flat.shape[0], max(1, max_rows)):
            sl = slice(c0, c0 + max(1, max_rows))
            eps_c = predictor(flat[sl], t_next, cond[rep[sl]], uncond[rep[sl]], {BASE: None})[BASE]
            x0 = ddim_step(sched, eps_c, t_next, flat[sl], config.eta, noise=torch.zeros_like(flat[sl]))
            images = bundle.decode(x0.pred_original_sample)
            scores.append(objective(images, [prompts[int(r)] for r in rep[sl]]).float().cpu())
        best = torch.cat(scores).view(n, n_cand).argmax(dim=1)
        x = cand[torch.arange(n), best.to(cand.device)]
        for c in costs:
            c.unet_forwards += n_cand
            c.vae_decodes += n_cand
            c.reward_evals += n_cand * objective.m
    images = bundle.decode(x).cpu()
    for c in costs:
        c.vae_decodes += 1
    assert not branch_at or len(branch_at) == code_branch_steps(n_steps, block)
    out = [c.to_dict() for c in costs]
    return SampleResult(images=images, unet_evals=[c["unet_forwards"] for c in out],
                        seconds=time.perf_counter() - start, costs=out)
