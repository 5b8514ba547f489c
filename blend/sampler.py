"""The blended sampling loop: one batch of (prompt, seed) pairs, any :class:`BlendSpec`, any scheduler.

Blending acts on the noise prediction ε only, so it is scheduler-agnostic: each step computes the
blended, guided ε and hands it to the scheduler's own ``step`` (DDIM with η = 1 is the paper's
default; DPM-Solver++, Euler, Euler ancestral, PNDM, UniPC … work the same way). The model input
is scaled with ``scheduler.scale_model_input`` as diffusers' pipelines do.

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

Schedulers that take explicit noise (``variance_noise``: DDIM, DPM-Solver SDE) get z_i; those that only take
a ``generator`` (Euler ancestral, DDPM …) get one generator per image, keyed like the noise, so the pairing
holds for them too. The seed derivations themselves live in ``dbcore.seeding``.

Each image (row) may have its own :class:`BlendSpec` (per-image weights: one batch serves several
trade-offs), and a spec may carry a per-step weight schedule w(p) (``blend.schedule``). A named hybrid
(``hybrid_late``, ``blend.hybrid``) takes DB-MPA's coefficients on its range of steps and the merged soup
adapter's elsewhere (merge it first: ``ensure_soup_adapter(unet, spec.soup_spec, loras)``).
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from blend.eps import BASE, blend_eps, combine
from blend.methods import lam_method, method_names, reference_method
from blend.predictor import CallOptions, NoisePredictor
from blend.schedule import step_progress
from blend.spec import HYBRID_OTHERS, BlendSpec
from dbcore.logging import get_logger
from dbcore.seeding import adapter_draw_rng, initial_noise, step_generators
from diffusion.adapters import activate
from diffusion.bundle import ModelBundle
from diffusion.lora import adapter_names

log = get_logger("sampler")

NOISE_DESIGNS = ("per_image", "per_seed")
LS_DRAWS = ("per_image", "per_batch_step")


@dataclass(frozen=True)
class SamplerConfig:
    """Sampler settings (η applies to DDIM-type schedulers); the defaults are the paper's (50 steps, η = 1, guidance 7.5)."""

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
        if not math.isfinite(self.guidance):
            raise ValueError(f"guidance must be a finite number, got {self.guidance}")
        if not 0 <= self.eta <= 1:  # DDIM's direction term sqrt(1 − ᾱ_{t−1} − σ_t²) is real only for η ≤ 1
            raise ValueError(f"eta must be in [0, 1] (DDIM), got {self.eta}")


@dataclass
class SampleResult:
    images: torch.Tensor  # (N, 3, H, W) in [0, 1], float32, CPU
    unet_evals: list[int]  # per image: model evaluations (CFG pair = 1), summed over steps
    seconds: float  # wall time of the whole batch
    choices: list[list[str]] | None = None  # DB-MPA-LS: the model used at each step, per image
    specs: list[dict] | None = None  # per image: its spec (weights, schedule) when images differ or a schedule ran
    costs: list[dict[str, int]] | None = None  # per image: blend.baselines.costs.COST_FIELDS (None: plain sampling)


def draw_adapter_choices(seed: int | Sequence[int], adapters: Sequence[str], weights: Sequence[float], steps: int,
                         prompt: str | None = None) -> list[str]:
    """DB-MPA-LS: the adapter used at each step, adapter i with probability w_i, independently per step.

    The draws are keyed by (prompt, seed) (one sequence per image), or by the seed(s) alone when
    ``prompt`` is None; a sequence of seeds keys one draw sequence for a whole batch (``per_batch_step``).
    """
    seeds = [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    rng = adapter_draw_rng(seeds, prompt)
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


def _accepts(fn, name: str) -> bool:
    return name in inspect.signature(fn).parameters


def encode_for_models(bundle: ModelBundle, prompts: Sequence[str], models: Sequence[str]):
    """Prompt embeddings (N, L, D): one tensor, or ``{model: tensor}`` when the text encoder holds LoRA parts.

    Each blended model encodes the prompt with its own text-encoder state: the adapter's text-encoder
    LoRA when it has one, the pretrained text encoder otherwise (``BASE``, full-UNet members, UNet-only
    adapters). The text encoder's adapter flags are restored afterwards.
    """
    return encode_per_model(bundle, models, lambda: bundle.encode_prompts(list(prompts)))


def encode_per_model(bundle: ModelBundle, models: Sequence[str], encode: Callable[[], object],
                     base_as_is: bool = False):
    """``encode()`` once per text-encoder state the ``models`` need: its value when the text encoder holds no
    LoRA parts, else ``{model: value}`` (see :func:`encode_for_models`). ``base_as_is``: ``BASE`` encodes with
    the text encoder's adapter flags as they are (a diffusers pipeline's ``set_adapters`` state)."""
    te_adapters = set(adapter_names(bundle.text_encoder))
    if not te_adapters:
        return encode()
    from peft.tuners.lora import LoraLayer

    layers = [m for m in bundle.text_encoder.modules() if isinstance(m, LoraLayer)]
    saved = [(layer._disable_adapters, list(layer._active_adapter)) for layer in layers]
    out: dict[str, object] = {}
    try:
        by_state: dict[str, object] = {}
        for model in models:
            state = model if model in te_adapters else BASE
            if state not in by_state:
                if not (base_as_is and state == BASE):
                    activate(bundle.text_encoder, state)
                by_state[state] = encode()
            out[model] = by_state[state]
    finally:
        for layer, (disabled, active) in zip(layers, saved):
            layer._disable_adapters, layer._active_adapter = disabled, active
    return out


class PromptEmbeddings:
    """Prompt embeddings reused across sampling calls on one model (the methods and weights of a grid).

    Keyed by the exact list of prompts of a batch and the text encoder's adapter state (and, when the text
    encoder holds LoRA parts, the blended models), so a hit returns the very tensors the encoder produced for
    that batch: images are bit for bit those without the cache. Valid while the text encoder's weights do not
    change; keeps the ``size`` most recently used batches.
    """

    def __init__(self, size: int = 8) -> None:
        if size < 1:
            raise ValueError(f"size must be ≥ 1, got {size}")
        self.size, self.hits, self.misses = size, 0, 0
        self._store: OrderedDict[tuple, object] = OrderedDict()

    def encode(self, bundle: ModelBundle, prompts: Sequence[str], models: Sequence[str]):
        """What :func:`encode_for_models` returns for these arguments, from the cache when it has them."""
        te_adapters = tuple(adapter_names(bundle.text_encoder))
        key = (id(bundle.text_encoder), te_adapters, tuple(prompts), tuple(models) if te_adapters else None)
        if key in self._store:
            self.hits += 1
            self._store.move_to_end(key)
            return self._store[key]
        self.misses += 1
        out = self._store[key] = encode_for_models(bundle, prompts, models)
        while len(self._store) > self.size:
            self._store.popitem(last=False)
        return out


class _RowPlan:
    """Per-row blend rules, evaluated per step: coefficients {model: c} for each row at step i."""

    def __init__(self, specs: Sequence[BlendSpec], seeds: Sequence[int] | None, n_steps: int,
                 prompts: Sequence[str] | None = None, ls_draw: str = "per_image") -> None:
        if ls_draw not in LS_DRAWS:
            raise ValueError(f"ls_draw must be one of {LS_DRAWS}, got {ls_draw!r}")
        self.specs, self.n_steps, self.ls_draw = list(specs), n_steps, ls_draw
        self.prompts = list(prompts) if prompts is not None else [None] * len(self.specs)
        self.batch_seeds = list(seeds) if seeds is not None else None
        self._cache: dict[tuple[int, int], dict[str, float]] = {}
        self.choices: list[list[str]] | None = None
        # per row: the method's own ε rule (blend.methods: Method.blend), None for the linear Σ_j c_j ε_j
        self.blends = [None if s.info.linear_blend else s.info.blend for s in self.specs]
        if any(s.is_stochastic_choice for s in specs):
            if not all(s.is_stochastic_choice for s in specs):
                raise ValueError("DB-MPA-LS cannot share a batch with other methods; sample it separately")
            if seeds is None:
                raise ValueError("DB-MPA-LS needs one seed per image to draw its adapter choices")
            self.choices = [self._draw(spec, seed, prompt) for spec, seed, prompt in zip(specs, seeds, self.prompts)]
        for s in specs:
            if s.schedule is not None and s.is_soup:
                raise ValueError("a weight schedule needs a per-step ε blend; a soup merges the weights once. "
                                 f"Use method {reference_method()!r} (or {lam_method()!r}) with a schedule")
            if s.hybrid_parts is not None:
                if s.schedule is not None:
                    raise ValueError(f"{s.display_name} already fixes its blend per step; a weight schedule w(t) "
                                     f"applies to {_and(method_names(lambda m: m.schedulable))} only")
                if s.hybrid_parts[2] not in HYBRID_OTHERS:
                    raise ValueError(f"{s.method}: the sampler runs hybrids with {' or '.join(HYBRID_OTHERS)} off "
                                     f"their DB-MPA range, not {s.hybrid_parts[2]!r}; use blend.hybrid.sample_hybrid")

    def _draw(self, spec: BlendSpec, seed: int, prompt: str | None) -> list[str]:
        """Per image: keyed by (prompt, seed) (or the seed alone without prompts); ``per_batch_step``: one
        sequence keyed by the batch's seeds, shared by every row (the official pipeline)."""
        key, prompt = (self.batch_seeds, None) if self.ls_draw == "per_batch_step" else (seed, prompt)
        if spec.schedule is None:
            return draw_adapter_choices(key, spec.adapters, spec.weights, self.n_steps, prompt=prompt)
        # step i uses the i-th uniform of the stream against w(p_i); a constant schedule draws as fixed w
        return [draw_adapter_choices(key, spec.adapters, self.spec_at(spec, i).weights, self.n_steps, prompt=prompt)[i]
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
        hybrid = spec.info.varies_per_step
        key = (id(spec), i if spec.schedule is not None or hybrid else -1)
        if key not in self._cache:
            # a hybrid: DB-MPA's coefficients on its range, {merged soup adapter: 1} elsewhere
            self._cache[key] = spec.coefficients_at(i, self.n_steps) if hybrid else self.spec_at(spec, i).coefficients()
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
            generator=None, progress: bool = False, label: str = "",
            prompts: Sequence[str] | None = None, options: CallOptions | None = None,
            on_step: Callable | None = None) -> tuple[torch.Tensor, list[int], list | None]:
    """Run the blended reverse process from x_T to x_0 with ``scheduler.step``; → (x_0, evals per row, choices).

    Args:
        specs: one spec per row of ``x`` (rows with equal specs are blended together).
        x: x_T already scaled by ``scheduler.init_noise_sigma``, (N, C, H, W).
        cond, uncond: prompt / negative-prompt embeddings (N, L, D), or ``{model: tensor}``.
        scheduler: any diffusers scheduler, after ``set_timesteps``.
        noise: pre-drawn step noise (steps, N, C, H, W), passed as ``variance_noise`` where the scheduler takes it.
        generator: what the scheduler's ``step`` gets as ``generator`` (a generator or one per row).
        options: a diffusers pipeline call's extras (``blend.predictor.CallOptions``; default: none).
        on_step: ``on_step(i, t, x) -> (x, stop)`` after every scheduler step (a pipeline's
            ``callback_on_step_end``): its x replaces the sample, ``stop`` ends the loop (``pipe._interrupt``).
    """
    timesteps = scheduler.timesteps.tolist()
    plan = _RowPlan(specs, seeds, len(timesteps), prompts if config.noise == "per_image" else None, config.ls_draw)
    soups = {s.soup_spec.soup_adapter_name for s in specs if s.soup_spec is not None}
    predictor = NoisePredictor(bundle, config.guidance, batched=config.batched, fold=soups, options=options)
    try:
        return _denoise_steps(predictor, plan, timesteps, x, cond, uncond, scheduler, config, noise, generator,
                              progress, label, on_step)
    finally:
        predictor.restore_weights()  # a soup's ΔW folded into the base weights comes out bit for bit


def _denoise_steps(predictor: NoisePredictor, plan: _RowPlan, timesteps: list, x: torch.Tensor, cond, uncond,
                   scheduler, config: SamplerConfig, noise: torch.Tensor | None, generator, progress: bool,
                   label: str, on_step: Callable | None = None) -> tuple[torch.Tensor, list[int], list | None]:
    n = x.shape[0]
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
            groups.setdefault((tuple(c.items()), plan.blends[r]), []).append(r)
        rows_by_model: dict[str, list[int]] = {}
        for r, c in enumerate(coeffs):
            for model in c:
                rows_by_model.setdefault(model, []).append(r)
        x_in = scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x  # flow: none
        eps_by_model = predictor(x_in, t, cond, uncond, rows_by_model, route=plan.choices is not None)
        if len(groups) == 1 and plan.blends[0] is None:
            eps = combine(eps_by_model, coeffs[0])
        else:
            eps = torch.empty_like(x)
            pos = {m: {r: j for j, r in enumerate(rows)} for m, rows in rows_by_model.items()}
            for (key, rule), rows in groups.items():
                parts = [eps_by_model[m][[pos[m][r] for r in rows]] for m, _ in key]
                eps[rows] = (rule or blend_eps)(parts, [c for _, c in key])
        evals = [e + len(c) for e, c in zip(evals, coeffs)]
        if takes_noise:
            step_kwargs["variance_noise"] = noise[i]
        x = scheduler.step(eps, t, x, **step_kwargs, return_dict=False)[0]
        if on_step is not None:
            x, stop = on_step(i, t, x)
            if stop:
                break
    return x, evals, plan.choices


def _and(names: Sequence[str]) -> str:
    """'a, b and c'."""
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


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
           decode: bool = True, prompt_cache: PromptEmbeddings | None = None,
           on_step: Callable | None = None) -> SampleResult:
    """Sample one image per (prompt, seed) with the method ``spec`` (or one spec per image).

    ``scheduler`` defaults to the bundle's (DDIM); any diffusers scheduler works. ``negative_prompts``
    replaces the empty unconditional prompt of classifier-free guidance. ``sample_shape`` (C, H, W)
    overrides the UNet's native sample size; ``decode=False`` returns the final latents as ``images``.
    ``prompt_cache`` reuses the embeddings of an earlier call with the same prompts (:class:`PromptEmbeddings`).
    ``on_step(i, t, x) -> (x, stop)`` runs after every scheduler step (as in :func:`denoise`; e.g. a progress bar).
    Soups and soup hybrids need their merged adapter in the UNet first
    (``blend.soup.ensure_soup_adapter(unet, spec.soup_spec, loras)``).
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

    per_image = config.noise == "per_image"
    noises = [initial_noise(s, shape, n_steps, prompt=p if per_image else None) for p, s in zip(prompts, seeds)]
    x = torch.stack([xt for xt, _ in noises]).to(device, dtype) * getattr(sched, "init_noise_sigma", 1.0)  # flow: 1
    z = torch.stack([zz for _, zz in noises], dim=1).to(device, dtype)  # (steps, N, C, H, W)
    models = _RowPlan(specs, seeds, n_steps, prompts, config.ls_draw).models()
    encode = prompt_cache.encode if prompt_cache is not None else encode_for_models
    cond = encode(bundle, prompts, models)
    uncond = encode(bundle, list(negative_prompts) if negative_prompts is not None else [""] * n, models)
    gens = step_generators(seeds, device, prompts if per_image else None)
    x, evals, choices = denoise(bundle, specs, x, cond, uncond, sched, config, seeds=seeds, noise=z, generator=gens,
                                progress=progress, label=specs[0].label, prompts=prompts, on_step=on_step)
    images = bundle.decode(x).cpu() if decode else x
    distinct = len({id(s) for s in specs}) > 1 or specs[0].schedule is not None
    return SampleResult(images=images, unet_evals=evals, seconds=time.perf_counter() - start, choices=choices,
                        specs=[s.to_dict() for s in specs] if distinct else None)
