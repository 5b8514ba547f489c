"""The blended DDIM sampling loop: one batch of (prompt, seed) pairs, any :class:`BlendSpec`.

Noise design (``SamplerConfig.noise``). The initial sample x_T and the per-step noise z_1..z_T of an
image are drawn, before sampling starts, from a CPU generator keyed by

* ``"per_image"`` (default): the pair (prompt text, seed). Every image has its own noise, so images of
  different prompts are independent, while every method still gets the same noise for the same
  (prompt, seed) and can be compared with the others image by image;
* ``"per_seed"``: the seed alone, as the paper's ``run_DB.py`` does (it reseeds with the seed index for
  every prompt). All prompts of one seed then share x_T and every z_t, so their images are correlated
  and a standard error must treat the seed as the unit (``blend.stats``).

DB-MPA-LS choices (``SamplerConfig.ls_draw``) come from a generator separate from the noise, so a
choice never shifts the noise stream:

* ``"per_image"`` (default): one adapter per step and image, keyed like the noise by (prompt, seed);
  the process of the paper's Prop. 2, sampled independently for every image;
* ``"per_batch_step"``: the official pipeline's behaviour, one draw per step that selects the adapter
  for the whole batch (keyed by the batch's seeds; run_DB's batch of one image per call makes it
  depend on the seed alone).
"""

from __future__ import annotations

import hashlib
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

NOISE_DESIGNS = ("per_image", "per_seed")
LS_DRAWS = ("per_image", "per_batch_step")
_LS_TAG = 0x4C53  # "LS": keeps the adapter draws apart from the noise stream


def prompt_key(prompt: str) -> tuple[int, int]:
    """A stable 64-bit key of the prompt text (two 32-bit words; the same on every machine and run)."""
    h = hashlib.sha256(prompt.encode("utf-8")).digest()
    return int.from_bytes(h[:4], "little"), int.from_bytes(h[4:8], "little")


def noise_seed(seed: int, prompt: str | None = None) -> int:
    """The generator seed of an image: ``seed`` itself (per-seed design) or a hash of (prompt, seed) (per image)."""
    if prompt is None:
        return int(seed)
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *prompt_key(prompt)]).generate_state(2)
    return int(state[0]) | (int(state[1]) << 32)


@dataclass(frozen=True)
class SamplerConfig:
    """DDIM settings; the defaults are the paper's (50 steps, η = 1, guidance 7.5)."""

    steps: int = 50
    guidance: float = 7.5
    eta: float = 1.0
    batched: bool = False  # one routed UNet call for all models (see blend.predictor)
    noise: str = "per_image"  # "per_image": x_T and z keyed by (prompt, seed); "per_seed": by seed (paper)
    ls_draw: str = "per_image"  # DB-MPA-LS: "per_image" or "per_batch_step" (one draw per step for the batch)

    def __post_init__(self) -> None:
        if self.noise not in NOISE_DESIGNS:
            raise ValueError(f"noise must be one of {NOISE_DESIGNS}, got {self.noise!r}")
        if self.ls_draw not in LS_DRAWS:
            raise ValueError(f"ls_draw must be one of {LS_DRAWS}, got {self.ls_draw!r}")
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


def initial_noise(seed: int, shape: Sequence[int], steps: int,
                  prompt: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x_T (C, H, W) and the step noises z (steps, C, H, W) from one CPU generator.

    The generator is seeded by ``seed`` alone when ``prompt`` is None (the paper's per-seed sharing) and
    by (prompt, seed) otherwise (``noise_seed``), so each (prompt, seed) gets its own noise.
    """
    gen = torch.Generator("cpu").manual_seed(noise_seed(seed, prompt))
    x_t = torch.randn(tuple(shape), generator=gen)
    z = torch.randn((steps, *shape), generator=gen)
    return x_t, z


def draw_adapter_choices(seed: int | Sequence[int], adapters: Sequence[str], weights: Sequence[float], steps: int,
                         prompt: str | None = None) -> list[str]:
    """DB-MPA-LS: the adapter used at each step, adapter i with probability w_i, independently per step.

    The draws are keyed by (prompt, seed) (one sequence per image), or by the seed(s) alone when
    ``prompt`` is None; a sequence of seeds keys one draw sequence for a whole batch (``per_batch_step``).
    """
    seeds = [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    words = [s & 0xFFFFFFFF for s in seeds] + ([*prompt_key(prompt)] if prompt is not None else [])
    rng = np.random.default_rng(np.random.SeedSequence([*words, _LS_TAG]))
    cum = np.cumsum(np.asarray(weights, dtype=np.float64))
    cum /= cum[-1]
    u = rng.random(steps)
    return [adapters[min(int(np.searchsorted(cum, ui, side="right")), len(adapters) - 1)] for ui in u]


def adapter_choices(spec: BlendSpec, prompts: Sequence[str], seeds: Sequence[int], steps: int,
                    mode: str = "per_image") -> list[list[str]]:
    """DB-MPA-LS choices for a batch, one list per image: independent per (prompt, seed), or one per-step
    sequence shared by the whole batch (``mode="per_batch_step"``, the official pipeline)."""
    if mode == "per_batch_step":
        shared = draw_adapter_choices(list(seeds), spec.adapters, spec.weights, steps)
        return [list(shared) for _ in seeds]
    if mode != "per_image":
        raise ValueError(f"ls_draw must be one of {LS_DRAWS}, got {mode!r}")
    return [draw_adapter_choices(s, spec.adapters, spec.weights, steps, prompt=p) for p, s in zip(prompts, seeds)]


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

    per_image = config.noise == "per_image"
    noises = [initial_noise(s, bundle.sample_shape, len(timesteps), prompt=p if per_image else None)
              for p, s in zip(prompts, seeds)]
    x = torch.stack([xt for xt, _ in noises]).to(device, dtype) * sched.init_noise_sigma
    z = torch.stack([zz for _, zz in noises], dim=1).to(device, dtype)  # (steps, N, C, H, W)
    cond = bundle.encode_prompts(list(prompts))
    uncond = bundle.encode_prompts([""] * n)
    predictor = NoisePredictor(bundle, config.guidance, batched=config.batched)

    choices = None
    if spec.is_stochastic_choice:
        choices = adapter_choices(spec, prompts, seeds, len(timesteps), config.ls_draw)
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
