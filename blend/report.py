"""Summaries of ``results.jsonl``: mean ± standard error per config, paper-style tables, grids (per config and
the methods side by side), forest plots of the paired differences, Pareto plots.

Standard errors are cluster-robust (``blend.stats``): every image of a prompt shares the prompt, and
under ``--noise per_seed`` every image of a seed also shares the noise, so the images are not
independent; the errors cluster by prompt (per-image noise) or two-way by prompt and seed (per-seed). Paired differences against DB-MPA (same prompt and seed) come with a 95%
interval and a p-value over the same unit. Tables are written as markdown and LaTeX.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from PIL import Image

from blend import stats, styles
from blend.baselines.costs import BACKWARD_COST, forward_equivalents
from blend.methods import REGISTRY, reference_method
from blend.methods.single import family
from dbcore import figures
from dbcore.io import write_json_atomic, write_text_atomic
from dbcore.logging import get_logger

log = get_logger("report")


def _is_finite(v) -> bool:
    return v is not None and math.isfinite(v)


def _est(rs: list[dict], value, unit: str) -> list[float]:
    """Mean and clustered s.e. of ``value(row)`` over the rows where it is finite (non-finite scores are stored as
    None and counted in ``nonfinite``, never averaged)."""
    keep = [r for r in rs if _is_finite(value(r))]
    if not keep:
        return [float("nan"), float("nan")]
    e = stats.row_estimate(keep, value, unit)
    return [e.mean, e.se]


def _costs_per_image(rs: list[dict], first: dict) -> dict[str, float]:
    """Mean of each cost counter over the rows, and their forward-equivalents (derived here, so stored rows stay
    as they were written; ``blend.baselines.costs.forward_equivalents``)."""
    out = {k: sum(r["costs"][k] for r in rs) / len(rs) for k in (first.get("costs") or {})}
    if "unet_forwards" in out:
        out["forward_equivalents"] = sum(forward_equivalents(r["costs"]) for r in rs) / len(rs)
    return out


def summarise(rows: list[dict], unit: str | None = None) -> dict[str, dict]:
    """{config: {display, method, weights, lam, n, rewards: {name: [mean, se]}, weighted_reward: {obj: [mean, se]},
    paired_vs_mpa: {obj: {mean, se, df, ci95, p, unit}}, se_unit, seconds_per_image, unet_evals_per_image}} in
    first-seen order. Standard errors over ``unit`` (``blend.stats.estimate``); the paired differences are
    against the DB-MPA config that targets the same objective, image by image. ``unit`` defaults to the
    design's (``blend.stats.default_unit``: by prompt for per-image noise, by prompt and seed for per-seed noise)."""
    unit = unit or stats.default_unit(rows)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["config"]].append(r)
    out = {}
    for label, rs in groups.items():
        first = rs[0]
        out[label] = {
            "display": first["display"], "method": first["method"], "role": first.get("role", ""),
            "weights": first["weights"], "lam": first["lam"], "targets": first.get("targets"), "n": len(rs),
            "rewards": {k: _est(rs, lambda r, k=k: r["rewards"][k], unit) for k in first["rewards"]},
            "weighted_reward": {k: _est(rs, lambda r, k=k: r["weighted_reward"][k], unit)
                                for k in first["weighted_reward"]},
            "se_unit": stats.describe_unit(unit, rs),
            "nonfinite": sum(1 for r in rs if r.get("nonfinite")),
            "seconds_per_image": sum(r["seconds"] for r in rs) / len(rs),
            "unet_evals_per_image": sum(r["unet_evals"] for r in rs) / len(rs),
            "costs_per_image": _costs_per_image(rs, first),
        }
    ref = reference_method()  # blend.methods: DB-MPA
    refs = {s["targets"]: groups[label] for label, s in out.items() if s["method"] == ref and s["targets"]}
    for label, s in out.items():
        s["paired_vs_mpa"] = {}
        for obj, ref in refs.items():
            if ref is groups[label] or s["targets"] not in (None, obj) or obj not in groups[label][0]["weighted_reward"]:
                continue
            finite = [[r for r in g if _is_finite(r["weighted_reward"][obj])] for g in (groups[label], ref)]
            d = stats.paired(*finite, lambda r, o=obj: r["weighted_reward"][o], unit=unit)
            if d is not None:
                s["paired_vs_mpa"][obj] = d.to_dict()
    return out


def _pm(ms: list[float], digits: int = 3) -> str:
    """'mean ± s.e.'; '—' without a finite value, 'mean ± –' where no standard error exists (one image or one
    cluster), never 'nan'."""
    m, s = ms
    if m is None or not math.isfinite(m):
        return "—"
    if s is None or not math.isfinite(s):
        return f"{m:.{digits}f} ± – (no s.e.)"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _paired_cell(d: dict | None, digits: int = 3) -> str:
    if not d:
        return "—"
    if d["mean"] is None or not math.isfinite(d["mean"]):
        return "—"
    if not all(v is not None and math.isfinite(v) for v in (d["se"], *d["ci95"])):
        return f"{d['mean']:+.{digits}f} ± – (no s.e.)"
    lo, hi = d["ci95"]
    return f"{d['mean']:+.{digits}f} ± {d['se']:.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}], p {stats.fmt_p(d['p'])}"


def caption(summary: dict[str, dict]) -> str:
    unit = next((s.get("se_unit") for s in summary.values() if s.get("se_unit")), "images")
    return (f"Mean ± standard error; the error is {unit}. Δ vs DB-MPA is paired (the same prompt and seed, "
            "image by image), with its 95% interval (Student's t, df = fewest clusters − 1) and two-sided p-value. "
            "WR = Σ_i w_i r_i. UNet evals count one network evaluation per model and step (a CFG pair counts once). "
            "Costs per image: UNet forwards / UNet backwards / VAE decodes / reward evaluations / reward gradients "
            "inside the sampler; fe = forward-equivalents, a UNet forward 1 and a backward "
            f"{BACKWARD_COST:g} (blend.baselines.costs).")


def markdown_tables(summary: dict[str, dict], reward_names: list[str], objectives: list[str]) -> str:
    """One table per objective w (configs that target another w are left out of it), or one table if none."""
    sections = []
    for obj in objectives or [None]:
        head = (["method", *reward_names] + ([f"WR {obj}", "Δ WR vs DB-MPA (paired)"] if obj else [])
                + ["s / image", "UNet evals / image", "fwd / bwd / dec / rew / ∇r", "fe / image", "n"])
        lines = [f"### Objective {obj}" if obj else "### Results", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s in summary.values():
            if obj and s.get("targets") not in (None, obj):
                continue
            cells = [s["display"], *[_pm(s["rewards"][k]) for k in reward_names]]
            if obj:
                cells += [_pm(s["weighted_reward"][obj]), _paired_cell(s.get("paired_vs_mpa", {}).get(obj))]
            c = s.get("costs_per_image") or {}
            cost = " / ".join(f"{c[k]:.0f}" for k in ("unet_forwards", "unet_backwards", "vae_decodes", "reward_evals",
                                                      "reward_grads") if k in c) or "–"
            fe = f"{c['forward_equivalents']:.0f}" if "forward_equivalents" in c else "–"
            cells += [f"{s['seconds_per_image']:.3f}", f"{s['unet_evals_per_image']:.0f}", cost, fe, str(s["n"])]
            lines.append("| " + " | ".join(cells) + " |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n\n" + caption(summary) + "\n"


def write_summary(out_dir: Path, rows: list[dict], reward_names: list[str], objectives: list[str],
                  unit: str | None = None, note: str = "") -> str:
    """summary.json, summary.md and summary.tex (the same tables in LaTeX, booktabs) in ``out_dir``; ``note``
    (e.g. which rows these are) ends the tables."""
    summary = summarise(rows, unit)
    write_json_atomic(out_dir / "summary.json", summary)
    table = markdown_tables(summary, reward_names, objectives)
    bad = {label: s["nonfinite"] for label, s in summary.items() if s["nonfinite"]}
    if bad:
        table += ("\nNon-finite rewards or images (stored as null, left out of the means): "
                  + ", ".join(f"{label}: {n}" for label, n in bad.items()) + ".\n")
    if note:
        table += "\n" + note + "\n"
    write_text_atomic(out_dir / "summary.md", table)
    write_text_atomic(out_dir / "summary.tex", figures.markdown_to_latex(table, caption(summary)))
    return table


def paired_rows(summary: dict[str, dict], objectives: list[str]) -> list[figures.ForestRow]:
    """The paired differences of the summary tables (Δ WR vs DB-MPA, one per config and objective, in table order)
    as forest-plot rows."""
    out = []
    for obj in objectives:
        for s in summary.values():
            d = s.get("paired_vs_mpa", {}).get(obj)
            if not d:
                continue
            lo, hi = d["ci95"]
            label = f"{s['display']} − DB-MPA" + (f", {obj}" if len(objectives) > 1 else "")
            out.append(figures.ForestRow(label, d["mean"], lo, hi, _family(s).split(" ")[0]))
    return out


def plot_paired(out_dir: Path, summary: dict[str, dict], objectives: list[str]) -> Path | None:
    """``summary_paired.png`` / ``.pdf`` next to summary.md: each paired Δ WR vs DB-MPA of the tables as a point with
    its 95% interval (the same clustered s.e. as the tables) against a zero line; None when there is no paired
    difference (no DB-MPA reference, or no objective)."""
    rows = paired_rows(summary, objectives)
    if not rows:
        return None
    unit = next((s.get("se_unit") for s in summary.values() if s.get("se_unit")), "")
    note = ("Paired by prompt and seed (image by image); intervals: 95%, Student's t with df = fewest clusters − 1"
            + (f"; s.e. {unit}." if unit else "."))
    paths = styles.forest(rows, out_dir / "summary_paired.png", "Δ weighted reward vs DB-MPA (paired)",
                           "Δ WR = method − DB-MPA (> 0: the method scores higher)", note)
    return paths[0] if paths else None


def write_grids(out_dir: Path, rows: list[dict], max_images: int = 64, tile_px: int = 96) -> list[Path]:
    """A labelled grid per config (``grids/<config>.png`` and ``.pdf``): the method as title, prompts in rows,
    seeds in columns; at most ``max_images`` tiles (whole seed columns, then prompt rows; logged when capped)."""
    by_config: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_config[r["config"]].append(r)
    written = []
    for label, rs in by_config.items():
        prompts = sorted({r["prompt_index"] for r in rs})
        seeds = sorted({r["seed"] for r in rs})
        text = {r["prompt_index"]: r.get("prompt", str(r["prompt_index"])) for r in rs}
        cells = {(r["prompt_index"], r["seed"]): r["image"] for r in rs}
        max_cols = max(1, min(len(seeds), max_images))
        max_rows = max(1, max_images // max_cols)
        tiles = [[Image.open(out_dir / cells[(p, s)]) if (p, s) in cells else None for s in seeds[:max_cols]]
                 for p in prompts[:max_rows]]
        path = out_dir / "grids" / f"{label}.png"
        figures.image_grid(tiles, [text[p] for p in prompts[:max_rows]], [f"seed {s}" for s in seeds[:max_cols]],
                           rs[0].get("display", label), path, tile_px=tile_px, what=f"grid of {label}")
        if len(prompts) > max_rows or len(seeds) > max_cols:
            log.info("grid %s capped at %d images: %d of %d prompts, %d of %d seeds (raise max_images for more)",
                     label, max_images, min(len(prompts), max_rows), len(prompts), max_cols, len(seeds))
        written.append(path)
    side = write_method_grid(out_dir, rows, max_images=max_images, tile_px=tile_px)
    return written + ([side] if side else [])


def _short(text: str, n: int = 12) -> str:
    return text if len(text) <= n else text[:n - 1].rstrip() + "…"


def write_method_grid(out_dir: Path, rows: list[dict], seed: int | None = None, max_images: int = 64,
                      tile_px: int = 96) -> Path | None:
    """The methods side by side: ``grids/methods_seed<s>.png`` and ``.pdf``, one row per config (its display name),
    one column per prompt, every tile of the same seed ``s`` (so the images are paired: same prompt, same noise).
    ``s`` defaults to the smallest seed that every config has; None (logged) when there is none, or a single
    config. At most ``max_images`` tiles (whole method rows, then prompt columns; logged when capped)."""
    by_config: dict[str, dict[tuple[int, int], dict]] = defaultdict(dict)
    for r in rows:
        by_config[r["config"]][(r["prompt_index"], r["seed"])] = r
    if len(by_config) < 2:
        return None
    common = set.intersection(*({s for _, s in cells} for cells in by_config.values()))
    if seed is None:
        if not common:
            log.info("no seed is shared by every config: the side-by-side grid of methods is not written")
            return None
        seed = min(common)
    prompts = sorted({r["prompt_index"] for r in rows if r["seed"] == seed})
    text = {r["prompt_index"]: r.get("prompt", str(r["prompt_index"])) for r in rows}
    configs = list(by_config)
    max_cols = max(1, min(len(prompts), max_images // len(configs)))
    tiles = [[Image.open(out_dir / cells[(p, seed)]["image"]) if (p, seed) in cells else None
              for p in prompts[:max_cols]] for cells in by_config.values()]
    names = [next(iter(by_config[c].values())).get("display", c) for c in configs]
    path = out_dir / "grids" / f"methods_seed{seed}.png"
    figures.image_grid(tiles, names, [_short(text[p]) for p in prompts[:max_cols]],
                       f"Methods side by side, seed {seed} (same noise in every row)", path, tile_px=tile_px,
                       what="side-by-side grid")
    return path


def _family(s: dict) -> str:
    """The series of a config in the Pareto plot: its method (the oracle for role oracle); λ-sweeps per weights."""
    fam = family(s["method"], s.get("role", ""))
    return f"{fam} w={s['weights']}" if fam in REGISTRY and REGISTRY[fam].takes_lam else fam


def plot_pareto(out_dir: Path, summary: dict[str, dict], reward_names: list[str]) -> Path | None:
    """Mean reward 1 vs reward 2 per config (± s.e. over the summary's unit), weight sweeps joined by lines,
    weights labelled without overlap, the legend outside; ``pareto.png`` and ``pareto.pdf``. Needs two rewards."""
    if len(reward_names) < 2:
        return None
    plt = figures.setup()
    r1, r2 = reward_names[:2]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    series: dict[str, list[tuple[float, dict]]] = defaultdict(list)
    dropped: list[str] = []
    for s in summary.values():
        series[_family(s)].append((s["weights"][0] if s["weights"] else 0.0, s))
    for key, pts in series.items():
        pts.sort(key=lambda p: p[0])
        xs = [p[1]["rewards"][r1][0] for p in pts]
        ys = [p[1]["rewards"][r2][0] for p in pts]
        st = styles.style(key.split(" ")[0])
        info = REGISTRY.get(key.split(" ")[0])  # blend.methods: how the method is drawn
        kw = st.kwargs(line=(info is None or info.line) and len(pts) > 1)
        if info is not None and info.takes_lam and " " in key:
            kw["label"] = f"{info.display_name} {key.split(' ', 1)[1]}"
        ax.errorbar(xs, ys, xerr=[p[1]["rewards"][r1][1] for p in pts], yerr=[p[1]["rewards"][r2][1] for p in pts],
                    ms=8 if info is not None and info.big_marker else 5, **kw)
        if info is not None and info.point_label == "name":
            dropped += figures.place_labels(ax, xs, ys, [p[1]["display"].split(" ")[-1] for p in pts]).dropped
        elif info is not None and info.point_label == "weights" and len(pts) > 1:
            dropped += figures.place_labels(ax, xs, ys, [f"w={p[0]:g}" for p in pts], color=st.color).dropped
    ax.set_xlabel(f"{r1} (higher is better)")
    ax.set_ylabel(f"{r2} (higher is better)")
    unit = next((s.get("se_unit") for s in summary.values() if s.get("se_unit")), "")
    ax.set_title("Mean rewards per method (± s.e.)")
    foot = " ".join(x for x in (f"s.e.: {unit.split(';')[0]}." if unit else "",
                                (f"Labels left off for lack of room: {', '.join(dropped)}." if dropped else "")) if x)
    if foot:
        fig.text(0.01, -0.02, foot, fontsize=7, ha="left", va="top")
    figures.legend_outside(ax)
    paths = figures.save(fig, out_dir / "pareto.png")
    plt.close(fig)
    return paths[0]
