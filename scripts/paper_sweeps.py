#!/usr/bin/env python
"""One sweep per experiment of the paper, on Stable Diffusion or on the toy world, through ``run_DB.py``.

    python scripts/paper_sweeps.py table1 --world toy            # Table 1: two rewards, w ∈ {0.2, 0.5, 0.8}
    python scripts/paper_sweeps.py table5 --world toy            # Table 5: compressibility vs a second reward
    python scripts/paper_sweeps.py m34    --world toy            # Fig. 7 / Table 6: m = 3 and m = 4 rewards, Δr
    python scripts/paper_sweeps.py kla    --world toy            # Fig. 6: DB-KLA over λ vs λ-specific models
    python scripts/paper_sweeps.py pareto --world toy            # Figs. 2 / 5: fronts over a w grid + hypervolume

    # Stable Diffusion (GPUs): adapters, oracles and rewards given; each run_DB call through accelerate
    python scripts/paper_sweeps.py table1 --world sd --lora t2i=ckpt/ir --lora vila=ckpt/vila \
        --rewards image_reward,vila --oracle 0.5,0.5=ckpt/oracle_w0.5 --launcher "accelerate launch" \
        --extra "--guidance_surrogate vila=aesthetic"

Every sweep writes ``<out>/<sweep>/table.md``, ``table.tex`` and ``plot.png`` (and keeps each run_DB output
folder under it, so re-running resumes). Worlds: ``toy`` (the committed toy weights; CPU), ``sd`` (paths on
the command line), ``tiny`` (random adapters on ``builtin:tiny``, for tests). Baselines run at equal cost
(``--budget auto``: DB-MPA's m·T UNet evaluations per image) and the tables carry seconds and costs per image.
Standard errors come from ``blend.report.mean_se`` (the project's convention).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from blend.report import mean_se  # noqa: E402
from diffusion_blend.io import atomic_path, write_text_atomic  # noqa: E402
from diffusion_blend.logging import get_logger, setup_logging  # noqa: E402

log = get_logger("paper_sweeps")
WEIGHTS_T1 = ((0.2, 0.8), (0.5, 0.5), (0.8, 0.2))
NAMES = {"base": "Base model", "soup_factors": "RS (factors, as the paper)", "soup": "RS (ΔW)", "code": "CoDe",
         "rgg": "RGG", "smc": "SMC (DAS)", "bon": "Best-of-N", "mpa": "DB-MPA", "mpa_ls": "DB-MPA-LS",
         "bon_mpa": "Best-of-N over DB-MPA", "bon_ls": "Best-of-N over DB-MPA-LS", "kla": "DB-KLA",
         "oracle": "MORL oracle", "single": "single adapter"}
COST_KEYS = ("unet_forwards", "unet_backwards", "vae_decodes", "reward_evals", "reward_grads")


@dataclass
class World:
    """Where a sweep runs: the model, adapters (adapter i is trained on reward i), rewards and settings."""

    name: str
    base_model: str
    adapters: list[tuple[str, str]]
    rewards: list[str]
    prompts: str
    steps: int
    guidance: float
    n_seeds: int
    oracles: dict[str, str] = field(default_factory=dict)  # "0.5,0.5" -> path
    kla_oracles: dict[float, str] = field(default_factory=dict)  # λ -> path (adapter 0 retrained with KL/λ)
    scales: dict[str, float] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)  # more run_DB flags (surrogates, tempering)
    batch_size: int = 8
    # Table 5's pair (indices into adapters/rewards): (compressibility = r1, the second reward = r2); WR's w is the
    # weight on r1. None: the world has no compressibility reward.
    table5: tuple[int, int] | None = None


def gamma_for(steps: int, gamma50: float = 0.024) -> float:
    """Tempering γ that reaches λ = 1 at the same fraction of the trajectory as γ = 0.024 at 50 steps."""
    return round((1 + gamma50) ** (50 / steps) - 1, 4)


def toy_world(n_seeds: int) -> World:
    w = REPO / "toy" / "weights"
    stats = json.loads((w / "reward_stats.json").read_text())
    extra_dir = w / "adapters"
    return World(
        "toy", "builtin:toy",
        [("alignment", str(extra_dir / "alignment")), ("compressibility", str(extra_dir / "compressibility")),
         ("colorfulness", str(extra_dir / "colorfulness")), ("brightness", str(extra_dir / "brightness"))],
        ["toy_alignment_z", "toy_jpeg_z", "colorfulness", "brightness"],
        str(REPO / "dataset" / "toy_test_prompts.json"), 10, 5.0, n_seeds,
        oracles={f"{a:g},{1 - a:g}": str(w / "oracles" / f"w{a:g}") for a in (0.2, 0.5, 0.8)},
        kla_oracles={0.5: str(w / "oracles_kl" / "lam0.5"), 2.0: str(w / "oracles_kl" / "lam2")},
        # σ of colourfulness and brightness over 32 toy base samples (training prompts, 10 steps, guidance 5)
        scales={"colorfulness": 0.0954, "brightness": 0.0513},
        extra=["--rgg_gamma", str(gamma_for(10)),
               "--guidance_surrogate", f"toy_jpeg_z=toy_smoothness:{stats['toy_smoothness']['std']:.6g}"],
        batch_size=48,
        # JPEG compressibility vs colourfulness: the toy analogue of the paper's compressibility vs VILA
        table5=(1, 2))


def tiny_world(out: Path, n_seeds: int, prompts: str) -> World:
    """builtin:tiny with four random adapters and random oracles (a smoke test of every sweep)."""
    from diffusion.lora import random_lora, save_lora
    from diffusion.tiny import make_tiny_sd

    unet = make_tiny_sd().unet
    paths = {}
    for i, name in enumerate(("a", "b", "c", "d", "o2", "o5", "o8", "k05", "k2")):
        path = out / "tiny_adapters" / name
        if not (path / "pytorch_lora_weights.safetensors").exists():
            save_lora(random_lora(unet, seed=11 + i, std_b=0.3), path)
        paths[name] = str(path)
    return World("tiny", "builtin:tiny", [(n, paths[n]) for n in "abcd"],
                 ["brightness", "colorfulness", "toy_smoothness", "jpeg_compressibility"], prompts, 3, 5.0, n_seeds,
                 oracles={"0.2,0.8": paths["o2"], "0.5,0.5": paths["o5"], "0.8,0.2": paths["o8"]},
                 kla_oracles={0.5: paths["k05"], 2.0: paths["k2"]},
                 extra=["--rgg_gamma", "0.5", "--code_block", "1", "--guidance_surrogate",
                        "jpeg_compressibility=toy_smoothness"], batch_size=8, table5=(2, 0))


def sd_world(args: argparse.Namespace) -> World:
    if not args.lora or not args.rewards:
        raise SystemExit("error: --world sd needs --lora NAME=PATH per basis adapter and --rewards (one per adapter, "
                         "in the same order), e.g. --lora t2i=ckpt/ir --lora vila=ckpt/vila --rewards image_reward,vila")
    adapters = [tuple(x.split("=", 1)) for x in args.lora]
    rewards = args.rewards.split(",")
    if len(rewards) != len(adapters):
        raise SystemExit(f"error: {len(adapters)} adapters but {len(rewards)} rewards; adapter i is trained on reward i")
    comp = next((i for i, r in enumerate(rewards) if "jpeg" in r or "compress" in r), None)
    return World("sd", args.base_model or "runwayml/stable-diffusion-v1-5", adapters, rewards,
                 args.prompt_file or "db:short_drawbench_1k", 50, 7.5, args.n_seeds or 1,
                 oracles=dict(x.split("=", 1) for x in args.oracle),
                 kla_oracles={float(k): v for k, v in (x.split("=", 1) for x in args.kla_oracle)},
                 extra=shlex.split(args.extra or ""), batch_size=args.batch_size or 8,
                 table5=None if comp is None else (comp, 0 if comp != 0 else 1))


# ----------------------------------------------------------------------------------------------- running


def run_db(world: World, out: Path, methods: str, adapters: list[tuple[str, str]], rewards: list[str],
           weights: list[tuple[float, ...]], launcher: str, extra: list[str] = (), oracles: dict | None = None,
           budget: bool = True) -> list[dict]:
    """One run_DB.py call (resumable: it skips finished images); returns its result rows."""
    argv = ["--base_model", world.base_model, "--rewards", ",".join(rewards), "--prompt_file", world.prompts,
            "--steps", str(world.steps), "--guidance", str(world.guidance), "--eta", "1",
            "--n_seeds", str(world.n_seeds), "--batch_size", str(world.batch_size), "--no_grids",
            "--methods", methods, "--out_dir", str(out)]
    for name, path in adapters:
        argv += ["--lora", f"{name}={path}"]
    if weights:
        argv += ["--weights", ";".join(",".join(f"{x:g}" for x in w) for w in weights)]
    for w, path in (oracles or {}).items():
        argv += ["--oracle", f"{w}={path}"]
    for r in rewards:
        if r in world.scales:
            argv += ["--reward_scale", f"{r}={world.scales[r]}"]
    if budget:
        argv += ["--budget", "auto"]
    argv += [*world.extra, *extra]
    log.info("run_DB.py %s", " ".join(shlex.quote(a) for a in argv))
    if launcher:
        cmd = [*shlex.split(launcher), str(REPO / "run_DB.py"), *argv]
        subprocess.run(cmd, check=True, cwd=REPO)
    else:
        from blend.cli import main

        if main(argv) != 0:
            raise SystemExit(f"run_DB.py failed for {out}")
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def method_key(row: dict) -> str:
    return "oracle" if row.get("role") == "oracle" else row["method"]


def scaled(row: dict, world: World, rewards: list[str]) -> list[float]:
    return [row["rewards"][r] / world.scales.get(r, 1.0) for r in rewards]


def wr(row: dict, world: World, rewards: list[str], w: tuple[float, ...]) -> float:
    return sum(wi * v for wi, v in zip(w, scaled(row, world, rewards)))


def group(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["config"], []).append(r)
    return out


def cost_cells(rs: list[dict]) -> list[str]:
    n = len(rs)
    secs = sum(r["seconds"] for r in rs) / n
    costs = [sum((r.get("costs") or {}).get(k, 0) for r in rs) / n for k in COST_KEYS]
    return [f"{secs:.3f}"] + [f"{c:.0f}" for c in costs]


def pm(values: list[float], digits: int = 2) -> str:
    m, s = mean_se(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


# ----------------------------------------------------------------------------------------------- writing


def md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]


def write_tables(out: Path, title: str, head: list[str], rows: list[list[str]], note: str, more_md: str = "") -> None:
    md = [f"### {title}", "", *md_table(head, rows)]
    write_text_atomic(out / "table.md", "\n".join(md) + "\n\n" + note + "\n" + (f"\n{more_md}\n" if more_md else ""))

    def tex(s: str) -> str:
        return (s.replace("\\", "\\textbackslash{}").replace("±", "$\\pm$").replace("_", "\\_").replace("%", "\\%")
                .replace("Δ", "$\\Delta$").replace("λ", "$\\lambda$").replace("∇", "$\\nabla$").replace("&", "\\&")
                .replace("·", "$\\cdot$").replace("≤", "$\\le$"))

    lines = ["% " + note.replace("\n", " "), "\\begin{table}[t]", "\\centering", f"\\caption{{{tex(title)}}}",
             "\\begin{tabular}{l" + "r" * (len(head) - 1) + "}", "\\toprule", " & ".join(tex(h) for h in head) + " \\\\",
             "\\midrule"]
    lines += [" & ".join(tex(c) for c in r) + " \\\\" for r in rows]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    write_text_atomic(out / "table.tex", "\n".join(lines) + "\n")


def save_plot(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


COST_HEAD = ["s / img", "UNet fwd", "UNet bwd", "decodes", "reward evals", "reward ∇"]


# ----------------------------------------------------------------------------------------------- sweeps


def weighted_table(world: World, out: Path, launcher: str, reward_idx: tuple[int, int], title: str,
                   extra_bon: bool) -> None:
    """Table 1 / Table 5: WR(w) = w·r_a + (1 − w)·r_b for every method at equal cost."""
    a, b = reward_idx
    adapters = [world.adapters[a], world.adapters[b]]
    rewards = [world.rewards[a], world.rewards[b]]
    oracles = world.oracles if reward_idx == (0, 1) else {}
    methods = "base,soup_factors,soup,code,rgg,smc,bon,mpa,mpa_ls" + (",oracle" if oracles else "")
    rows = run_db(world, out / "equal_cost", methods, adapters, rewards, list(WEIGHTS_T1), launcher, oracles=oracles)
    if extra_bon:  # best-of-N over DB's own samplers at twice DB-MPA's cost (at equal cost N would be 1)
        for method, n in (("bon_mpa", 2), ("bon_ls", 4)):
            rows += run_db(world, out / method, method, adapters, rewards, list(WEIGHTS_T1), launcher,
                           extra=["--bon_n", str(n)], budget=False)
    groups = group(rows)
    order = ["base", "soup_factors", "soup", "code", "rgg", "smc", "bon", "mpa", "mpa_ls", "bon_mpa", "bon_ls",
             "oracle"]

    def matching(key: str, w: tuple[float, ...]) -> list[dict] | None:
        """The rows of method ``key`` at weight w (the base model serves every w; oracles by their target)."""
        target = "w=(" + ",".join(f"{x:g}" for x in w) + ")"
        return next((rs for rs in groups.values() if method_key(rs[0]) == key and (
            key == "base" or tuple(rs[0]["weights"]) == w or key == "oracle" and rs[0].get("targets") == target)),
            None)

    table, plot, keys = [], {}, []
    for key in order:
        cfgs = [rs for rs in groups.values() if method_key(rs[0]) == key]
        if not cfgs:
            continue
        keys.append(key)
        cells, costs = [], None
        for w in WEIGHTS_T1:
            rs = matching(key, w)
            if not rs:
                cells.append("–")
                continue
            vals = [wr(r, world, rewards, w) for r in rs]
            cells.append(pm(vals))
            plot.setdefault(NAMES[key], []).append((w[0], mean_se(vals)))
            costs = costs or cost_cells(rs)
        size = cfgs[-1][0].get("options") or {}
        label = NAMES[key] + (" (" + ", ".join(f"{k}={v}" for k, v in size.items() if k in ("N", "K", "B")) + ")"
                              if any(k in size for k in ("N", "K", "B")) else "")
        table.append([label, *cells, *(costs or ["–"] * len(COST_HEAD))])
    paired = []  # Δ WR vs DB-MPA, image by image (same prompt and seed → same noise)
    mpa = {tuple(rs[0]["weights"]): {(r["prompt_index"], r["seed"]): r for r in rs}
           for rs in groups.values() if method_key(rs[0]) == "mpa"}
    for row, key in zip(table, keys):
        cells = []
        for w in WEIGHTS_T1:
            ref, rs = mpa.get(w), matching(key, w)
            if not ref or not rs or key == "mpa":
                cells.append("—")
                continue
            d = [wr(r, world, rewards, w) - wr(ref[(r["prompt_index"], r["seed"])], world, rewards, w) for r in rs
                 if (r["prompt_index"], r["seed"]) in ref]
            cells.append(pm(d, 3))
        paired.append([row[0], *cells])
    more = "\n".join(["#### Δ WR against DB-MPA at the same w (paired by prompt and seed; mean ± s.e.)", "",
                      *md_table(["method", *[f"Δ WR w={w[0]:g}" for w in WEIGHTS_T1]], paired)]) if mpa else ""
    head = ["method", *[f"WR w={w[0]:g}" for w in WEIGHTS_T1], *COST_HEAD]
    used_scales = {r: world.scales[r] for r in rewards if r in world.scales}
    note = (f"World {world.name}: {world.base_model}, prompts {Path(world.prompts).name}, {world.n_seeds} seeds per "
            f"prompt, {world.steps} DDIM steps (η = 1), guidance {world.guidance:g}. WR = w·{rewards[0]}/s + "
            f"(1 − w)·{rewards[1]}/s (s = 1 unless scaled: {used_scales or 'none'}); mean ± s.e. over images. "
            "Baselines sized to DB-MPA's UNet evaluations per image (--budget auto); costs per image: UNet forwards, "
            "UNet backwards, VAE decodes, reward evaluations and reward gradients inside the sampler; seconds are wall "
            "time on the machine as it was (shared machines make them noisy). "
            + ("Best-of-N over DB-MPA (N = 2) and over DB-MPA-LS (N = 4) run at twice DB-MPA's cost. " if extra_bon
               else "") + f"Extra flags: {' '.join(world.extra)}")
    write_tables(out, title, head, table, note, more)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, pts in plot.items():
        ax.errorbar([p[0] for p in pts], [p[1][0] for p in pts], yerr=[p[1][1] for p in pts], marker="o", capsize=2,
                    label=name)
    ax.set_xlabel(f"w (weight on {rewards[0]})")
    ax.set_ylabel("weighted reward WR (± s.e.)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_plot(fig, out / "plot.png")


def sweep_table1(world: World, out: Path, launcher: str) -> None:
    weighted_table(world, out, launcher, (0, 1), f"Table 1 ({world.name}): WR at w = 0.2 / 0.5 / 0.8", True)


def sweep_table5(world: World, out: Path, launcher: str) -> None:
    """Compressibility (r1) against a second reward (r2), the paper's second conflict (there: JPEG vs VILA);
    the pair is ``world.table5`` and w is the weight on compressibility."""
    if world.table5 is None:
        raise SystemExit(f"error: table5 needs a compressibility reward (e.g. jpeg_compressibility) among --rewards "
                         f"{','.join(world.rewards)}, with its adapter")
    comp, other = world.table5
    weighted_table(world, out, launcher, (comp, other),
                   f"Table 5 ({world.name}): {world.rewards[comp]} vs {world.rewards[other]}", False)


def sweep_m34(world: World, out: Path, launcher: str) -> None:
    """Δr_i = r_i − r_i(base) per reward, uniform weights, m = 3 and m = 4 (Fig. 7, Table 6)."""
    table, plot = [], {}
    for m in (3, 4):
        if len(world.adapters) < m:
            raise SystemExit(f"error: the m = {m} sweep needs {m} adapters, the world has {len(world.adapters)}")
        adapters, rewards = world.adapters[:m], world.rewards[:m]
        w = tuple([round(1 / m, 6)] * (m - 1) + [round(1 - (m - 1) * round(1 / m, 6), 6)])
        rows = run_db(world, out / f"m{m}", "base,soup,code,rgg,mpa,mpa_ls", adapters, rewards, [w], launcher)
        groups = group(rows)
        base = {(r["prompt_index"], r["seed"]): scaled(r, world, rewards) for r in groups["base"]}
        for rs in groups.values():
            key = method_key(rs[0])
            if key == "base":
                continue
            deltas = [[scaled(r, world, rewards)[i] - base[(r["prompt_index"], r["seed"])][i] for r in rs]
                      for i in range(m)]
            cells = [pm(d) for d in deltas] + ["–"] * (4 - m)
            table.append([f"m = {m}", NAMES[key], *cells, *cost_cells(rs)])
            plot.setdefault(NAMES[key], {})[m] = [mean_se(d)[0] for d in deltas]
    head = ["m", "method", *[f"Δr{i + 1}" for i in range(4)], *COST_HEAD]
    note = (f"World {world.name}: rewards r1..r4 = {', '.join(world.rewards[:4])} (divided by {world.scales or 'nothing'}"
            "), uniform weights; Δr_i = r_i − r_i of the base model for the same prompt and seed, mean ± s.e. (paired).")
    write_tables(out, f"m = 3 and m = 4 rewards ({world.name}): Δr per reward vs the base model", head, table, note)
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for ax, m in zip(axes, (3, 4)):
        names = [n for n in plot if m in plot[n]]
        width = 0.8 / max(1, len(names))
        for j, n in enumerate(names):
            ax.bar([i + j * width for i in range(m)], plot[n][m], width, label=n)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(m)], [f"r{i + 1}" for i in range(m)])
        ax.set_title(f"m = {m}")
        ax.axhline(0, color="k", lw=0.5)
    axes[0].set_ylabel("Δr vs base (scaled)")
    axes[1].legend(fontsize=7)
    save_plot(fig, out / "plot.png")


def sweep_kla(world: World, out: Path, launcher: str, lambdas=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)) -> None:
    """DB-KLA on adapter 0 over a λ grid, against λ-specific checkpoints (adapter 0 retrained with KL/λ)."""
    adapter, reward = world.adapters[0], world.rewards[0]
    rows = run_db(world, out / "run", "base,single,kla", [adapter], [reward], [], launcher,
                  extra=["--lambdas", ",".join(f"{x:g}" for x in lambdas if x != 1.0)], budget=False)
    o_rows = []
    for lam, path in sorted(world.kla_oracles.items()):
        rs = run_db(world, out / f"oracle_lam{lam:g}", "single", [(f"lam{lam:g}".replace(".", "p"), path)], [reward],
                    [], launcher, budget=False)
        o_rows.append((lam, rs))
    groups = group(rows)
    curve = []
    for rs in groups.values():
        key = rs[0]["method"]
        lam = 0.0 if key == "base" else 1.0 if key == "single" else rs[0]["lam"]
        curve.append((lam, [scaled(r, world, [reward])[0] for r in rs], rs))
    curve.sort(key=lambda c: c[0])
    table = [["DB-KLA" if 0 < lam != 1 else ("base (λ = 0)" if lam == 0 else "adapter (λ = 1)"), f"{lam:g}", pm(v),
              *cost_cells(rs)] for lam, v, rs in curve]
    table += [[f"λ-specific model (KL/{lam:g})", f"{lam:g}", pm([scaled(r, world, [reward])[0] for r in rs]),
               *cost_cells(rs)] for lam, rs in o_rows]
    head = ["model", "λ", reward, *COST_HEAD]
    note = f"World {world.name}: DB-KLA ε = (1 − λ) ε_pre + λ ε_ft on {adapter[0]}; mean ± s.e. over images."
    write_tables(out, f"DB-KLA ({world.name}) against λ-specific models", head, table, note)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar([c[0] for c in curve], [mean_se(c[1])[0] for c in curve], yerr=[mean_se(c[1])[1] for c in curve],
                marker="o", capsize=2, label="DB-KLA")
    ax.errorbar([lam for lam, _ in o_rows], [mean_se([scaled(r, world, [reward])[0] for r in rs])[0] for _, rs in o_rows],
                yerr=[mean_se([scaled(r, world, [reward])[0] for r in rs])[1] for _, rs in o_rows], fmt="s",
                capsize=2, label="λ-specific model")
    ax.set_xlabel("λ")
    ax.set_ylabel(reward)
    ax.grid(alpha=0.3)
    ax.legend()
    save_plot(fig, out / "plot.png")


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points (both coordinates maximised), sorted by the first."""
    front = [p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)]
    return sorted(set(front))


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``points`` and dominating ``ref`` (2-D, both maximised)."""
    front = [p for p in pareto_front(points) if p[0] > ref[0] and p[1] > ref[1]]
    area, prev_y = 0.0, ref[1]
    for x, y in sorted(front, key=lambda p: -p[0]):  # sweep from the largest x
        if y > prev_y:
            area += (x - ref[0]) * (y - prev_y)
            prev_y = y
    return area


def sweep_pareto(world: World, out: Path, launcher: str, grid: int = 11) -> None:
    """Mean (r1, r2) of every method over w ∈ {0, 1/(grid−1), …, 1}, each method's front and its hypervolume."""
    ws = [(round(i / (grid - 1), 4), round(1 - i / (grid - 1), 4)) for i in range(grid)]
    adapters, rewards = world.adapters[:2], world.rewards[:2]
    rows = run_db(world, out / "run", "base,soup,code,rgg,mpa,mpa_ls", adapters, rewards, ws, launcher)
    pts: dict[str, list[tuple[float, float]]] = {}
    base = None
    for rs in group(rows).values():
        key = method_key(rs[0])
        p = tuple(mean_se([scaled(r, world, rewards)[i] for r in rs])[0] for i in range(2))
        if key == "base":
            base = p
        else:
            pts.setdefault(NAMES[key], []).append(p)
    everything = [p for v in pts.values() for p in v] + ([base] if base else [])
    ref = (min(p[0] for p in everything), min(p[1] for p in everything))
    table = [[name, str(len(p)), f"{hypervolume(p, ref):.4f}", str(len(pareto_front(p)))] for name, p in pts.items()]
    note = (f"World {world.name}: w grid of {grid} points on [0, 1]; each point is a method's mean ({rewards[0]}, "
            f"{rewards[1]}) (scaled by {world.scales or 'nothing'}). Hypervolume of each method's non-dominated points "
            f"with the reference point ({ref[0]:.4f}, {ref[1]:.4f}) = the component-wise minimum over all methods' "
            "points and the base model (so every point counts).")
    write_tables(out, f"Pareto fronts ({world.name}): hypervolume per method", ["method", "points", "hypervolume",
                                                                               "front size"], table, note)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for name, p in pts.items():
        ax.plot([q[0] for q in p], [q[1] for q in p], "o", ms=3, alpha=0.5)
        f = pareto_front(p)
        ax.plot([q[0] for q in f], [q[1] for q in f], "-", label=f"{name} (HV {hypervolume(p, ref):.3f})",
                color=ax.lines[-1].get_color())
    if base:
        ax.plot(*base, "k*", ms=10, label="base")
    ax.plot(*ref, "kx", label="reference point")
    ax.set_xlabel(rewards[0])
    ax.set_ylabel(rewards[1])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_plot(fig, out / "plot.png")


SWEEPS = {"table1": sweep_table1, "table5": sweep_table5, "m34": sweep_m34, "kla": sweep_kla, "pareto": sweep_pareto}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", choices=sorted(SWEEPS))
    p.add_argument("--world", choices=["toy", "sd", "tiny"], default="toy")
    p.add_argument("--out", default=None, help="output root [default: outputs/sweeps/<world>]")
    p.add_argument("--n_seeds", type=int, default=None, help="seeds per prompt [toy: 4; sd: 1; tiny: 1]")
    p.add_argument("--prompt_file", default=None, help="prompts [sd: db:short_drawbench_1k; toy: held-out toy set]")
    p.add_argument("--base_model", default=None, help="sd: the base model [runwayml/stable-diffusion-v1-5]")
    p.add_argument("--lora", action="append", default=[], metavar="NAME=PATH", help="sd: basis adapter i (reward i)")
    p.add_argument("--rewards", default=None, help="sd: one reward per adapter, comma-separated")
    p.add_argument("--oracle", action="append", default=[], metavar="W=PATH", help="sd: MORL oracle for w")
    p.add_argument("--kla_oracle", action="append", default=[], metavar="LAMBDA=PATH",
                   help="sd: adapter 0 retrained with KL weight / λ")
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--extra", default=None, help="more run_DB.py flags, quoted (e.g. surrogates, --batched)")
    p.add_argument("--launcher", default="", help="run each run_DB.py through this, e.g. 'accelerate launch'")
    p.add_argument("--pareto_grid", type=int, default=11, help="pareto: number of w values on [0, 1]")
    args = p.parse_args(argv)
    out_root = Path(args.out or REPO / "outputs" / "sweeps" / args.world)
    out = out_root / args.sweep
    setup_logging(log_file=out / "sweep.log")
    if args.world == "toy":
        world = toy_world(args.n_seeds or 4)
        if args.prompt_file:
            world.prompts = args.prompt_file
    elif args.world == "tiny":
        world = tiny_world(out_root, args.n_seeds or 1, args.prompt_file or "")
        if not args.prompt_file:
            raise SystemExit("error: --world tiny needs --prompt_file (a JSON list of prompts)")
    else:
        world = sd_world(args)
    if args.extra and args.world != "sd":
        world.extra += shlex.split(args.extra)
    if args.sweep == "pareto":
        sweep_pareto(world, out, args.launcher, args.pareto_grid)
    else:
        SWEEPS[args.sweep](world, out, args.launcher)
    print((out / "table.md").read_text())
    log.info("wrote %s, %s and %s", out / "table.md", out / "table.tex", out / "plot.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
