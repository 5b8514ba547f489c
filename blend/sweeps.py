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

    # tables and plots again from the stored rows, without sampling (errors if rows are missing)
    python scripts/paper_sweeps.py table1 --world toy --n_seeds 2 --report_only

Every sweep writes ``<out>/<sweep>/table.md``, ``table.tex``, ``table.json`` (every estimate), ``plot.png``
and ``plot.pdf`` (and keeps each run_DB output folder under it, so re-running resumes). Worlds: ``toy`` (the
committed toy weights; CPU), ``sd`` (paths on the command line), ``tiny`` (random adapters on
``builtin:tiny``, for tests). Baselines run at equal cost (``--budget auto``: DB-MPA's m·T UNet evaluations
per image) and the tables carry seconds and costs per image.

Tables are built only from the rows each run_DB call asks for (its configs, prompts, seeds, sampler, rewards,
scales and adapters; :func:`select_rows`), so rows of other settings in the same folder never leak in.
Standard errors and paired differences come from :mod:`blend.stats`: cluster-robust over the design's unit
(by prompt with run_DB's default per-(prompt, seed) noise; two-way by prompt and seed with ``--noise
per_seed``), differences paired image by image (same prompt and seed, so the same noise) with a 95 %
Student-t interval and a p-value on (clusters − 1) degrees of freedom.

The command is ``scripts/paper_sweeps.py`` (this module's :func:`main`); ``scripts/paper/<sweep>.sh`` runs each
sweep with the paper's settings (docs/usage.md).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from blend import stats, styles
from blend.methods import baseline_names, get_method, lam_method, list_methods, reference_method
from blend.methods.base import Base
from blend.methods.single import ORACLE_ROLE, Oracle, Single, family
from dbcore import figures
from dbcore.io import write_json_atomic, write_text_atomic
from dbcore.logging import get_logger, setup_logging

REPO = Path(__file__).resolve().parents[1]

log = get_logger("paper_sweeps")
WEIGHTS_T1 = ((0.2, 0.8), (0.5, 0.5), (0.8, 0.2))
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # the maintained copy of runwayml's deleted id (diffusion.loading)
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
    # scored reward -> the reward the reward-using baselines select or guide with (run_DB.py --guide_rewards):
    # evaluation on a held-out judge, guidance on the training judge
    guide: dict[str, str] = field(default_factory=dict)
    batch_size: int = 8
    # Table 5's pair (indices into adapters/rewards): (compressibility = r1, the second reward = r2); WR's w is the
    # weight on r1. None: the world has no compressibility reward.
    table5: tuple[int, int] | None = None


def gamma_for(steps: int, gamma50: float = 0.024) -> float:
    """Tempering γ that reaches λ = 1 at the same fraction of the trajectory as γ = 0.024 at 50 steps."""
    return round((1 + gamma50) ** (50 / steps) - 1, 4)


def extra_reward_scales(path: Path, rewards: tuple[str, ...]) -> dict[str, float]:
    """σ of each reward over toy base samples, read from ``path`` (written by ``python -m toy.stats``)."""
    if not path.is_file():
        raise SystemExit(f"error: {path} is missing; make it (and the extra adapters) with "
                         f"`bash scripts/train_extra_toy_adapters.sh`")
    stats = json.loads(path.read_text(encoding="utf-8"))
    return {r: float(stats[r]["std"]) for r in rewards}


def toy_world(n_seeds: int) -> World:
    w = REPO / "toy" / "weights"
    extra_dir = w / "adapters"
    return World(
        "toy", "builtin:toy",
        [("alignment", str(extra_dir / "alignment")), ("compressibility", str(extra_dir / "compressibility")),
         ("colorfulness", str(extra_dir / "colorfulness")), ("brightness", str(extra_dir / "brightness"))],
        ["toy_align_heldout_z", "toy_jpeg_capped_z", "colorfulness", "brightness"],
        str(REPO / "dataset" / "toy_test_prompts.json"), 10, 2.0, n_seeds,
        oracles={f"{a:g},{1 - a:g}": str(w / "oracles" / f"w{a:g}" / "seed0") for a in (0.2, 0.5, 0.8)},
        kla_oracles={0.5: str(w / "oracles_kl" / "lam0.5" / "seed0"), 2.0: str(w / "oracles_kl" / "lam2" / "seed0")},
        # σ of colourfulness and brightness over the toy base model's samples on the toy sampler, measured when their
        # adapters were trained (scripts/train_extra_toy_adapters.sh)
        scales=extra_reward_scales(extra_dir / "extra_reward_stats.json", ("colorfulness", "brightness")),
        extra=["--rgg_gamma", str(gamma_for(10))],
        guide={"toy_align_heldout_z": "toy_align_z", "toy_jpeg_capped_z": "toy_smoothness_capped_z"},
        batch_size=48,
        # JPEG compressibility vs colourfulness: the toy analogue of the paper's compressibility vs VILA
        table5=(1, 2))


def tiny_world(out: Path, n_seeds: int, prompts: str) -> World:
    """builtin:tiny with four random adapters and random oracles (a smoke test of every sweep); 4 steps, the fewest
    at which RGG fits DB-MPA's budget (m·T forward-equivalents)."""
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
                 ["brightness", "colorfulness", "toy_smoothness", "jpeg_compressibility"], prompts, 4, 5.0, n_seeds,
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
    return World("sd", args.base_model or SD15, adapters, rewards,
                 args.prompt_file or "db:short_drawbench_1k", 50, 7.5, args.n_seeds or 1,
                 oracles=dict(x.split("=", 1) for x in args.oracle),
                 kla_oracles={float(k): v for k, v in (x.split("=", 1) for x in args.kla_oracle)},
                 extra=shlex.split(args.extra or ""), batch_size=args.batch_size or 8,
                 table5=None if comp is None else (comp, 0 if comp != 0 else 1))


# ----------------------------------------------------------------------------------------------- running


@dataclass
class Runner:
    """How a sweep gets its rows: run_DB.py (through ``launcher`` if given), or only the stored rows."""

    launcher: str = ""
    report_only: bool = False


def db_argv(world: World, out: Path, methods: str, adapters: list[tuple[str, str]], rewards: list[str],
            weights: list[tuple[float, ...]], extra: list[str] = (), oracles: dict | None = None,
            budget: bool = True) -> list[str]:
    """The run_DB.py command line of one sweep step."""
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
    # only a step that runs a reward-using baseline names what it guides with (run_DB.py refuses it otherwise)
    if any(r in world.guide for r in rewards) and set(methods.split(",")) & set(baseline_names()):
        argv += ["--guide_rewards", ",".join(world.guide.get(r, r) for r in rewards)]
    return [*argv, *world_flags(world.extra, rewards), *extra]


def world_flags(flags: list[str], rewards: list[str]) -> list[str]:
    """The world's extra run_DB.py flags for one step: a ``--guidance_surrogate R=S`` of a reward R that this step
    does not score is left out (run_DB.py refuses a surrogate it would ignore); everything else is kept as is."""
    out, i = [], 0
    while i < len(flags):
        if flags[i] == "--guidance_surrogate" and i + 1 < len(flags) and flags[i + 1].split("=")[0] not in rewards:
            i += 2
            continue
        out.append(flags[i])
        i += 1
    return out


def run_db(world: World, out: Path, methods: str, adapters: list[tuple[str, str]], rewards: list[str],
           weights: list[tuple[float, ...]], runner: Runner, extra: list[str] = (), oracles: dict | None = None,
           budget: bool = True) -> list[dict]:
    """One run_DB.py call (resumable: it skips finished images; skipped with ``--report_only``); returns the rows
    this call asks for (:func:`select_rows`)."""
    argv = db_argv(world, out, methods, adapters, rewards, weights, extra, oracles, budget)
    if runner.report_only:
        log.info("report only: reading the stored rows of %s", out)
    elif runner.launcher:
        log.info("run_DB.py %s", " ".join(shlex.quote(a) for a in argv))
        subprocess.run([*shlex.split(runner.launcher), str(REPO / "run_DB.py"), *argv], check=True, cwd=REPO)
    else:
        from blend.cli import main

        log.info("run_DB.py %s", " ".join(shlex.quote(a) for a in argv))
        if main(argv) != 0:
            raise SystemExit(f"run_DB.py failed for {out}")
    return select_rows(argv, world, adapters, rewards, weights, oracles or {})


def _content_sha256(path: str) -> str | None:
    """The content hash run_DB.py records for a LoRA at ``path`` (``diffusion.lora.read_lora``); None for a path
    that is not local (a hub id) or a format that needs the model to be read (e.g. kohya text-encoder parts)."""
    from diffusion.lora import read_lora

    if not Path(path).expanduser().exists():
        return None
    try:
        return read_lora(Path(path).expanduser()).sha256
    except Exception:  # noqa: BLE001 - any other format: compare paths instead
        return None


def _same_adapter(record: dict, asked: str, content: str | None) -> bool:
    """Whether an adapter record of a row is the asked adapter: the same content hash (``content``) where the
    adapter can be read without the model (so rows written from another checkout of the same weights count, and
    rows of an adapter since retrained in place do not), else the same file; a hub id cannot be checked here and
    counts."""
    if content is not None:
        return record.get("sha256") == content
    if not Path(asked).expanduser().exists():
        return True
    if not record.get("path"):
        return False
    rec, ask = Path(record["path"]).expanduser().resolve(), Path(asked).expanduser().resolve()
    return rec == ask or ask in rec.parents


def select_rows(argv: list[str], world: World, adapters: list[tuple[str, str]], rewards: list[str],
                weights: list[tuple[float, ...]], oracles: dict[str, str]) -> list[dict]:
    """The stored rows that the run_DB.py call ``argv`` asks for, with ``prompt_index`` = the prompt's place in
    this sweep's prompt list.

    A row counts when its config is one of the call's (``blend.run_plan.build_specs``; oracles by their target w and
    adapter), its prompt and seed are asked for, its sampler settings (steps, guidance, η, batched, dtype,
    scheduler, noise, LS draw, no weight schedule unless asked), its rewards and reward scales are the call's, and
    its adapters are the asked ones (``_same_adapter``). Rows of other settings in the same folder are left
    out. A missing row, or two different rows for one (config, prompt, seed), is an error naming them.
    """
    from blend.cli import build_parser
    from blend.run_plan import build_specs, guide_reward_names, parse_lambdas
    from blend.store import ResultStore
    from dbcore.prompts import load_prompts

    args = build_parser().parse_args(argv)
    out = Path(args.out_dir)
    prompts = load_prompts(args.prompt_file)
    pos = {p: i for i, p in enumerate(prompts)}
    seeds = range(args.seed_offset, args.seed_offset + args.n_seeds)
    scales = {r: world.scales.get(r, 1.0) for r in rewards}
    lambdas = parse_lambdas(args.lambdas)
    scaled = any(r in world.scales for r in rewards)
    guide = guide_reward_names(args, rewards)  # the baselines' configs are named by what they guide with
    specs = build_specs(args.methods, [n for n, _ in adapters], list(weights), lambdas, [], False, rewards, args,
                        args.steps, scales if scaled else None, guide_rewards=guide,
                        guide_scales=dict(zip(guide, scales.values())) if scaled else None)
    paths = dict(adapters)
    slots = [s.label for s in specs]
    targets = {}
    if Oracle.name in args.methods.split(","):
        for w, path in oracles.items():
            targets["w=(" + ",".join(f"{float(x):g}" for x in w.split(",")) + ")"] = path
            slots.append("oracle " + list(targets)[-1])

    hashes = {path: _content_sha256(path) for path in [*paths.values(), *targets.values()]}

    def slot_of(r: dict) -> str | None:
        if r.get("role") == ORACLE_ROLE:
            t = r.get("targets")
            ok = t in targets and all(_same_adapter(a, targets[t], hashes[targets[t]]) for a in r["adapters"])
            return "oracle " + t if ok else None
        if r["config"] not in slots:
            return None
        ok = all(a["name"] in paths and _same_adapter(a, paths[a["name"]], hashes[paths[a["name"]]])
                 for a in r["adapters"])
        return r["config"] if ok else None

    def settings_match(r: dict) -> bool:
        return (r.get("prompt") in pos and r.get("seed") in seeds and r.get("steps") == args.steps
                and math.isclose(r.get("guidance", math.nan), args.guidance) and math.isclose(r.get("eta", math.nan),
                                                                                            args.eta)
                and bool(r.get("batched")) == args.batched and r.get("dtype", "float32") == args.dtype
                and r.get("scheduler", "ddim") == args.scheduler and r.get("noise", "per_seed") == args.noise
                and r.get("ls_draw") == args.ls_draw and (r.get("schedule") is None or bool(args.weights_end))
                and set(r.get("rewards") or {}) == set(rewards)
                and all(math.isclose((r.get("reward_scales") or {}).get(k, 1.0), v) for k, v in scales.items()))

    if not out.is_dir():
        raise SystemExit(f"error: {out} does not exist: no rows stored for this sweep yet; run the same command "
                         "without --report_only to sample them")
    keyed, legacy = ResultStore(out).load()
    found: dict[tuple[str, int, int], dict] = {}
    for r in [*legacy, *keyed.values()]:
        if not settings_match(r):
            continue
        slot = slot_of(r)
        if slot is None:
            continue
        key = (slot, pos[r["prompt"]], r["seed"])
        if key in found and found[key].get("sample_key") != r.get("sample_key"):
            raise SystemExit(f"error: {out} holds two different rows for config {slot}, prompt {r['prompt']!r}, seed "
                             f"{r['seed']} with the same settings (an adapter was retrained in place?); sweep into a "
                             "fresh --out")
        found[key] = {**r, "prompt_index": pos[r["prompt"]]}
    want = len(prompts) * len(seeds)
    counts = {s: sum(1 for k in found if k[0] == s) for s in slots}
    missing = {s: n for s, n in counts.items() if n < want}
    if missing:
        listed = ", ".join(f"{s}: {n} of {want}" for s, n in list(missing.items())[:6])
        raise SystemExit(f"error: {out} lacks rows this sweep asks for ({len(missing)} of {len(slots)} configs "
                         f"incomplete: {listed}{' …' if len(missing) > 6 else ''}); run the same sweep command "
                         "(without --report_only) to sample them")
    order = {s: i for i, s in enumerate(slots)}
    return [found[k] for k in sorted(found, key=lambda k: (order[k[0]], k[1], k[2]))]


def method_key(row: dict) -> str:
    """The row's method in the tables: the MORL oracle for role oracle, else its method (``blend.methods``)."""
    return family(row["method"], row.get("role", ""))


def table_name(key: str) -> str:
    """A method's name in the tables (``blend.methods``: its short name, else its display name)."""
    m = get_method(key)
    return m.short_name or m.display_name


def scaled(row: dict, world: World, rewards: list[str]) -> list[float]:
    """The row's rewards divided by the world's scales; a non-finite score (stored as null) is nan."""
    return [math.nan if row["rewards"][r] is None else row["rewards"][r] / world.scales.get(r, 1.0) for r in rewards]


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


# ----------------------------------------------------------------------------------------------- statistics


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def est(rows: list[dict], value, unit: str) -> stats.Estimate:
    """Mean of ``value(row)`` with its standard error over ``unit`` (``blend.stats``); non-finite values (stored
    as null) are left out, never averaged."""
    keep = [r for r in rows if _finite(value(r))]
    if not keep:
        return stats.Estimate(math.nan, math.nan, 0, 0, unit)
    return stats.row_estimate(keep, value, unit)


def paired_est(rows_a: list[dict], rows_b: list[dict], value_a, value_b=None, unit: str = "prompt") \
        -> stats.Estimate | None:
    """value_a(a) − value_b(b) image by image over the (prompt, seed) pairs both have, clustered over ``unit``."""
    value_b = value_b or value_a
    return stats.paired([r for r in rows_a if _finite(value_a(r))], [r for r in rows_b if _finite(value_b(r))],
                        value_a, value_b, unit=unit)


def pm(e: stats.Estimate, digits: int = 2) -> str:
    se = f"{e.se:.{digits}f}" if math.isfinite(e.se) else "n/a"
    return f"{e.mean:.{digits}f} ± {se}"


def delta_cell(e: stats.Estimate | None, digits: int = 3) -> str:
    """A paired difference: mean ± s.e. [95 % interval], p."""
    if e is None:
        return "—"
    lo, hi = e.ci()
    ci = f" [{lo:+.{digits}f}, {hi:+.{digits}f}]" if math.isfinite(lo) else ""
    se = f"{e.se:.{digits}f}" if math.isfinite(e.se) else "n/a"
    return f"{e.mean:+.{digits}f} ± {se}{ci}, p {stats.fmt_p(e.p_value)}"


def est_json(e: stats.Estimate | None) -> dict | None:
    """An estimate as strict JSON (nan → null)."""
    if e is None:
        return None
    d = e.to_dict()
    clean = lambda v: v if not isinstance(v, float) or math.isfinite(v) else None  # noqa: E731
    return {k: [clean(x) for x in v] if isinstance(v, list) else clean(v) for k, v in d.items()}


def unit_caption(unit: str, rows: list[dict]) -> str:
    """What the ± means in every table of a sweep."""
    n = {"prompt": len({r["prompt_index"] for r in rows}), "seed": len({r["seed"] for r in rows})}
    clusters = (f"{n[unit]} clusters" if unit in n else
                f"{n['prompt']} prompt and {n['seed']} seed clusters" if unit == "prompt+seed" else f"{len(rows)} images")
    return (f"Mean ± s.e. over {clusters}: {stats.describe_unit(unit, rows)}. Δ = paired differences image by image "
            "(the same prompt and seed, hence the same noise), clustered the same way, with the 95 % interval "
            "(Student's t, df = clusters − 1) and the two-sided p-value of Δ = 0.")


SECONDS_NOTE = ("Seconds per image are wall time (a batch's time over its images) on the machine as it was: shared "
                "machines make them noisy, so compare them only roughly; the cost columns are exact counts.")


# ----------------------------------------------------------------------------------------------- writing


def md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]


def write_tables(out: Path, title: str, head: list[str], rows: list[list[str]], note: str, more_md: str = "",
                 data: dict | None = None) -> None:
    """table.md (the tables and the note), table.tex (each table through ``figures.markdown_to_latex``, the note
    as caption) and table.json (``data``: every estimate of the tables)."""
    md = "\n".join([f"### {title}", "", *md_table(head, rows)]) + "\n\n" + note + "\n"
    md += f"\n{more_md}\n" if more_md else ""
    write_text_atomic(out / "table.md", md)
    write_text_atomic(out / "table.tex", figures.markdown_to_latex(md, note))
    write_json_atomic(out / "table.json", {"title": title, "note": note, **(data or {})})


def write_forest(out: Path, title: str, xlabel: str, items: list[tuple[str, stats.Estimate | None, str]],
                 unit: str, rows: list[dict]) -> None:
    """forest.png / .pdf next to table.md: every paired Δ of the tables (label, estimate, method key) as a point with
    its 95% interval (the tables' clustered s.e.) against a zero line, one row per comparison."""
    forest = []
    for label, e, key in items:
        if e is None:
            continue
        lo, hi = e.ci()
        forest.append(figures.ForestRow(label, e.mean, lo, hi, key))
    styles.forest(forest, out / "forest.png", title, xlabel,
                   f"Paired by prompt and seed; 95% intervals, Student's t; s.e. {stats.describe_unit(unit, rows)}.")


def extra_bons(steps: int, m: int = 2) -> dict[str, int]:
    """Best-of-N over each of DB's own samplers (``blend.methods``: the baselines with adapters and a proposal), with
    the N that makes its cost per image twice the reference method's (DB-MPA on ``m`` adapters, weights all
    non-zero): {method: N}, in table order."""
    from blend.spec import BlendSpec

    names, w = tuple(f"a{i}" for i in range(m)), (1.0 / m,) * m
    ref = BlendSpec(reference_method(), names, w)
    twice = 2 * ref.info.cost(ref, steps)
    out = {}
    for meth in list_methods(lambda x: x.is_baseline and not x.reward_guided and getattr(x, "proposal", "")):
        proposal = BlendSpec(meth.proposal, names, w)
        out[meth.name] = round(twice / proposal.info.cost(proposal, steps))
    return out


def bons_note(bons: dict[str, int]) -> str:
    """E.g. "Best-of-N over DB-MPA (N = 2) and over DB-MPA-LS (N = 4) run at twice DB-MPA's cost. "."""
    (first, n0), *rest = bons.items()
    parts = [f"{get_method(first).display_name} (N = {n0})",
             *(f"over {get_method(get_method(k).proposal).display_name} (N = {n})" for k, n in rest)]
    return " and ".join(parts) + f" run at twice {get_method(reference_method()).display_name}'s cost. "


COST_HEAD = ["s / img", "UNet fwd", "UNet bwd", "decodes", "reward evals", "reward ∇"]


# ----------------------------------------------------------------------------------------------- sweeps


def weighted_table(world: World, out: Path, runner: Runner, reward_idx: tuple[int, int], title: str,
                   extra_bon: bool) -> None:
    """Table 1 / Table 5: WR(w) = w·r_a + (1 − w)·r_b for every method at equal cost."""
    a, b = reward_idx
    adapters = [world.adapters[a], world.adapters[b]]
    rewards = [world.rewards[a], world.rewards[b]]
    oracles = world.oracles if reward_idx == (0, 1) else {}
    methods = "base,soup_factors,soup,code,rgg,smc,bon,mpa,mpa_ls" + ("," + Oracle.name if oracles else "")
    rows = run_db(world, out / "equal_cost", methods, adapters, rewards, list(WEIGHTS_T1), runner, oracles=oracles)
    bons = extra_bons(world.steps) if extra_bon else {}
    for method, n in bons.items():  # best-of-N over DB's own samplers at twice DB-MPA's cost (at equal cost N = 1)
        rows += run_db(world, out / method, method, adapters, rewards, list(WEIGHTS_T1), runner,
                       extra=["--bon_n", str(n)], budget=False)
    unit = stats.default_unit(rows)
    groups = group(rows)
    order = [*(m for m in methods.split(",") if m != Oracle.name), *bons, Oracle.name]

    def matching(key: str, w: tuple[float, ...]) -> list[dict] | None:
        """The rows of method ``key`` at weight w (the base model serves every w; oracles by their target)."""
        target = "w=(" + ",".join(f"{x:g}" for x in w) + ")"
        return next((rs for rs in groups.values() if method_key(rs[0]) == key and (
            key == Base.name or tuple(rs[0]["weights"]) == w or key == Oracle.name and rs[0].get("targets") == target)),
            None)

    table, plot, keys, data = [], {}, [], {"unit": unit, "wr": {}, "delta_vs_mpa": {}}
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
            e = est(rs, lambda r, w=w: wr(r, world, rewards, w), unit)
            cells.append(pm(e))
            data["wr"].setdefault(key, {})[f"{w[0]:g}"] = est_json(e)
            plot.setdefault(key, []).append((w[0], e))
            costs = costs or cost_cells(rs)
        size = cfgs[-1][0].get("options") or {}
        label = table_name(key) + (" (" + ", ".join(f"{k}={v}" for k, v in size.items() if k in ("N", "K", "B")) + ")"
                              if any(k in size for k in ("N", "K", "B")) else "")
        table.append([label, *cells, *(costs or ["–"] * len(COST_HEAD))])
    paired, forest = [], []  # Δ WR vs DB-MPA, image by image (same prompt and seed → same noise)
    ref_key = reference_method()
    mpa = {w: matching(ref_key, w) for w in WEIGHTS_T1}
    for row, key in zip(table, keys):
        cells = []
        for w in WEIGHTS_T1:
            ref, rs = mpa.get(w), matching(key, w)
            d = None if not ref or not rs or key == ref_key else paired_est(
                rs, ref, lambda r, w=w: wr(r, world, rewards, w), unit=unit)
            cells.append(delta_cell(d))
            if d is not None:
                data["delta_vs_mpa"].setdefault(key, {})[f"{w[0]:g}"] = est_json(d)
                forest.append((f"{row[0]} − DB-MPA, w={w[0]:g}", d, key))
        paired.append([row[0], *cells])
    caption = unit_caption(unit, rows)
    more = "\n".join(["#### Δ WR against DB-MPA at the same w (paired by prompt and seed; mean ± s.e. [95 % "
                      "interval], p)", "", *md_table(["method", *[f"Δ WR w={w[0]:g}" for w in WEIGHTS_T1]], paired)]
                     ) if any(mpa.values()) else ""
    head = ["method", *[f"WR w={w[0]:g}" for w in WEIGHTS_T1], *COST_HEAD]
    used_scales = {r: world.scales[r] for r in rewards if r in world.scales}
    note = (f"World {world.name}: {world.base_model}, prompts {Path(world.prompts).name}, {world.n_seeds} seeds per "
            f"prompt, {world.steps} DDIM steps (η = 1), guidance {world.guidance:g}. WR = w·{rewards[0]}/s + "
            f"(1 − w)·{rewards[1]}/s (w = the weight on {rewards[0]}; s = 1 unless scaled: {used_scales or 'none'}). "
            f"{caption} Baselines sized to DB-MPA's UNet evaluations per image (--budget auto); costs per image: "
            "UNet forwards, UNet backwards, VAE decodes, reward evaluations and reward gradients inside the sampler. "
            f"{SECONDS_NOTE} "
            + (bons_note(bons) if bons else "") + f"Extra flags: {' '.join(world.extra)}")
    write_tables(out, title, head, table, note, more, data)
    write_forest(out, f"{title}: Δ WR vs DB-MPA (paired)", "Δ WR = method − DB-MPA at the same w", forest, unit, rows)
    plt = figures.setup()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for j, (key, pts) in enumerate(plot.items()):  # dodged by method so that the error bars stay apart
        st = styles.style(key)
        dx = 0.012 * (j - (len(plot) - 1) / 2)
        ax.errorbar([p[0] + dx for p in pts], [p[1].mean for p in pts], yerr=[p[1].se for p in pts], capsize=2,
                    **{**st.kwargs(), "label": table_name(key)})
    ax.set_xlabel(f"w (weight on {rewards[0]}; methods dodged sideways)")
    ax.set_xticks([w[0] for w in WEIGHTS_T1])
    ax.set_ylabel("weighted reward WR (mean ± s.e., clustered)")
    ax.set_title(title)
    figures.legend_outside(ax)
    figures.save(fig, out / "plot.png")
    plt.close(fig)


def sweep_table1(world: World, out: Path, runner: Runner) -> None:
    weighted_table(world, out, runner, (0, 1), f"Table 1 ({world.name}): WR at w = 0.2 / 0.5 / 0.8", True)


def sweep_table5(world: World, out: Path, runner: Runner) -> None:
    """Compressibility (r1) against a second reward (r2), the paper's second conflict (there: JPEG vs VILA);
    the pair is ``world.table5`` and w is the weight on compressibility."""
    if world.table5 is None:
        raise SystemExit(f"error: table5 needs a compressibility reward (e.g. jpeg_compressibility) among --rewards "
                         f"{','.join(world.rewards)}, with its adapter")
    comp, other = world.table5
    weighted_table(world, out, runner, (comp, other),
                   f"Table 5 ({world.name}): {world.rewards[comp]} vs {world.rewards[other]}", False)


def sweep_m34(world: World, out: Path, runner: Runner) -> None:
    """Δr_i = r_i − r_i(base) per reward, uniform weights, m = 3 and m = 4 (Fig. 7, Table 6)."""
    table, plot, all_rows, data, forest = [], {}, [], {"delta_vs_base": {}}, []
    runs = []
    for m in (3, 4):
        if len(world.adapters) < m:
            raise SystemExit(f"error: the m = {m} sweep needs {m} adapters, the world has {len(world.adapters)}")
        adapters, rewards = world.adapters[:m], world.rewards[:m]
        w = tuple([round(1 / m, 6)] * (m - 1) + [round(1 - (m - 1) * round(1 / m, 6), 6)])
        rows = run_db(world, out / f"m{m}", "base,soup,code,rgg,mpa,mpa_ls", adapters, rewards, [w], runner)
        runs.append((m, rewards, rows))
        all_rows += rows
    unit = stats.default_unit(all_rows)
    for m, rewards, rows in runs:
        groups = group(rows)
        base = groups[Base.name]
        for rs in groups.values():
            key = method_key(rs[0])
            if key == Base.name:
                continue
            deltas = [paired_est(rs, base, lambda r, i=i, rw=rewards: scaled(r, world, rw)[i], unit=unit) for i in range(m)]
            table.append([f"m = {m}", table_name(key), *[delta_cell(d, 2) for d in deltas], *["–"] * (4 - m),
                          *cost_cells(rs)])
            data["delta_vs_base"].setdefault(f"m{m}", {})[key] = [est_json(d) for d in deltas]
            forest += [(f"m = {m}, {table_name(key)}: Δr{i + 1}", d, key) for i, d in enumerate(deltas)]
            plot.setdefault(key, {})[m] = deltas
    head = ["m", "method", *[f"Δr{i + 1}" for i in range(4)], *COST_HEAD]
    note = (f"World {world.name}: rewards r1..r4 = {', '.join(world.rewards[:4])} (divided by "
            f"{ {r: world.scales[r] for r in world.rewards[:4] if r in world.scales} or 'nothing'}"
            "), uniform weights; Δr_i = r_i − r_i of the base model for the same prompt and seed. "
            f"{unit_caption(unit, all_rows)} {SECONDS_NOTE}")
    data["unit"] = unit
    write_tables(out, f"m = 3 and m = 4 rewards ({world.name}): Δr per reward vs the base model", head, table, note,
                 data=data)
    write_forest(out, f"m = 3 and m = 4 ({world.name}): Δr vs the base model (paired)",
                 "Δr_i = r_i − r_i(base), scaled", forest, unit, all_rows)
    plt = figures.setup()
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.8), sharey=True)
    for ax, m in zip(axes, (3, 4)):
        keys = [k for k in plot if m in plot[k]]
        width = 0.8 / max(1, len(keys))
        for j, k in enumerate(keys):
            st = styles.style(k)
            ds = plot[k][m]
            ax.bar([i + j * width for i in range(m)], [d.mean if d else math.nan for d in ds], width,
                   yerr=[d.se if d else math.nan for d in ds], capsize=2, color=st.color, label=table_name(k))
        ax.set_xticks([i + 0.4 - width / 2 for i in range(m)], [f"r{i + 1}" for i in range(m)])
        ax.set_title(f"m = {m}")
        ax.set_xlabel("reward")
        ax.set_ylabel("Δr vs base (scaled; mean ± s.e.)")
        ax.yaxis.set_tick_params(labelleft=True)
        ax.axhline(0, color="k", lw=0.5)
    figures.legend_outside(axes[1])
    figures.save(fig, out / "plot.png")
    plt.close(fig)


def sweep_kla(world: World, out: Path, runner: Runner,
              lambdas=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)) -> None:
    """DB-KLA on adapter 0 over a λ grid, against λ-specific checkpoints (adapter 0 retrained with KL/λ)."""
    adapter, reward = world.adapters[0], world.rewards[0]
    rows = run_db(world, out / "run", "base,single,kla", [adapter], [reward], [], runner,
                  extra=["--lambdas", ",".join(f"{x:g}" for x in lambdas if x != 1.0)], budget=False)
    o_rows = []
    for lam, path in sorted(world.kla_oracles.items()):
        rs = run_db(world, out / f"oracle_lam{lam:g}", Single.name, [(f"lam{lam:g}".replace(".", "p"), path)], [reward],
                    [], runner, budget=False)
        o_rows.append((lam, rs))
    unit = stats.default_unit(rows + [r for _, rs in o_rows for r in rs])
    value = lambda r: scaled(r, world, [reward])[0]  # noqa: E731
    curve = []
    for rs in group(rows).values():
        key = rs[0]["method"]
        lam = 0.0 if key == Base.name else 1.0 if key == Single.name else rs[0]["lam"]
        curve.append((lam, est(rs, value, unit), rs))
    curve.sort(key=lambda c: c[0])
    table = [["DB-KLA" if 0 < lam != 1 else ("base (λ = 0)" if lam == 0 else "adapter (λ = 1)"), f"{lam:g}", pm(e),
              *cost_cells(rs)] for lam, e, rs in curve]
    oracle_est = [(lam, est(rs, value, unit), rs) for lam, rs in o_rows]
    table += [[f"λ-specific model (KL/{lam:g})", f"{lam:g}", pm(e), *cost_cells(rs)] for lam, e, rs in oracle_est]
    at = {lam: rs for lam, _, rs in curve}
    deltas = [(lam, paired_est(at[lam], rs, value, unit=unit) if lam in at else None) for lam, rs in o_rows]
    data = {"unit": unit, "curve": {f"{lam:g}": est_json(e) for lam, e, _ in curve},
            "lambda_specific": {f"{lam:g}": est_json(e) for lam, e, _ in oracle_est},
            "delta_kla_vs_lambda_specific": {f"{lam:g}": est_json(d) for lam, d in deltas}}
    more = "\n".join(["#### DB-KLA − the λ-specific model at the same λ (paired by prompt and seed; mean ± s.e. "
                      "[95 % interval], p)", "",
                      *md_table(["λ", f"Δ {reward}"], [[f"{lam:g}", delta_cell(d)] for lam, d in deltas])]
                     ) if deltas else ""
    head = ["model", "λ", reward, *COST_HEAD]
    all_rows = rows + [r for _, rs in o_rows for r in rs]
    note = (f"World {world.name}: DB-KLA ε = (1 − λ) ε_pre + λ ε_ft on {adapter[0]}; {reward} divided by "
            f"{world.scales.get(reward, 1.0):g}. {unit_caption(unit, all_rows)} {SECONDS_NOTE}")
    write_tables(out, f"DB-KLA ({world.name}) against λ-specific models", head, table, note, more, data)
    write_forest(out, f"DB-KLA − λ-specific model ({world.name}, paired)", f"Δ {reward} (DB-KLA − λ-specific model)",
                 [(f"λ = {lam:g}", d, lam_method()) for lam, d in deltas], unit, all_rows)
    plt = figures.setup()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    st = styles.style(lam_method())
    ax.errorbar([c[0] for c in curve], [c[1].mean for c in curve], yerr=[c[1].se for c in curve], capsize=2,
                **{**st.kwargs(), "label": "DB-KLA (λ = 0: base, λ = 1: adapter)"})
    if oracle_est:
        st = styles.style(Oracle.name)
        ax.errorbar([c[0] for c in oracle_est], [c[1].mean for c in oracle_est], yerr=[c[1].se for c in oracle_est],
                    capsize=2, **{**st.kwargs(line=False), "label": "λ-specific model"})
    ax.set_xlabel("λ")
    ax.set_ylabel(f"{reward} (mean ± s.e., clustered)")
    ax.set_title(f"DB-KLA ({world.name})")
    figures.legend_outside(ax)
    figures.save(fig, out / "plot.png")
    plt.close(fig)


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


def sweep_pareto(world: World, out: Path, runner: Runner, grid: int = 11) -> None:
    """Mean (r1, r2) of every method over w ∈ {0, 1/(grid−1), …, 1}, each method's front and its hypervolume."""
    ws = [(round(i / (grid - 1), 4), round(1 - i / (grid - 1), 4)) for i in range(grid)]
    adapters, rewards = world.adapters[:2], world.rewards[:2]
    rows = run_db(world, out / "run", "base,soup,code,rgg,mpa,mpa_ls", adapters, rewards, ws, runner)
    unit = stats.default_unit(rows)
    pts: dict[str, list[tuple[float, float, float]]] = {}  # method -> [(w, mean r1, mean r2)]
    points_md, points_json = [], {}
    base = None
    for rs in group(rows).values():
        key = method_key(rs[0])
        e = [est(rs, lambda r, i=i: scaled(r, world, rewards)[i], unit) for i in range(2)]
        w = None if key == Base.name else rs[0]["weights"][0]
        points_md.append([table_name(key), "–" if w is None else f"{w:g}", pm(e[0], 3), pm(e[1], 3)])
        points_json.setdefault(key, {})[Base.name if w is None else f"{w:g}"] = [est_json(x) for x in e]
        if key == Base.name:
            base = (e[0].mean, e[1].mean)
        else:
            pts.setdefault(key, []).append((w, e[0].mean, e[1].mean))
    xy = {k: [(p[1], p[2]) for p in v] for k, v in pts.items()}
    everything = [p for v in xy.values() for p in v] + ([base] if base else [])
    ref = (min(p[0] for p in everything), min(p[1] for p in everything))
    table = [[table_name(k), str(len(p)), f"{hypervolume(p, ref):.4f}", str(len(pareto_front(p)))] for k, p in xy.items()]
    note = (f"World {world.name}: w grid of {grid} points on [0, 1] (w = the weight on {rewards[0]}); each point is "
            f"a method's mean ({rewards[0]}, {rewards[1]}) (divided by "
            f"{ {r: world.scales[r] for r in rewards if r in world.scales} or 'nothing'}). Hypervolume of "
            "each method's non-dominated mean points with the reference point "
            f"({ref[0]:.4f}, {ref[1]:.4f}) = the component-wise minimum over all methods' points and the base model "
            f"(so every point counts). {unit_caption(unit, rows)}")
    more = "\n".join(["#### The points: mean reward per method and w", "",
                      *md_table(["method", "w", rewards[0], rewards[1]], points_md)])
    write_tables(out, f"Pareto fronts ({world.name}): hypervolume per method",
                 ["method", "points", "hypervolume", "front size"], table, note, more,
                 {"unit": unit, "reference_point": list(ref), "points": points_json,
                  "hypervolume": {k: hypervolume(p, ref) for k, p in xy.items()}})
    plt = figures.setup()
    fig, ax = plt.subplots(figsize=(6.8, 5.0))
    labels = []
    for key, p in pts.items():
        st = styles.style(key)
        ax.plot([q[1] for q in p], [q[2] for q in p], st.marker, color=st.color, ms=4, alpha=0.6)
        f = pareto_front(xy[key])
        ax.plot([q[0] for q in f], [q[1] for q in f], linestyle=st.linestyle if st.linestyle != "none" else "-",
                color=st.color, label=f"{table_name(key)} (HV {hypervolume(xy[key], ref):.3f})")
        labels += [(q[1], q[2], f"{q[0]:g}", st.color) for q in p]
    if base:
        st = styles.style(Base.name)
        ax.plot(*base, st.marker, color=st.color, ms=10, linestyle="none", label=table_name(Base.name))
    ax.plot(*ref, "x", color="k", linestyle="none", label="reference point")
    placed = figures.place_labels(ax, [q[0] for q in labels], [q[1] for q in labels], [q[2] for q in labels],
                                  fontsize=6, colors=[q[3] for q in labels])  # each w label in its method's colour
    if placed.dropped:  # the labels that found no free place are named, never drawn over another
        fig.text(0.01, -0.02, textwrap.fill(placed.caption(), 110), fontsize=6, ha="left", va="top")
    ax.set_xlabel(f"{rewards[0]} (mean, scaled)")
    ax.set_ylabel(f"{rewards[1]} (mean, scaled)")
    ax.set_title(f"Pareto fronts ({world.name}); point labels: w on {rewards[0]}")
    figures.legend_outside(ax)
    figures.save(fig, out / "plot.png")
    plt.close(fig)


SWEEPS = {"table1": sweep_table1, "table5": sweep_table5, "m34": sweep_m34, "kla": sweep_kla, "pareto": sweep_pareto}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="paper_sweeps.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", choices=sorted(SWEEPS))
    p.add_argument("--world", choices=["toy", "sd", "tiny"], default="toy")
    p.add_argument("--out", default=None, help="output root [default: outputs/sweeps/<world>]")
    p.add_argument("--n_seeds", type=int, default=None, help="seeds per prompt [toy: 4; sd: 1; tiny: 1]")
    p.add_argument("--prompt_file", default=None, help="prompts [sd: db:short_drawbench_1k; toy: held-out toy set]")
    p.add_argument("--base_model", default=None, help=f"sd: the base model [{SD15}, the maintained copy of the deleted runwayml/stable-diffusion-v1-5]")
    p.add_argument("--lora", action="append", default=[], metavar="NAME=PATH", help="sd: basis adapter i (reward i)")
    p.add_argument("--rewards", default=None, help="sd: one reward per adapter, comma-separated")
    p.add_argument("--oracle", action="append", default=[], metavar="W=PATH", help="sd: MORL oracle for w")
    p.add_argument("--kla_oracle", action="append", default=[], metavar="LAMBDA=PATH",
                   help="sd: adapter 0 retrained with KL weight / λ")
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--extra", default=None, help="more run_DB.py flags, quoted (e.g. surrogates, --batched)")
    p.add_argument("--launcher", default="", help="run each run_DB.py through this, e.g. 'accelerate launch'")
    p.add_argument("--pareto_grid", type=int, default=11, help="pareto: number of w values on [0, 1]")
    p.add_argument("--report_only", action="store_true",
                   help="sample nothing: rebuild the tables and plots from the rows stored by an earlier run of the "
                        "same command (an error names any missing rows)")
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
    runner = Runner(args.launcher, args.report_only)
    if args.sweep == "pareto":
        sweep_pareto(world, out, runner, args.pareto_grid)
    else:
        SWEEPS[args.sweep](world, out, runner)
    print((out / "table.md").read_text())
    log.info("wrote %s (.tex, .json) and %s (.pdf)", out / "table.md", out / "plot.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
