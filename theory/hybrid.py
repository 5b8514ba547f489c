"""Hybrid schedules in the theory lab: DB-MPA on a range of steps, DB-MPA-LS elsewhere, with exact ε's.

The lab's worlds have exact fine-tuned models but no weight space, so the one-evaluation method used
outside the DB-MPA window is DB-MPA-LS (one model drawn per step and sample; Prop. 2). The step
windows are the same :class:`blend.hybrid.HybridSchedule` the image sampler uses, so a schedule's
per-step choice here is the one ``blend.hybrid.sample_hybrid`` makes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from blend.eps import combine
from blend.hybrid import HybridSchedule
from blend.methods.mpa_ls import MpaLS
from theory.experiments import LabConfig, evaluate, reward_names, world_models
from theory.mixture import RewardWorld
from theory.sampling import EpsFn, SharedNoise, make_scheduler, run_ddim, switching


def hybrid_eps(models: Mapping[str, EpsFn], schedule: HybridSchedule, timesteps: Sequence[int], seed: int) -> EpsFn:
    """ε(x, t): Σ w_i ε_i on the schedule's DB-MPA steps, one model per sample (LS, drawn with ``seed``) elsewhere."""
    if schedule.other != MpaLS.name:
        raise ValueError(f"the theory lab has no weight space: use other={MpaLS.name!r}, not {schedule.other!r}")
    steps = len(timesteps)
    index = {int(t): i for i, t in enumerate(timesteps)}
    ls = switching(models, dict(zip(schedule.adapters, schedule.weights)), seed, per_sample=True)

    def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        coeffs = schedule.coefficients_at(index[int(t)], steps)
        if coeffs is None:
            return ls(x, t)
        return combine({n: models[n](x, t) for n in coeffs}, coeffs)

    return eps_fn


def hybrid_sweep(cfg: LabConfig, world: RewardWorld, alphas: Sequence[float], windows: Sequence[tuple[float, float]],
                 w: float = 0.5) -> list[dict]:
    """Per (α, window): weighted reward, its gap to the MORL target and sliced W2, against UNet evaluations.

    ``window`` (start, stop) = fractions of the trajectory run with DB-MPA; (0, 0) is DB-MPA-LS and
    (0, 1) DB-MPA. ``kept`` = (rw − rw_LS) / (rw_MPA − rw_LS): the share of DB-MPA's reward change over
    DB-MPA-LS the hybrid keeps (noisy when the two are close; see ``*_se``).
    """
    names = reward_names(world)
    wv = (w, 1.0 - w)
    sched = make_scheduler(cfg.steps)
    timesteps = [int(t) for t in sched.timesteps]
    noise = SharedNoise.draw(cfg.n_samples, world.base.dim, cfg.steps, cfg.seed)
    rows = []
    for alpha in alphas:
        models = world_models(world, alpha, sched)
        target = world.target(wv, alpha)
        samples = {}
        for lo, hi in windows:
            h = HybridSchedule(tuple(names), wv, lo, hi, MpaLS.name)
            samples[(lo, hi)] = run_ddim(hybrid_eps(models, h, timesteps, cfg.seed + 17), sched, noise, cfg.eta)
        ev = evaluate(target, world, wv, {f"{lo:g}-{hi:g}": x for (lo, hi), x in samples.items()},
                      cfg.seed + 3, cfg.n_projections)
        rw_ls, rw_mpa = ev.get("0-0_rw"), ev.get("0-1_rw")
        for lo, hi in windows:
            k = f"{lo:g}-{hi:g}"
            h = HybridSchedule(tuple(names), wv, lo, hi, MpaLS.name)
            kept = (ev[f"{k}_rw"] - rw_ls) / (rw_mpa - rw_ls) if rw_ls is not None and rw_mpa not in (None, rw_ls) \
                else float("nan")
            rows.append({"world": world.name, "alpha": alpha, "w": w, "start": lo, "stop": hi,
                         "evals_per_step": h.cost_ratio(cfg.steps), "target_rw": ev["target_rw"],
                         "rw": ev[f"{k}_rw"], "rw_se": ev[f"{k}_se"], "gap": ev[f"{k}_gap"],
                         "sw2": ev[f"{k}_sw2"], "floor_sw2": ev["floor_sw2"], "kept": kept})
    return rows
