"""Hybrid schedules: DB-MPA on a chosen range of steps, a one-evaluation method elsewhere.

The theory lab shows the Jensen gap of DB-MPA peaks mid-trajectory and vanishes as t → 0, so the m
evaluations per step of DB-MPA may be needed on part of the trajectory only. A hybrid runs

* DB-MPA (ε = Σ_i w_i ε_i, m evaluations) on the steps i with ``start ≤ i / steps < stop``
  (i = 0 is the first, noisiest step);
* elsewhere ``other``: DB-MPA-LS (one adapter drawn per step and image, 1 evaluation) or the
  rewarded soup (one merged adapter, ΔW = Σ w_i ΔW_i, 1 evaluation), or ``soup_factors``.

Cost per image = steps + (m − 1)·(number of DB-MPA steps) UNet evaluations (CFG pair = 1), i.e.
1 + (m − 1)·(stop − start) times the base model.

The schedule is a per-step coefficient function (:meth:`HybridSchedule.coefficients_at`), so that
any sampling loop can use it. ``blend.sampler`` uses it for the named hybrids of ``run_DB.py --methods``
(``NAMED``, e.g. ``hybrid_late``; any scheduler); :func:`sample_hybrid` is an independent DDIM loop built
from the same pieces (same noise per seed, same DB-MPA-LS draws), the reference the sampler is tested
against, so a hybrid with ``start = stop`` is bit for bit the ``other`` method and one with
``start = 0, stop = 1`` is DB-MPA.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from blend.eps import combine, mixture_coefficients
from blend.methods import get_method, method_names
from blend.methods.mpa import Mpa
from blend.methods.soup import Soup
from blend.predictor import NoisePredictor
from blend.sampler import SamplerConfig, SampleResult, draw_adapter_choices
from blend.spec import HYBRIDS, BlendSpec, mpa_step_mask
from dbcore.seeding import initial_noise
from diffusion.bundle import ModelBundle
from diffusion.ddim import ddim_step

OTHERS = method_names(lambda m: m.hybrid_other)  # one UNet evaluation per step: DB-MPA-LS and the soups

# The named hybrids, run_DB.py methods (blend.methods.hybrid.HYBRIDS). hybrid_late (scripts/toy_hybrid.py, toy, m = 2, w = ½,
# 96 images, 10 steps): DB-MPA on the second half of the steps, the ΔW soup on the first, kept 1.03 ± 0.14 of
# DB-MPA's gain over the soup at 1.5× the base cost (DB-MPA on the first half kept −0.12 ± 0.16).
NAMED = {name: dict(start=start, stop=stop, other=other) for name, (start, stop, other) in HYBRIDS.items()}


@dataclass(frozen=True)
class HybridSchedule:
    """DB-MPA with ``weights`` over ``adapters`` on steps [start, stop) (fractions of the trajectory), ``other`` elsewhere."""

    adapters: tuple[str, ...]
    weights: tuple[float, ...]
    start: float = 0.0
    stop: float = 0.5
    other: str = Soup.name

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapters", tuple(self.adapters))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.other not in OTHERS:
            raise ValueError(f"hybrid: other={self.other!r}; choose from {', '.join(OTHERS)}")
        if not (0.0 <= self.start <= self.stop <= 1.0) or not all(map(math.isfinite, (self.start, self.stop))):
            raise ValueError(f"hybrid: need 0 ≤ start ≤ stop ≤ 1, got start={self.start}, stop={self.stop}")
        self.other_spec  # noqa: B018 - validates adapters and weights (sum to 1, ≥ 0 for LS) with BlendSpec's messages

    @property
    def other_spec(self) -> BlendSpec:
        return BlendSpec(self.other, self.adapters, self.weights)

    @property
    def mpa_spec(self) -> BlendSpec:
        return BlendSpec(Mpa.name, self.adapters, self.weights)

    def mpa_steps(self, steps: int) -> list[bool]:
        """Per step index i ∈ [0, steps): does it run DB-MPA? (i = 0 is the first, noisiest step)."""
        return mpa_step_mask(self.start, self.stop, steps)  # halves round up

    def coefficients_at(self, i: int, steps: int) -> dict[str, float] | None:
        """{model: coefficient} at step ``i`` of ``steps``; ``None`` = a DB-MPA-LS step (draw one adapter per image).

        DB-MPA steps give ``mixture_coefficients(w)``; soup steps ``{soup adapter: 1}`` (the merged adapter
        must be in the UNet: ``blend.soup.ensure_soup_adapter(unet, schedule.other_spec, loras)``).
        """
        if not 0 <= i < steps:
            raise IndexError(f"step {i} outside 0..{steps - 1}")
        if self.mpa_steps(steps)[i]:
            return mixture_coefficients(dict(zip(self.adapters, self.weights)))
        if get_method(self.other).draws_per_step:
            return None
        return {self.other_spec.soup_adapter_name: 1.0}

    def unet_evals(self, steps: int) -> int:
        """UNet evaluations per image over ``steps`` steps (CFG pair = 1)."""
        n_mpa = sum(self.mpa_steps(steps))
        m = len(mixture_coefficients(dict(zip(self.adapters, self.weights))))
        return n_mpa * m + (steps - n_mpa)

    def cost_ratio(self, steps: int) -> float:
        """UNet evaluations relative to the base model (1 per step)."""
        return self.unet_evals(steps) / steps

    @property
    def label(self) -> str:
        ws = "_".join(f"{a}{w:g}" for a, w in zip(self.adapters, self.weights))
        return f"hybrid_mpa{self.start:g}-{self.stop:g}_{self.other}_{ws}"


@torch.no_grad()
def sample_hybrid(bundle: ModelBundle, schedule: HybridSchedule, prompts: Sequence[str], seeds: Sequence[int],
                  config: SamplerConfig | None = None) -> SampleResult:
    """Sample one image per (prompt, seed) with a hybrid schedule (noise and LS draws as ``blend.sampler``)."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    config = config or SamplerConfig()
    n, device, dtype = len(prompts), bundle.device, bundle.dtype
    start = time.perf_counter()
    sched = bundle.scheduler
    sched.set_timesteps(config.steps)
    timesteps = sched.timesteps.tolist()
    steps = len(timesteps)
    keys = list(prompts) if config.noise == "per_image" else [None] * n  # the sampler's noise design
    noises = [initial_noise(s, bundle.sample_shape, steps, prompt=k) for s, k in zip(seeds, keys)]
    x = torch.stack([xt for xt, _ in noises]).to(device, dtype) * sched.init_noise_sigma
    z = torch.stack([zz for _, zz in noises], dim=1).to(device, dtype)
    cond = bundle.encode_prompts(list(prompts))
    uncond = bundle.encode_prompts([""] * n)
    fold = [schedule.other_spec.soup_adapter_name] if schedule.other_spec.is_soup else []
    predictor = NoisePredictor(bundle, config.guidance, batched=config.batched, fold=fold)  # as blend.sampler
    choices = None
    if get_method(schedule.other).draws_per_step:
        choices = [draw_adapter_choices(s, schedule.adapters, schedule.weights, steps, prompt=k)
                   for s, k in zip(seeds, keys)]
    evals = [0] * n
    try:
        for i, t in enumerate(timesteps):
            coeffs = schedule.coefficients_at(i, steps)
            if coeffs is not None:
                eps = combine(predictor(x, t, cond, uncond, {m: None for m in coeffs}), coeffs)
                evals = [e + len(coeffs) for e in evals]
            else:
                rows: dict[str, list[int]] = {}
                for r, per in enumerate(choices):
                    rows.setdefault(per[i], []).append(r)
                eps_by_model = predictor(x, t, cond, uncond, rows, route=True)
                if len(rows) == 1:
                    eps = next(iter(eps_by_model.values()))
                else:
                    eps = torch.empty_like(x)
                    for model, idx in rows.items():
                        eps[idx] = eps_by_model[model]
                evals = [e + 1 for e in evals]
            x = ddim_step(sched, eps, t, x, config.eta, noise=z[i]).prev_sample
    finally:
        predictor.restore_weights()
    images = bundle.decode(x).cpu()
    return SampleResult(images=images, unet_evals=evals, seconds=time.perf_counter() - start, choices=choices)
