"""The measurements of the theory lab (``scripts/theory_lab.py``). Each returns plain row dicts.

Every sampled distribution is compared with two references:

* ``exact``: samples drawn directly from the closed-form target mixture (the truth);
* ``oracle``: the target's exact ε run through the *same* DDIM chain with the *same* noise. It has
  no blend error, only the sampler's own error (50 strided DDIM steps at η = 1 lose variance), so
  DB's error beyond the oracle's is the blend's (Jensen-gap) error.

Rewards are r_i = a_iᵀx with unit a_i; w is the weight of r1 (run_DB's ``--ir_weight``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from blend.eps import BASE, mixture_coefficients
from blend.stats import mean_se
from dbcore.logging import get_logger
from theory.denoiser import ExactEps, exact_control, linearised_control
from theory.metrics import mode_weight_tv, sliced_w2
from theory.mixture import GaussianMixture, RewardWorld, gaussian_world, random_world, square_world
from theory.sampling import SharedNoise, affine_chain_law, blended, make_scheduler, run_ddim, switching

log = get_logger("theory")


@dataclass(frozen=True)
class LabConfig:
    """Sizes of every measurement. ``LabConfig()`` is the documented run; ``LabConfig.smoke()`` the test one."""

    n_samples: int = 4000                       # samples per sampled distribution
    steps: int = 50                             # DDIM steps (the paper's setting)
    eta: float = 1.0                            # DDIM η (the paper's setting)
    seed: int = 0
    n_projections: int = 64                     # sliced W2 directions (d = 2; 2× that in the stress world)
    sigma: float = 0.35                         # std of each mode of the square world
    separation: float = 1.5                     # mode spacing of the main square world (≈ 4.3σ)
    separations: tuple[float, ...] = (0.0, 0.75, 1.5, 3.0)   # 0 = a single Gaussian
    alphas: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25, 0.125)
    ws: tuple[float, ...] = tuple(i / 10 for i in range(11))  # full sweep at the main separation
    ws_short: tuple[float, ...] = (0.2, 0.5, 0.8)             # the paper's table weights, other worlds
    kla_alphas: tuple[float, ...] = (1.0, 0.5, 0.25)
    lams: tuple[float, ...] = tuple(i / 4 for i in range(9))  # λ ∈ [0, 2]
    ls_alphas: tuple[float, ...] = (1.0, 0.25)
    ls_steps: tuple[int, ...] = (10, 25, 50, 100, 200)
    ls_w: float = 0.5
    ls_batch_repeats: int = 4                   # independent model-choice sequences (paper-code LS)
    jensen_n: int = 1000                        # trajectories for the Jensen-gap measurement
    stress_dim: int = 16
    stress_components: int = 4
    stress_separation: float = 3.0
    stress_alphas: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    control_dims: tuple[int, ...] = (2, 16)
    control_alpha: float = 0.5
    control_steps: tuple[int, ...] = (10, 25, 50, 100, 200, 500)  # chain-law discretisation sweep
    picture_alphas: tuple[float, ...] = (1.0, 0.25)
    name: str = "default"

    @classmethod
    def smoke(cls) -> LabConfig:
        """The smallest configuration that exercises every code path (seconds)."""
        return cls(n_samples=200, steps=8, n_projections=16, separations=(0.0, 1.5), alphas=(1.0, 0.25),
                   ws=(0.0, 0.5, 1.0), ws_short=(0.5,), kla_alphas=(0.5,), lams=(0.0, 1.0, 2.0), ls_alphas=(0.5,),
                   ls_steps=(4, 8), ls_batch_repeats=2, jensen_n=64, stress_dim=4, stress_alphas=(0.5,),
                   control_dims=(2,), control_steps=(8, 16), picture_alphas=(0.5,), name="smoke")


# ---- helpers -------------------------------------------------------------------------------------
def reward_names(world: RewardWorld) -> list[str]:
    return [f"r{i + 1}" for i in range(world.rewards.shape[0])]


def world_models(world: RewardWorld, alpha: float, scheduler) -> dict[str, ExactEps]:
    """{BASE: the pretrained ε, "r1": the exact fine-tuned ε for r1 at α, ...}."""
    models = {BASE: ExactEps(world.base, scheduler)}
    for i, name in enumerate(reward_names(world)):
        models[name] = ExactEps(world.finetuned(i, alpha), scheduler)
    return models


def _seed(cfg: LabConfig, *keys: float) -> int:
    """A reproducible seed per configuration (different exact samples for different targets)."""
    return (cfg.seed * 1_000_003 + hash(tuple(round(k, 6) for k in keys))) % (2**31)


def evaluate(target: GaussianMixture, world: RewardWorld, w: Sequence[float], samples: dict[str, torch.Tensor],
             seed: int, n_projections: int) -> dict:
    """Reward, sliced W2 and mode-weight error of each sample set against ``target``, with floors.

    ``floor_sw2``/``floor_tv``: the same metrics for an independent exact sample of the same size.
    ``{m}_z``: the weighted-reward gap in standard errors.
    """
    n = next(iter(samples.values())).shape[0]
    g = torch.Generator().manual_seed(seed)
    exact, exact2 = target.sample(n, g), target.sample(n, g)
    a_w = world.reward_vector(w)
    row = {"target_rw": target.expected_linear(a_w),
           "floor_sw2": sliced_w2(exact2, exact, n_projections), "floor_tv": mode_weight_tv(target, exact2)}
    for i, name in enumerate(reward_names(world)):
        row[f"target_{name}"] = target.expected_linear(world.rewards[i])
    for m, x in samples.items():
        rw, se = mean_se(x @ a_w)
        row[f"{m}_rw"], row[f"{m}_se"] = rw, se
        row[f"{m}_gap"] = rw - row["target_rw"]
        row[f"{m}_z"] = row[f"{m}_gap"] / se if se > 0 else float("nan")
        for i, name in enumerate(reward_names(world)):
            row[f"{m}_{name}"] = float((x @ world.rewards[i]).mean())
        row[f"{m}_sw2"] = sliced_w2(x, exact, n_projections)
        row[f"{m}_tv"] = mode_weight_tv(target, x)
    return row


def _timed(name: str, fn: Callable[[], list[dict]]) -> list[dict]:
    t0 = time.perf_counter()
    rows = fn()
    log.info("%s: %d rows in %.1f s", name, len(rows), time.perf_counter() - t0)
    return rows


# ---- DB-MPA vs the MORL target -------------------------------------------------------------------
def mpa_sweep(cfg: LabConfig, world: RewardWorld, alphas: Sequence[float], ws: Sequence[float],
              n_projections: int | None = None) -> list[dict]:
    """DB-MPA (Σ w_i ε_i) and the oracle against the exact MORL target, for every (α, w)."""
    d = world.base.dim
    sched = make_scheduler(cfg.steps)
    noise = SharedNoise.draw(cfg.n_samples, d, cfg.steps, cfg.seed)
    names = reward_names(world)
    rows = []
    for alpha in alphas:
        models = world_models(world, alpha, sched)
        for w in ws:
            wv = (w, 1.0 - w)
            target = world.target(wv, alpha)
            coeffs = mixture_coefficients(dict(zip(names, wv)))
            x_db = run_ddim(blended(models, coeffs), sched, noise, cfg.eta)
            x_or = run_ddim(ExactEps(target, sched), sched, noise, cfg.eta)
            row = {"world": world.name, "alpha": alpha, "w": w}
            row.update(evaluate(target, world, wv, {"db": x_db, "oracle": x_or}, _seed(cfg, alpha, w, d),
                                n_projections or cfg.n_projections))
            rows.append(row)
    return rows


# ---- DB-KLA vs the α/λ targets -------------------------------------------------------------------
def kla_sweep(cfg: LabConfig, world: RewardWorld) -> list[dict]:
    """DB-KLA ((1−λ) ε_pre + λ ε_1) against the exact optimum of r1 at KL strength α/λ."""
    sched = make_scheduler(cfg.steps)
    noise = SharedNoise.draw(cfg.n_samples, world.base.dim, cfg.steps, cfg.seed)
    rows = []
    for alpha in cfg.kla_alphas:
        models = world_models(world, alpha, sched)
        for lam in cfg.lams:
            target = world.target((1.0, 0.0), alpha, lam)
            coeffs = mixture_coefficients({"r1": 1.0}, lam)
            x_db = run_ddim(blended(models, coeffs), sched, noise, cfg.eta)
            x_or = run_ddim(ExactEps(target, sched), sched, noise, cfg.eta)
            row = {"world": world.name, "alpha": alpha, "lam": lam}
            row.update(evaluate(target, world, (1.0, 0.0), {"db": x_db, "oracle": x_or},
                                _seed(cfg, alpha, lam, 7), cfg.n_projections))
            rows.append(row)
    return rows


# ---- DB-MPA-LS vs DB-MPA -------------------------------------------------------------------------
def ls_sweep(cfg: LabConfig, world: RewardWorld) -> list[dict]:
    """DB-MPA-LS (per batch, as the paper's code, and per sample) against DB-MPA, over the step count.

    LS runs use noise independent of the MPA run, so ``sw2_vs_mpa`` is comparable with
    ``floor_sw2`` = sliced W2 between two DB-MPA runs with independent noise.
    """
    names = reward_names(world)
    wv = (cfg.ls_w, 1.0 - cfg.ls_w)
    probs = dict(zip(names, wv))
    rows = []
    for alpha in cfg.ls_alphas:
        target = world.target(wv, alpha)
        a_w = world.reward_vector(wv)
        for steps in cfg.ls_steps:
            sched = make_scheduler(steps)
            models = world_models(world, alpha, sched)
            noise = SharedNoise.draw(cfg.n_samples, world.base.dim, steps, cfg.seed)
            noise2 = SharedNoise.draw(cfg.n_samples, world.base.dim, steps, cfg.seed + 1)
            x_mpa = run_ddim(blended(models, mixture_coefficients(probs)), sched, noise, cfg.eta)
            x_mpa2 = run_ddim(blended(models, mixture_coefficients(probs)), sched, noise2, cfg.eta)
            runs = {"ls_sample": [run_ddim(switching(models, probs, cfg.seed, per_sample=True), sched, noise2, cfg.eta)],
                    "ls_batch": [run_ddim(switching(models, probs, cfg.seed + 100 + r), sched, noise2, cfg.eta)
                                 for r in range(cfg.ls_batch_repeats)]}
            mpa_rw, mpa_se = mean_se(x_mpa @ a_w)
            row = {"alpha": alpha, "steps": steps, "w": cfg.ls_w, "target_rw": target.expected_linear(a_w),
                   "mpa_rw": mpa_rw, "mpa_se": mpa_se, "mpa_tv": mode_weight_tv(target, x_mpa),
                   "floor_sw2": sliced_w2(x_mpa2, x_mpa, cfg.n_projections)}
            for m, xs in runs.items():
                sw = [sliced_w2(x, x_mpa, cfg.n_projections) for x in xs]
                gaps = [float((x @ a_w).mean()) - mpa_rw for x in xs]
                row[f"{m}_sw2_vs_mpa"] = sum(sw) / len(sw)
                row[f"{m}_sw2_max"] = max(sw)
                row[f"{m}_gap_vs_mpa"] = sum(gaps) / len(gaps)
                row[f"{m}_gap_absmax"] = max(abs(g) for g in gaps)
                row[f"{m}_tv"] = sum(mode_weight_tv(target, x) for x in xs) / len(xs)
                if len(gaps) > 1:  # the batch shares one draw sequence: the unit is the sequence, not the sample
                    mg = sum(gaps) / len(gaps)
                    row[f"{m}_seq_se"] = math.sqrt(sum((g - mg) ** 2 for g in gaps) / (len(gaps) - 1) / len(gaps))
            _, ls_se = mean_se(runs["ls_sample"][0] @ a_w)
            row["ls_sample_gap_se"] = math.sqrt(ls_se**2 + mpa_se**2)  # independent noise, samples independent
            # the batch runs share one noise draw (noise2): its sampling error is common to all sequences and adds
            # to the spread between sequences
            row["ls_batch_gap_se"] = math.sqrt(row["ls_batch_seq_se"] ** 2 + row["ls_sample_gap_se"] ** 2)
            row["gap_se"] = math.sqrt(2) * mpa_se
            rows.append(row)
    return rows


# ---- the Jensen gap along trajectories -----------------------------------------------------------
def jensen_trajectory(world: RewardWorld, alpha: float, w: Sequence[float], scheduler, noise: SharedNoise,
                      eta: float = 1.0) -> list[dict]:
    """Per step of one DB-MPA run, in ε units (×√(1−ᾱ_t)), means over the samples:

    ``control``   ‖u_w‖, the exact control of the weighted reward (Prop. 1)
    ``gap``       ‖Δ_w‖ = ‖u_w − ū_w‖, the Jensen gap of the weighted reward (Lemma 1)
    ``blend_err`` ‖ε_DB − ε_target‖ = ‖Σ w_i Δ_i − Δ_w‖ (Lemma 2's dropped term): what DB gets wrong
    """
    models = world_models(world, alpha, scheduler)
    target_eps = ExactEps(world.target(w, alpha), scheduler)
    b_w = world.reward_vector(w) / alpha
    rows: list[dict] = []

    def hook(i: int, t: int, x: torch.Tensor, eps_db: torch.Tensor) -> None:
        ab = target_eps.alpha_bar(t)
        scale = math.sqrt(1.0 - ab)
        u = exact_control(world.base, b_w, x, ab)
        gap = u - linearised_control(world.base, b_w, x, ab)
        rows.append({"step": i, "t": t, "alpha_bar": ab, "control": scale * float(u.norm(dim=1).mean()),
                     "gap": scale * float(gap.norm(dim=1).mean()),
                     "blend_err": float((eps_db - target_eps(x, t)).norm(dim=1).mean())})

    run_ddim(blended(models, mixture_coefficients(dict(zip(reward_names(world), w)))), scheduler, noise, eta, hook=hook)
    return rows


def jensen_sweep(cfg: LabConfig, w: float = 0.5) -> list[dict]:
    """:func:`jensen_trajectory` (w = ½, ``cfg.jensen_n`` paths) for every separation and α of the square world."""
    sched = make_scheduler(cfg.steps)
    noise = SharedNoise.draw(cfg.jensen_n, 2, cfg.steps, cfg.seed)
    return [{"separation": s, "alpha": alpha, **r} for s in cfg.separations for alpha in cfg.alphas
            for r in jensen_trajectory(square_world(s, cfg.sigma), alpha, (w, 1.0 - w), sched, noise, cfg.eta)]


# ---- the single-Gaussian control -----------------------------------------------------------------
def _gaussian_z(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> tuple[float, float]:
    """Largest |z| of the sample mean and of the sample-covariance entries against a Gaussian law,
    with Var(m̂_j) = C_jj/N and Var(Ĉ_ij) = (C_ii C_jj + C_ij²)/N."""
    n = x.shape[0]
    zm = (x.mean(0) - mean) / torch.sqrt(torch.diagonal(cov) / n)
    dg = torch.diagonal(cov)
    zc = (torch.cov(x.T) - cov) / torch.sqrt((dg[:, None] * dg[None, :] + cov**2) / n)
    return float(zm.abs().max()), float(zc.abs().max())


def _run_with_eps_error(eps_fn, reference, scheduler, noise: SharedNoise, eta: float) -> tuple[torch.Tensor, float]:
    """Run ``eps_fn``; also return max |ε − ε_reference| over every step and sample of its own path."""
    errs: list[float] = []
    x = run_ddim(eps_fn, scheduler, noise, eta,
                 hook=lambda i, t, x, e: errs.append(float((e - reference(x, t)).abs().max())))
    return x, max(errs)


def control_sweep(cfg: LabConfig) -> tuple[list[dict], list[dict]]:
    """Single Gaussian: DB-MPA and DB-KLA must equal the oracle, and sit within sampling noise of
    the chain's exact law; the chain's law differs from the target by discretisation only.

    Returns (per-configuration rows, discretisation rows of the chain law vs steps).
    """
    rows, disc = [], []
    alpha = cfg.control_alpha
    for d in cfg.control_dims:
        world = gaussian_world(d, seed=cfg.seed)
        names = reward_names(world)
        sched = make_scheduler(cfg.steps)
        models = world_models(world, alpha, sched)
        noise = SharedNoise.draw(cfg.n_samples, d, cfg.steps, cfg.seed)
        configs = [("DB-MPA", f"w={w:g}", (w, 1.0 - w), 1.0, mixture_coefficients(dict(zip(names, (w, 1.0 - w)))))
                   for w in (0.0, *cfg.ws_short, 1.0)]
        configs += [("DB-KLA", f"λ={lam:g}", (1.0, 0.0), lam, mixture_coefficients({"r1": 1.0}, lam))
                    for lam in (0.0, 0.5, 1.5, 2.0)]
        for method, label, wv, lam, coeffs in configs:
            target = world.target(wv, alpha, lam)
            oracle = ExactEps(target, sched)
            db = blended(models, coeffs)
            x_db, max_eps_err = _run_with_eps_error(db, oracle, sched, noise, cfg.eta)
            x_or = run_ddim(oracle, sched, noise, cfg.eta)
            m_chain, c_chain = affine_chain_law(db, sched, d, cfg.eta)
            z_mean, z_cov = _gaussian_z(x_db, m_chain, c_chain)
            c_tar = target.covariance()
            a_w = world.reward_vector(wv)
            rw, se = mean_se(x_db @ a_w)
            rows.append({"dim": d, "method": method, "setting": label, "max_eps_err": max_eps_err,
                         "max_x_diff": float((x_db - x_or).abs().max()),
                         "z_mean_vs_chain": z_mean, "z_cov_vs_chain": z_cov,
                         "chain_mean_bias": float((m_chain - target.mean()).norm()),
                         "chain_cov_rel_bias": float((c_chain - c_tar).norm() / c_tar.norm()),
                         "sample_cov_rel_err": float((torch.cov(x_db.T) - c_tar).norm() / c_tar.norm()),
                         "rw_gap": rw - target.expected_linear(a_w), "rw_se": se,
                         "chain_rw_gap": float(a_w @ m_chain) - target.expected_linear(a_w)})
        target = world.target((0.5, 0.5), alpha)
        for steps in cfg.control_steps:
            s2 = make_scheduler(steps)
            m_chain, c_chain = affine_chain_law(ExactEps(target, s2), s2, d, cfg.eta)
            c_tar = target.covariance()
            disc.append({"dim": d, "steps": steps, "mean_bias": float((m_chain - target.mean()).norm()),
                         "cov_rel_bias": float((c_chain - c_tar).norm() / c_tar.norm()),
                         "trace_ratio": float(torch.trace(c_chain) / torch.trace(c_tar))})
    return rows, disc


# ---- pictures ------------------------------------------------------------------------------------
def picture_samples(cfg: LabConfig, w: float = 0.5) -> dict[float, dict[str, torch.Tensor]]:
    """Per α: exact samples of the base, both fine-tuned models and the MORL target, and DB-MPA /
    DB-MPA-LS samples (one draw per sample and step, as ``run_DB.py`` now does, and the paper code's one
    draw per step for the whole batch), in the main square world."""
    world = square_world(cfg.separation, cfg.sigma)
    sched = make_scheduler(cfg.steps)
    noise = SharedNoise.draw(cfg.n_samples, 2, cfg.steps, cfg.seed)
    wv = (w, 1.0 - w)
    out = {}
    for alpha in cfg.picture_alphas:
        g = torch.Generator().manual_seed(_seed(cfg, alpha, 99))
        models = world_models(world, alpha, sched)
        coeffs = dict(zip(reward_names(world), wv))
        out[alpha] = {"base": world.base.sample(cfg.n_samples, g),
                      "fine-tuned r1": world.finetuned(0, alpha).sample(cfg.n_samples, g),
                      "fine-tuned r2": world.finetuned(1, alpha).sample(cfg.n_samples, g),
                      "MORL target": world.target(wv, alpha).sample(cfg.n_samples, g),
                      "DB-MPA": run_ddim(blended(models, mixture_coefficients(coeffs)), sched, noise, cfg.eta),
                      "DB-MPA-LS": run_ddim(switching(models, coeffs, cfg.seed, per_sample=True), sched, noise,
                                            cfg.eta),
                      "DB-MPA-LS (batch draw)": run_ddim(switching(models, coeffs, cfg.seed), sched, noise, cfg.eta)}
    return out


# ---- everything ----------------------------------------------------------------------------------
def run_all(cfg: LabConfig) -> dict[str, list[dict] | dict]:
    """All measurements; keys name the result tables."""
    main = square_world(cfg.separation, cfg.sigma)
    res: dict = {}
    res["mpa_w"] = _timed("DB-MPA over w", lambda: mpa_sweep(cfg, main, cfg.alphas, cfg.ws))
    others = [s for s in cfg.separations if s != cfg.separation]
    res["mpa_sep"] = _timed("DB-MPA over separation", lambda: [
        {"separation": s, **r} for s in others
        for r in mpa_sweep(cfg, square_world(s, cfg.sigma), cfg.alphas, cfg.ws_short)
    ] + [{"separation": cfg.separation, **r} for r in res["mpa_w"] if r["w"] in cfg.ws_short])
    res["kla"] = _timed("DB-KLA over λ", lambda: kla_sweep(cfg, main))
    res["ls"] = _timed("DB-MPA-LS vs DB-MPA", lambda: ls_sweep(cfg, main))
    res["jensen"] = _timed("Jensen gap", lambda: jensen_sweep(cfg))
    stress = [random_world(cfg.stress_dim, cfg.stress_components, cfg.stress_separation, seed=cfg.seed,
                           sigma=cfg.sigma, aligned=aligned) for aligned in (False, True)]
    res["stress"] = _timed(f"stress d={cfg.stress_dim}", lambda: [
        {"rewards": "aligned" if "aligned" in world.name else "random", **r} for world in stress
        for r in mpa_sweep(cfg, world, cfg.stress_alphas, cfg.ws_short, 2 * cfg.n_projections)])
    ctrl, disc = control_sweep(cfg)
    res["control"], res["discretisation"] = ctrl, disc
    log.info("control: %d rows, discretisation: %d rows", len(ctrl), len(disc))
    res["pictures"] = picture_samples(cfg)
    return res


__all__ = ["LabConfig", "run_all", "mpa_sweep", "kla_sweep", "ls_sweep", "jensen_sweep", "jensen_trajectory", "control_sweep",
           "picture_samples", "evaluate", "world_models"]
