"""The blended DDIM sampling loop: one batch of (prompt, seed) pairs, any :class:`BlendSpec`.

For each (prompt, seed) the initial sample x_T and the per-step noise z_1..z_T are drawn from a
generator seeded with ``seed`` alone, before sampling starts, so every method sees the same noise
for the same seed and images can be compared one by one (the paper's ``run_DB.py`` also reseeds
with the seed index per prompt). DB-MPA-LS draws its adapter choices from a separate generator,
so the choice never shifts the noise stream.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from blend.eps import combine
from blend.predictor import NoisePredictor
from blend.spec import BlendSpec
from diffusion.bundle import ModelBundle
from diffusion.ddim import ddim_step


@dataclass(frozen=True)
class SamplerConfig:
    """DDIM settings; the defaults are the paper's (50 steps, η = 1, guidance 7.5)."""

    steps: int = 50
    guidance: float = 7.5
    eta: float = 1.0
    batched: bool = False  # one routed UNet call for all models (see blend.predictor)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {self.steps}")
        if self.eta < 0:
            raise ValueError(f"eta must be ≥ 0, got {self.eta}")


@dataclass
class SampleResult:
    images: torch.Tensor  # (N, 3, H, W) in [0, 1], float32, CPU
    unet_evals: list[int]  # per image: model evaluations (CFG pair = 1), summed over steps
    seconds: float  # wall time of the whole batch
    choices: list[list[str]] | None = None  # DB-MPA-LS: the model used at each step, per image
    costs: list[dict[str, int]] | None = None  # per image: blend.baselines.costs.COST_FIELDS (None: plain sampling)


def initial_noise(seed: int, shape: Sequence[int], steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x_T (C, H, W) and the step noises z (steps, C, H, W), both from one CPU generator seeded by ``seed``."""
    gen = torch.Generator("cpu").manual_seed(int(seed))
    x_t = torch.randn(tuple(shape), generator=gen)
    z = torch.randn((steps, *shape), generator=gen)
    return x_t, z


def draw_adapter_choices(seed: int, adapters: Sequence[str], weights: Sequence[float], steps: int) -> list[str]:
    """DB-MPA-LS: the adapter used at each step, adapter i with probability w_i, independently per step."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4C53]))  # "LS"
    cum = np.cumsum(np.asarray(weights, dtype=np.float64))
    cum /= cum[-1]
    u = rng.random(steps)
    return [adapters[int(np.searchsorted(cum, ui, side="right"))] for ui in u]


@torch.no_grad()
def sample(bundle: ModelBundle, spec: BlendSpec, prompts: Sequence[str], seeds: Sequence[int],
           config: SamplerConfig = SamplerConfig(), progress: bool = False) -> SampleResult:
    """Sample one image per (prompt, seed) with the method ``spec``.

    Soup methods need their merged adapter in the UNet first (``blend.soup.ensure_soup_adapter``).
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    n, device, dtype = len(prompts), bundle.device, bundle.dtype
    start = time.perf_counter()
    sched = bundle.scheduler
    sched.set_timesteps(config.steps)
    timesteps = sched.timesteps.tolist()

    noises = [initial_noise(s, bundle.sample_shape, len(timesteps)) for s in seeds]
    x = torch.stack([xt for xt, _ in noises]).to(device, dtype) * sched.init_noise_sigma
    z = torch.stack([zz for _, zz in noises], dim=1).to(device, dtype)  # (steps, N, C, H, W)
    cond = bundle.encode_prompts(list(prompts))
    uncond = bundle.encode_prompts([""] * n)
    predictor = NoisePredictor(bundle, config.guidance, batched=config.batched)

    choices = None
    if spec.is_stochastic_choice:
        choices = [draw_adapter_choices(s, spec.adapters, spec.weights, len(timesteps)) for s in seeds]
    else:
        coeffs = spec.coefficients()
    evals = [0] * n

    for i, t in enumerate(tqdm(timesteps, desc=spec.label, disable=not progress, leave=False)):
        if choices is None:
            eps_by_model = predictor(x, t, cond, uncond, {m: None for m in coeffs})
            eps = combine(eps_by_model, coeffs)
            evals = [e + len(coeffs) for e in evals]
        else:
            rows: dict[str, list[int]] = {}
            for r, per in enumerate(choices):
                rows.setdefault(per[i], []).append(r)
            eps_by_model = predictor(x, t, cond, uncond, rows, route=True)  # one call whatever the draws
            if len(rows) == 1:
                eps = next(iter(eps_by_model.values()))
            else:
                eps = torch.empty_like(x)
                for model, idx in rows.items():
                    eps[idx] = eps_by_model[model]
            evals = [e + 1 for e in evals]
        x = ddim_step(sched, eps, t, x, config.eta, noise=z[i]).prev_sample

    images = bundle.decode(x).cpu()
    return SampleResult(images=images, unet_evals=evals, seconds=time.perf_counter() - start, choices=choices)
