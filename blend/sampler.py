"""The blended sampling loop: one batch of (prompt, seed) pairs, any :class:`BlendSpec`, any scheduler.

Blending acts on the noise prediction ε only, so it is scheduler-agnostic: each step computes the
blended, guided ε and hands it to the scheduler's own ``step`` (DDIM with η = 1 is the paper's
default; DPM-Solver++, Euler, Euler ancestral, PNDM, UniPC … work the same way). The model input
is scaled with ``scheduler.scale_model_input`` as diffusers' pipelines do.

For each (prompt, seed) the initial sample x_T and the per-step noise z_1..z_T are drawn from a
generator seeded with ``seed`` alone, before sampling starts, so every method sees the same noise
for the same seed and images can be compared one by one (the paper's ``run_DB.py`` also reseeds
with the seed index per prompt). Schedulers that take explicit noise (``variance_noise``: DDIM,
DPM-Solver SDE) get z_i; those that only take a ``generator`` (Euler ancestral, DDPM …) get one
generator per image, seeded from its seed, so the pairing holds for them too. DB-MPA-LS draws its
adapter choices from a separate generator, so the choice never shifts the noise stream.

Each image (row) may have its own :class:`BlendSpec` (per-image weights: one batch serves several
trade-offs), and a spec may carry a per-step weight schedule w(p) (``blend.schedule``).
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from blend.eps import BASE, blend_eps, combine
from blend.predictor import NoisePredictor
from blend.schedule import step_progress
from blend.spec import BlendSpec
from diffusion.adapters import activate
from diffusion.bundle import ModelBundle
from diffusion.lora import adapter_names
from diffusion_blend.logging import get_logger

log = get_logger("sampler")


@dataclass(frozen=True)
class SamplerConfig:
    """Sampler settings (η applies to DDIM-type schedulers); the defaults are the paper's (50 steps, η = 1, guidance 7.5)."""

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
    specs: list[dict] | None = None  # per image: its spec (weights, schedule) when images differ or a schedule ran


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


def step_generators(seeds: Sequence[int], device: str | torch.device = "cpu") -> list[torch.Generator]:
    """One generator per image for schedulers that draw their step noise themselves (seeded from the seed)."""
    return [torch.Generator(device).manual_seed((int(seed) * 1_000_003 + 0x5354) % (2**63)) for seed in seeds]


def _accepts(fn, name: str) -> bool:
    return name in inspect.signature(fn).parameters


def encode_for_models(bundle: ModelBundle, prompts: Sequence[str], models: Sequence[str]):
    """Prompt embeddings (N, L, D): one tensor, or ``{model: tensor}`` when the text encoder holds LoRA parts.

    Each blended model encodes the prompt with its own text-encoder state: the adapter's text-encoder
    LoRA when it has one, the pretrained text encoder otherwise (``BASE``, full-UNet members, UNet-only
    adapters). The text encoder's adapter flags are restored afterwards.
    """
    te_adapters = set(adapter_names(bundle.text_encoder))
    if not te_adapters:
        return bundle.encode_prompts(list(prompts))
    from peft.tuners.lora import LoraLayer

    layers = [m for m in bundle.text_encoder.modules() if isinstance(m, LoraLayer)]
    saved = [(layer._disable_adapters, list(layer._active_adapter)) for layer in layers]
    out: dict[str, torch.Tensor] = {}
    try:
        by_state: dict[str, torch.Tensor] = {}
        for model in models:
            state = model if model in te_adapters else BASE
            if state not in by_state:
                activate(bundle.text_encoder, state)
                by_state[state] = bundle.encode_prompts(list(prompts))
            out[model] = by_state[state]
    finally:
        for layer, (disabled, active) in zip(layers, saved):
            layer._disable_adapters, layer._active_adapter = disabled, active
    return out


class _RowPlan:
    """Per-row blend rules, evaluated per step: coefficients {model: c} for each row at step i."""

    def __init__(self, specs: Sequence[BlendSpec], seeds: Sequence[int] | None, n_steps: int) -> None:
        self.specs, self.n_steps = list(specs), n_steps
        self._cache: dict[tuple[int, int], dict[str, float]] = {}
        self.choices: list[list[str]] | None = None
        if any(s.is_stochastic_choice for s in specs):
            if not all(s.is_stochastic_choice for s in specs):
                raise ValueError("DB-MPA-LS cannot share a batch with other methods; sample it separately")
            if seeds is None:
                raise ValueError("DB-MPA-LS needs one seed per image to draw its adapter choices")
            self.choices = [self._draw(spec, seed) for spec, seed in zip(specs, seeds)]
        for s in specs:
            if s.schedule is not None and s.is_soup:
                raise ValueError("a weight schedule needs a per-step ε blend; a soup merges the weights once. "
                                 "Use method 'mpa' (or 'kla') with a schedule")

    def _draw(self, spec: BlendSpec, seed: int) -> list[str]:
        if spec.schedule is None:
            return draw_adapter_choices(seed, spec.adapters, spec.weights, self.n_steps)
        # step i uses the i-th uniform of the seed's stream against w(p_i); a constant schedule draws as fixed w
        return [draw_adapter_choices(seed, spec.adapters, self.spec_at(spec, i).weights, self.n_steps)[i]
                for i in range(self.n_steps)]

    def spec_at(self, spec: BlendSpec, i: int) -> BlendSpec:
        if spec.schedule is None:
            return spec
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a λ warning was given once for the spec itself
            return spec.with_weights(spec.schedule(step_progress(i, self.n_steps)))

    def coefficients(self, r: int, i: int) -> dict[str, float]:
        if self.choices is not None:
            return {self.choices[r][i]: 1.0}
        spec = self.specs[r]
        key = (id(spec), i if spec.schedule is not None else -1)
        if key not in self._cache:
            self._cache[key] = self.spec_at(spec, i).coefficients()
        return self._cache[key]

    def models(self) -> list[str]:
        """Every model that some row may need at some step (for the prompt encodings)."""
        names: dict[str, None] = {}
        for r in range(len(self.specs)):
            for i in range(self.n_steps):
                names.update(dict.fromkeys(self.coefficients(r, i)))
        return list(names)


def denoise(bundle: ModelBundle, specs: Sequence[BlendSpec], x: torch.Tensor, cond, uncond, scheduler,
            config: SamplerConfig, *, seeds: Sequence[int] | None = None, noise: torch.Tensor | None = None,
            generator=None, progress: bool = False, label: str = "") -> tuple[torch.Tensor, list[int], list | None]:
    """Run the blended reverse process from x_T to x_0 with ``scheduler.step``; → (x_0, evals per row, choices).

    Args:
        specs: one spec per row of ``x`` (rows with equal specs are blended together).
        x: x_T already scaled by ``scheduler.init_noise_sigma``, (N, C, H, W).
        cond, uncond: prompt / negative-prompt embeddings (N, L, D), or ``{model: tensor}``.
        scheduler: any diffusers scheduler, after ``set_timesteps``.
        noise: pre-drawn step noise (steps, N, C, H, W), passed as ``variance_noise`` where the scheduler takes it.
        generator: what the scheduler's ``step`` gets as ``generator`` (a generator or one per row).
    """
    timesteps = scheduler.timesteps.tolist()
    n = x.shape[0]
    plan = _RowPlan(specs, seeds, len(timesteps))
    predictor = NoisePredictor(bundle, config.guidance, batched=config.batched)
    step_kwargs = {}
    if _accepts(scheduler.step, "eta"):
        step_kwargs["eta"] = config.eta
    elif config.eta != 0:
        log.info("%s has no η: eta = %g is not used (it applies to DDIM)", type(scheduler).__name__, config.eta)
    takes_noise = _accepts(scheduler.step, "variance_noise") and noise is not None
    if not takes_noise and _accepts(scheduler.step, "generator") and generator is not None:
        step_kwargs["generator"] = generator
    evals = [0] * n
    for i, t in enumerate(tqdm(timesteps, desc=label, disable=not progress, leave=False)):
        coeffs = [plan.coefficients(r, i) for r in range(n)]
        groups: dict[tuple, list[int]] = {}
        for r, c in enumerate(coeffs):
            groups.setdefault(tuple(c.items()), []).append(r)
        rows_by_model: dict[str, list[int]] = {}
        for r, c in enumerate(coeffs):
            for model in c:
                rows_by_model.setdefault(model, []).append(r)
        x_in = scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x  # flow: none
        eps_by_model = predictor(x_in, t, cond, uncond, rows_by_model, route=plan.choices is not None)
        if len(groups) == 1:
            eps = combine(eps_by_model, coeffs[0])
        else:
            eps = torch.empty_like(x)
            pos = {m: {r: j for j, r in enumerate(rows)} for m, rows in rows_by_model.items()}
            for key, rows in groups.items():
                parts = [eps_by_model[m][[pos[m][r] for r in rows]] for m, _ in key]
                eps[rows] = blend_eps(parts, [c for _, c in key])
        evals = [e + len(c) for e, c in zip(evals, coeffs)]
        if takes_noise:
            step_kwargs["variance_noise"] = noise[i]
        x = scheduler.step(eps, t, x, **step_kwargs, return_dict=False)[0]
    return x, evals, plan.choices


def _row_specs(spec: BlendSpec | Sequence[BlendSpec], n: int) -> list[BlendSpec]:
    if isinstance(spec, BlendSpec):
        return [spec] * n
    specs = list(spec)
    if len(specs) != n:
        raise ValueError(f"{len(specs)} specs for {n} images: give one spec, or one per (prompt, seed)")
    return specs


@torch.no_grad()
def sample(bundle: ModelBundle, spec: BlendSpec | Sequence[BlendSpec], prompts: Sequence[str], seeds: Sequence[int],
           config: SamplerConfig = SamplerConfig(), progress: bool = False, *, scheduler=None,
           negative_prompts: Sequence[str] | None = None, sample_shape: Sequence[int] | None = None,
           decode: bool = True) -> SampleResult:
    """Sample one image per (prompt, seed) with the method ``spec`` (or one spec per image).

    ``scheduler`` defaults to the bundle's (DDIM); any diffusers scheduler works. ``negative_prompts``
    replaces the empty unconditional prompt of classifier-free guidance. ``sample_shape`` (C, H, W)
    overrides the UNet's native sample size; ``decode=False`` returns the final latents as ``images``. Soup methods need their merged adapter in the UNet first
    (``blend.soup.ensure_soup_adapter``).
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    n, device, dtype = len(prompts), bundle.device, bundle.dtype
    specs = _row_specs(spec, n)
    if negative_prompts is not None and len(negative_prompts) != n:
        raise ValueError(f"{len(negative_prompts)} negative prompts for {n} prompts")
    start = time.perf_counter()
    sched = scheduler if scheduler is not None else bundle.scheduler
    sched.set_timesteps(config.steps)
    n_steps = len(sched.timesteps)
    shape = tuple(sample_shape) if sample_shape is not None else bundle.sample_shape

    noises = [initial_noise(s, shape, n_steps) for s in seeds]
    x = torch.stack([xt for xt, _ in noises]).to(device, dtype) * getattr(sched, "init_noise_sigma", 1.0)  # flow: 1
    z = torch.stack([zz for _, zz in noises], dim=1).to(device, dtype)  # (steps, N, C, H, W)
    models = _RowPlan(specs, seeds, n_steps).models()
    cond = encode_for_models(bundle, prompts, models)
    uncond = encode_for_models(bundle, list(negative_prompts) if negative_prompts is not None else [""] * n, models)
    x, evals, choices = denoise(bundle, specs, x, cond, uncond, sched, config, seeds=seeds, noise=z,
                                generator=step_generators(seeds, device), progress=progress, label=specs[0].label)
    images = bundle.decode(x).cpu() if decode else x
    distinct = len({id(s) for s in specs}) > 1 or specs[0].schedule is not None
    return SampleResult(images=images, unet_evals=evals, seconds=time.perf_counter() - start, choices=choices,
                        specs=[s.to_dict() for s in specs] if distinct else None)
