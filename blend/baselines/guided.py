"""Reward-gradient guidance (RGG) and its K-particle version, DAS-style SMC (docs/method.md §6, §8).

At step i from x_t (η = 1 DDIM, guided ε, x̂0 = Tweedie's estimate through the UNet):

    g_t      = Σ_j w_j N(∇_{x_t} r_j(D(x̂0(x_t))) / s_j)      N = per-pixel normalisation over channels
    λ_i      = min((1 + γ)^i − 1, 1)                          (exponential tempering, i = 0 first)
    x_{t−1}  = μ_t + σ_t z + λ_i σ_t² g_t                      (the reference's "DDIM step + variance·guidance")

Each reward's gradient is one vector-Jacobian product through decoder, UNet and ``ddim_step``'s x̂0
(one UNet backward per reward per step). With option ``G`` only the last G steps are guided (the earlier ones are
plain DDIM steps, g = 0; λ_i is small there anyway); absent, every step is. ``rgg`` is one chain per image. ``smc`` runs K particles per
image (particle 0 on the plain chain's noise, the others on derived seeds) with the twist
ψ_t = λ_i · Σ_j w_j r_j(x̂0)/s_j / α (α = kl_coeff), the incremental weight
log p(x_{t−1}|x_t) − log q(x_{t−1}|x_t) + ψ_{t−1} − ψ_t (Gaussian densities summed over all elements;
ψ at x_0 is the untempered reward of the decoded sample), multinomial resampling of a prompt's
particles whenever their effective sample size falls below ``ess``·K, and the returned image drawn from
the final weights. With K = 1 (or ``ess`` = 0 and one particle) SMC is RGG bit for bit.
The rewards must be differentiable (``blend.baselines.common.check_differentiable``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from blend.baselines.common import WeightedReward, frozen, tempering
from blend.baselines.costs import Costs
from blend.predictor import NoisePredictor
from blend.sampler import SamplerConfig, SampleResult
from blend.spec import BlendSpec
from dbcore.seeding import derive_seed, initial_noise, resample_rng
from diffusion.bundle import ModelBundle
from diffusion.ddim import ddim_step, transition
from diffusion.guidance import BASE

KL_COEFF, GAMMA, ESS = 0.1, 0.024, 0.5  # the DB reference's RGG settings; DAS's resampling threshold


def guidance_step(bundle: ModelBundle, predictor: NoisePredictor, objective: WeightedReward, x: torch.Tensor,
                  t: int, i: int, cond, uncond, prompts: Sequence[str], z: torch.Tensor, eta: float):
    """One guided step's ingredients: (DDIM step of x, g_t, Σ w r / s at x̂0 (detached)), gradients to x only."""
    with torch.enable_grad(), frozen(bundle.unet, bundle.vae, bundle.text_encoder):
        xg = x.detach().requires_grad_(True)
        eps = predictor(xg, t, cond, uncond, {BASE: None})[BASE]
        step = ddim_step(bundle.scheduler, eps, t, xg, eta, noise=z)
        images = bundle.decode(step.pred_original_sample)
        values = objective.values(images, prompts)
        g = torch.zeros_like(x)
        for j, (w, v) in enumerate(zip(objective.weights, values)):
            (grad,) = torch.autograd.grad(v.sum(), xg, retain_graph=j < objective.m - 1)
            g = g + w * F.normalize(grad.detach(), dim=1)
    value = sum(w * v.detach() for w, v in zip(objective.weights, values))
    step.prev_sample, step.mean = step.prev_sample.detach(), step.mean.detach()
    step.std = step.std.detach() if isinstance(step.std, torch.Tensor) else step.std
    return step, g, value


def unguided_step(bundle: ModelBundle, predictor: NoisePredictor, objective: WeightedReward | None, x: torch.Tensor,
                  t: int, cond, uncond, prompts: Sequence[str], z: torch.Tensor, eta: float):
    """A step before the guided ones: (DDIM step of x, g = 0, Σ w r / s at x̂0 or None when ``objective`` is None).
    SMC still needs the twist's value (a decode and m reward evaluations, no backward); RGG needs nothing."""
    eps = predictor(x, t, cond, uncond, {BASE: None})[BASE]
    step = ddim_step(bundle.scheduler, eps, t, x, eta, noise=z)
    value = None if objective is None else objective(bundle.decode(step.pred_original_sample), prompts)
    return step, torch.zeros_like(x), value


def _ess(logw: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logw, dim=-1)
    return 1.0 / (p**2).sum(dim=-1)


@torch.no_grad()
def guided_sample(bundle: ModelBundle, spec: BlendSpec, prompts: Sequence[str], seeds: Sequence[int],
                  config: SamplerConfig, objective: WeightedReward, max_rows: int = 64,
                  progress: bool = False) -> SampleResult:
    """RGG (one chain) or SMC with K = ``spec.option('K')`` particles, one image per (prompt, seed)."""
    start = time.perf_counter()
    k = spec.info.particles(spec)  # blend.methods.guided: 1 for RGG
    if k < 1:
        raise ValueError(f"SMC needs K ≥ 1 particles, got {k}")
    per = max(1, max_rows // k)
    images, costs = [], []
    for c0 in range(0, len(prompts), per):
        im, co = _guided_group(bundle, spec, list(prompts[c0:c0 + per]), list(seeds[c0:c0 + per]), config,
                               objective, k, progress)
        images.append(im)
        costs += co
    return SampleResult(images=torch.cat(images), unet_evals=[c["unet_forwards"] for c in costs],
                        seconds=time.perf_counter() - start, costs=costs)


def _guided_group(bundle, spec, prompts, seeds, config, objective, k, progress):
    kl, gamma = float(spec.option("kl", KL_COEFF)), float(spec.option("gamma", GAMMA))
    ess_thr = float(spec.option("ess", ESS))
    n, device, dtype = len(prompts), bundle.device, bundle.dtype
    sched = bundle.scheduler
    sched.set_timesteps(config.steps)
    timesteps = sched.timesteps.tolist()
    n_steps = len(timesteps)
    keys = prompts if config.noise == "per_image" else [None] * n
    noises = [initial_noise(derive_seed(s, p), bundle.sample_shape, n_steps, prompt=key)
              for s, key in zip(seeds, keys) for p in range(k)]
    x = torch.stack([xt for xt, _ in noises]).to(device, dtype) * sched.init_noise_sigma  # (n·K, …) image-major
    z = torch.stack([zz for _, zz in noises], dim=1).to(device, dtype)
    rows_prompts = [p for p in prompts for _ in range(k)]
    cond = bundle.encode_prompts(rows_prompts)
    uncond = bundle.encode_prompts([""] * len(rows_prompts))
    predictor = NoisePredictor(bundle, config.guidance, batched=config.batched)
    m = objective.m
    smc = spec.info.resamples
    first_guided = n_steps - spec.info.guided_steps(spec, n_steps)  # guided on steps i ≥ first_guided
    logw = torch.zeros(n, k, dtype=torch.float64)
    prev_twist = torch.zeros(n * k, dtype=torch.float64)
    log_ratio = torch.zeros(n * k, dtype=torch.float64)
    rngs = [resample_rng(s) for s in seeds]

    for i, t in enumerate(tqdm(timesteps, desc=spec.label, disable=not progress, leave=False)):
        if i >= first_guided:
            step, g, value = guidance_step(bundle, predictor, objective, x, t, i, cond, uncond, rows_prompts, z[i],
                                           config.eta)
        else:
            step, g, value = unguided_step(bundle, predictor, objective if smc else None, x, t, cond, uncond,
                                           rows_prompts, z[i], config.eta)
        lam = tempering(i, gamma)
        mean, prev = step.mean, step.prev_sample
        if smc:
            twist = lam * value.double().cpu() / kl
            logw += (log_ratio + twist - prev_twist).view(n, k)
            if k > 1:
                ess = _ess(logw)
                idx = torch.arange(n * k)
                for j in range(n):
                    if ess[j] < ess_thr * k:
                        p = torch.softmax(logw[j], 0).numpy()
                        pick = rngs[j].choice(k, size=k, p=p / p.sum())
                        idx[j * k:(j + 1) * k] = torch.as_tensor(j * k + pick)
                        logw[j] = 0.0
                if not torch.equal(idx, torch.arange(n * k)):
                    dev_idx = idx.to(device)
                    mean, g, twist = mean[dev_idx], g[dev_idx], twist[idx]
                    prev = transition(mean, step.std, z[i])
            prev_twist = twist
        x = prev + lam * step.std**2 * g
        if smc:
            d = (lam * step.std**2 * g).double()
            noise_part = (step.std * z[i]).double()
            var = (step.std.double() if isinstance(step.std, torch.Tensor) else torch.tensor(step.std)) ** 2
            # log N(x; μ, σ²) − log N(x; μ + d, σ²) with x − μ = σ z + d; a deterministic step (σ = 0, e.g. the
            # last step with set_alpha_to_one) has d = 0 and ratio 0
            ratio = -(2 * noise_part * d + d**2) / (2 * var) if float(var) > 0 else torch.zeros_like(d)
            log_ratio = ratio.flatten(1).sum(1).cpu()
    images = bundle.decode(x)
    out_idx = torch.arange(n) * k
    reward_evals_final = 0
    if smc:
        final = objective(images, rows_prompts).double().cpu()
        reward_evals_final = m
        logw += (log_ratio + final / kl - prev_twist).view(n, k)
        if k > 1:
            for j in range(n):
                p = torch.softmax(logw[j], 0).numpy()
                out_idx[j] = j * k + int(rngs[j].choice(k, p=p / p.sum()))
    chosen = images[out_idx.to(images.device)].float().cpu()
    n_guided = n_steps - first_guided
    looked = n_steps if smc else n_guided  # steps that decode x̂0 and evaluate the rewards there
    per_image = Costs(unet_forwards=k * n_steps, unet_backwards=k * m * n_guided, vae_decodes=k * (looked + 1),
                      reward_evals=k * (m * looked + reward_evals_final), reward_grads=k * m * n_guided)
    return chosen, [per_image.to_dict() for _ in range(n)]
