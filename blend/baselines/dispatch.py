"""``sample_any``: one call for every method of ``run_DB.py``, plain samplers and baselines alike.

Each method samples itself (``Method.sample``, ``blend.methods``): plain methods go to ``blend.sampler.sample``
(their cost: e·T UNet forwards and one decode per image); baselines go to their modules with the objective
Σ_i w_i r_i / s_i built from the spec's rewards (:func:`objectives`).
Reward functions come from the run's scorers when they have the name, else are built once per process
(surrogates for the guidance, rewards that are not scored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from blend.baselines.common import WeightedReward, check_differentiable, parse_surrogates
from blend.sampler import SamplerConfig, SampleResult
from blend.spec import BlendSpec
from diffusion.bundle import ModelBundle

_BUILT: dict[tuple[str, str], object] = {}


def reward_fn(name: str, device: torch.device, known: Mapping[str, object] | None = None):
    """The reward ``name``: from ``known`` if there, else built once (per device) from the registry."""
    if known and name in known:
        return known[name]
    key = (name, str(device))
    if key not in _BUILT:
        from rewards import get_reward

        _BUILT[key] = get_reward(name, device=device, dtype=torch.float32)
    return _BUILT[key]


def objectives(spec: BlendSpec, device: torch.device, known: Mapping[str, object] | None = None,
               gradient: bool = False) -> WeightedReward:
    """The spec's Σ w_i r_i / s_i; with ``gradient`` the differentiable guidance version (surrogates applied)."""
    scales = dict(spec.extra.get("scales") or {})
    names = list(spec.rewards)
    if gradient:
        surrogates = parse_surrogates(spec.option("surrogate"))
        guided = check_differentiable(names, spec.display_name, {k: v[0] for k, v in surrogates.items()})
        gscales = {g: (surrogates[n][1] if n in surrogates else scales.get(n, 1.0)) for n, g in zip(names, guided)}
        return WeightedReward(guided, spec.weights, {g: reward_fn(g, device, known) for g in guided}, gscales)
    return WeightedReward(names, spec.weights, {n: reward_fn(n, device, known) for n in names}, scales)


def sample_any(bundle: ModelBundle, spec: BlendSpec, prompts: Sequence[str], seeds: Sequence[int],
               config: SamplerConfig, reward_fns: Mapping[str, object] | None = None,
               progress: bool = False) -> SampleResult:
    """Sample one image per (prompt, seed) with any method; ``result.costs`` is always filled."""
    return spec.info.sample(bundle, spec, prompts, seeds, config, reward_fns, progress)  # blend.methods
