"""Summaries of ``results.jsonl``: mean ± standard error per config, paper-style tables, grids, Pareto plots."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from PIL import Image

from diffusion_blend.io import atomic_path, write_json_atomic, write_text_atomic


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std with ddof = 1 over √n; 0 for a single value)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _finite(values: list[float | None]) -> list[float]:
    """The finite values (non-finite scores are stored as None and counted in ``nonfinite``, never averaged)."""
    return [v for v in values if v is not None and math.isfinite(v)]


def summarise(rows: list[dict]) -> dict[str, dict]:
    """{config: {display, method, weights, lam, n, rewards: {name: [mean, se]}, weighted_reward: {obj: [mean, se]},
    seconds_per_image, unet_evals_per_image}} in first-seen order."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["config"]].append(r)
    out = {}
    for label, rs in groups.items():
        first = rs[0]
        out[label] = {
            "display": first["display"], "method": first["method"], "role": first.get("role", ""),
            "weights": first["weights"], "lam": first["lam"], "targets": first.get("targets"), "n": len(rs),
            "rewards": {k: list(mean_se(_finite([r["rewards"][k] for r in rs]))) for k in first["rewards"]},
            "weighted_reward": {k: list(mean_se(_finite([r["weighted_reward"][k] for r in rs])))
                                for k in first["weighted_reward"]},
            "nonfinite": sum(1 for r in rs if r.get("nonfinite")),
            "seconds_per_image": sum(r["seconds"] for r in rs) / len(rs),
            "unet_evals_per_image": sum(r["unet_evals"] for r in rs) / len(rs),
        }
    return out


def _pm(ms: list[float], digits: int = 3) -> str:
    m, s = ms
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown_tables(summary: dict[str, dict], reward_names: list[str], objectives: list[str]) -> str:
    """One table per objective w (configs that target another w are left out of it), or one table if none."""
    sections = []
    for obj in objectives or [None]:
        head = ["method", *reward_names] + ([f"WR {obj}"] if obj else []) + ["s / image", "UNet evals / image", "n"]
        lines = [f"### Objective {obj}" if obj else "### Results", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s in summary.values():
            if obj and s.get("targets") not in (None, obj):
                continue
            cells = [s["display"], *[_pm(s["rewards"][k]) for k in reward_names]]
            if obj:
                cells.append(_pm(s["weighted_reward"][obj]))
            cells += [f"{s['seconds_per_image']:.3f}", f"{s['unet_evals_per_image']:.0f}", str(s["n"])]
            lines.append("| " + " | ".join(cells) + " |")
        sections.append("\n".join(lines))
    note = ("Mean ± standard error over images (prompts × seeds). WR = Σ_i w_i r_i. "
            "UNet evals count one network evaluation per model and step (a CFG pair counts once).")
    return "\n\n".join(sections) + "\n\n" + note + "\n"


def write_summary(out_dir: Path, rows: list[dict], reward_names: list[str], objectives: list[str],
                  note: str = "") -> str:
    """Write summary.json and summary.md of ``rows``; ``note`` (e.g. which rows these are) ends the tables."""
    summary = summarise(rows)
    write_json_atomic(out_dir / "summary.json", summary)
    table = markdown_tables(summary, reward_names, objectives)
    bad = {label: s["nonfinite"] for label, s in summary.items() if s["nonfinite"]}
    if bad:
        table += ("\nNon-finite rewards or images (stored as null, left out of the means): "
                  + ", ".join(f"{label}: {n}" for label, n in bad.items()) + ".\n")
    if note:
        table += "\n" + note + "\n"
    write_text_atomic(out_dir / "summary.md", table)
    return table


def write_grids(out_dir: Path, rows: list[dict], max_images: int = 64) -> list[Path]:
    """A grid PNG per config: prompts in rows, seeds in columns (at most ``max_images`` tiles)."""
    by_config: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_config[r["config"]].append(r)
    written = []
    for label, rs in by_config.items():
        prompts = sorted({r["prompt_index"] for r in rs})
        seeds = sorted({r["seed"] for r in rs})
        keep_p = prompts[: max(1, max_images // max(1, len(seeds)))]
        cells = {(r["prompt_index"], r["seed"]): r["image"] for r in rs}
        tiles = [[cells.get((p, s)) for s in seeds] for p in keep_p]
        first = next(c for row in tiles for c in row if c)
        w, h = Image.open(out_dir / first).size
        scale = max(1, 96 // max(w, h))
        grid = Image.new("RGB", (len(seeds) * w * scale, len(keep_p) * h * scale), "white")
        for i, row in enumerate(tiles):
            for j, rel in enumerate(row):
                if rel:
                    tile = Image.open(out_dir / rel).convert("RGB").resize((w * scale, h * scale), Image.NEAREST)
                    grid.paste(tile, (j * w * scale, i * h * scale))
        path = out_dir / "grids" / f"{label}.png"
        with atomic_path(path) as tmp:
            grid.save(tmp, format="PNG")
        written.append(path)
    return written


def plot_pareto(out_dir: Path, summary: dict[str, dict], reward_names: list[str]) -> Path | None:
    """Mean reward 1 vs reward 2 per config (± s.e.), weight sweeps joined by lines. Needs two rewards."""
    if len(reward_names) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r1, r2 = reward_names[:2]
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    series: dict[str, list[tuple[float, dict]]] = defaultdict(list)
    markers = {"base": "k*", "single": "s", "mpa": "o-", "mpa_ls": "^--", "soup": "D:", "soup_factors": "v:",
               "kla": "x-."}
    for s in summary.values():
        key = s["method"] if s["method"] != "kla" else f"kla w={s['weights']}"
        if s.get("role") == "oracle":
            key = "oracle"
        series[key].append((s["weights"][0] if s["weights"] else 0.0, s))
    for key, pts in series.items():
        pts.sort(key=lambda p: p[0])
        xs = [p[1]["rewards"][r1][0] for p in pts]
        ys = [p[1]["rewards"][r2][0] for p in pts]
        xe = [p[1]["rewards"][r1][1] for p in pts]
        ye = [p[1]["rewards"][r2][1] for p in pts]
        style = markers.get(key.split(" ")[0], "o")
        name = {"mpa": "DB-MPA", "mpa_ls": "DB-MPA-LS", "soup": "RS (ΔW)", "soup_factors": "RS (factors)",
                "base": "base", "single": "single adapters", "oracle": "MORL oracle"}.get(key, key)
        if key == "single" or key == "oracle":
            style = "s" if key == "single" else "P"
            ax.errorbar(xs, ys, xerr=xe, yerr=ye, fmt=style, label=name, capsize=2, ms=7)
            for x, y, p in zip(xs, ys, pts):
                ax.annotate(p[1]["display"].split(" ")[-1], (x, y), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        else:
            ax.errorbar(xs, ys, xerr=xe, yerr=ye, fmt=style, label=name, capsize=2, ms=5)
    ax.set_xlabel(f"{r1} (higher is better)")
    ax.set_ylabel(f"{r2} (higher is better)")
    ax.set_title("Mean rewards per method (± s.e.)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "pareto.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
