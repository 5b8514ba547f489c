"""Toy tables and plots from ``run_DB.py`` output folders (used by ``scripts/toy_tables.sh``).

The two toy rewards live on different scales (toy_alignment: std ≈ 3 nats on base samples;
jpeg_compressibility: std ≈ 0.3 kB), so the weighted reward is computed on rewards standardised by
the base model's statistics (``toy/weights/reward_stats.json``, the same σ the MORL oracles were
trained with):

    WR_z(w) = w · (r_align − μ_align)/σ_align + (1 − w) · (r_jpeg − μ_jpeg)/σ_jpeg

(w = weight of the alignment adapter; the base model scores ≈ 0). Differences between methods are
paired (same prompt and seed → same noise). Every standard error is cluster-robust (``blend.stats``):
images of one prompt share the prompt, and under ``--noise per_seed`` images of one seed also share the
noise, so the errors cluster by prompt (per-image noise, the default) or two-way by prompt and seed
(per-seed noise); 95% intervals and p-values use Student's t with (fewest clusters − 1) degrees of freedom. Every markdown table is also written as LaTeX (``*.tex``) and its paired differences as a forest plot
(``table1_forest``, ``comparisons_forest``, ``kla_forest``), every plot as PNG and PDF.

    python scripts/toy_report.py --stats toy/weights/reward_stats.json --table1 DIR --pareto DIR \
        --kla DIR --kla_oracles 0.5,2 --out docs/toy
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blend import stats  # noqa: E402
from diffusion_blend import figures  # noqa: E402

A, J = "toy_alignment", "jpeg_compressibility"
ORDER = ["base", "single", "soup", "soup_factors", "mpa", "mpa_ls", "oracle"]
NAMES = {"base": "Base model", "soup": "Rewarded soup (ΔW)", "soup_factors": "Rewarded soup (factors)",
         "mpa": "DB-MPA", "mpa_ls": "DB-MPA-LS", "oracle": "MORL oracle"}


def load(out_dir: str | Path, n_seeds: int | None = None) -> dict[str, list[dict]]:
    """Rows of ``results.jsonl`` by config, sorted by (prompt, seed); only seeds < ``n_seeds`` when given."""
    groups: dict[str, list[dict]] = defaultdict(list)
    seen = set()
    for line in (Path(out_dir) / "results.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            key = (r["config"], r["prompt_index"], r["seed"])
            if key not in seen and (n_seeds is None or r["seed"] < n_seeds):
                seen.add(key)
                groups[r["config"]].append(r)
    for rs in groups.values():
        rs.sort(key=lambda r: (r["prompt_index"], r["seed"]))
    return groups


UNIT = "prompt+seed"  # set by main() from the design of the rows (blend.stats.default_unit) or --unit


def est(rs: list[dict], value) -> stats.Estimate:
    """Mean of value(row) with its cluster-robust standard error over ``UNIT``."""
    return stats.row_estimate(rs, value, UNIT)


def mean_se(rs: list[dict], value) -> tuple[float, float]:
    e = est(rs, value)
    return e.mean, e.se


def pm(ms, d: int = 3) -> str:
    m, s = (ms.mean, ms.se) if isinstance(ms, stats.Estimate) else ms
    return f"{m:.{d}f} ± {s:.{d}f}"


def pm_p(e: stats.Estimate | None, d: int = 3) -> str:
    return "—" if e is None else f"{e.mean:+.{d}f} ± {e.se:.{d}f} (p {stats.fmt_p(e.p_value)})"


def ci(e: stats.Estimate, d: int = 3) -> str:
    lo, hi = e.ci()
    return f"[{lo:+.{d}f}, {hi:+.{d}f}]"


def caption(rs: list[dict]) -> str:
    return (f"Mean ± standard error; the error is {stats.describe_unit(UNIT, rs)}. "
            "Paired Δ: the same prompt and seed, image by image; p: two-sided, Student's t with "
            "df = fewest clusters − 1.")


class Z:
    def __init__(self, stats: dict) -> None:
        self.ma, self.sa = stats[A]["mean"], stats[A]["std"]
        self.mj, self.sj = stats[J]["mean"], stats[J]["std"]

    def __call__(self, r: dict, w: float) -> float:
        return w * (r["rewards"][A] - self.ma) / self.sa + (1 - w) * (r["rewards"][J] - self.mj) / self.sj


def names(r: dict) -> list[str]:
    return [a["name"] if isinstance(a, dict) else a for a in r["adapters"]]


def kind(rs: list[dict]) -> str:
    r = rs[0]
    return "oracle" if r.get("role") == "oracle" else r["method"]


def w_of(rs: list[dict]) -> float | None:
    """Weight on the alignment adapter (None for base); oracles: from the objective they target."""
    r = rs[0]
    if r.get("role") == "oracle":
        t = r.get("targets") or ""
        return float(t.split("(")[1].split(",")[0]) if "(" in t else None
    if r["method"] == "single":
        return 1.0 if names(r) == ["alignment"] else 0.0
    if r["method"] == "base":
        return None
    return float(r["weights"][0])


def _rows_for(groups: dict[str, list[dict]], w: float) -> list[tuple[int, str, list[dict]]]:
    rows = []
    for label, rs in groups.items():
        k, wk = kind(rs), w_of(rs)
        if k in ORDER and (k in ("base", "single") or (wk is not None and abs(wk - w) < 1e-9)):
            rows.append((ORDER.index(k), label, rs))
    rows.sort(key=lambda t: (t[0], t[1]))
    return rows


def _name(rs: list[dict]) -> str:
    return NAMES.get(kind(rs), "") or f"Single adapter: {names(rs[0])[0]}"


def table1(groups: dict[str, list[dict]], z: Z, weights: list[float],
           forest: list[figures.ForestRow] | None = None) -> str:
    """The Table 1 sections (one per w); each paired Δ of them is also appended to ``forest`` (for the plot)."""
    out = []
    for w in weights:
        rows = _rows_for(groups, w)
        ref = next((rs for _, _lab, rs in rows if kind(rs) == "mpa"), None)
        orc = next((rs for _, _lab, rs in rows if kind(rs) == "oracle"), None)
        out += [f"### w = {w:g} (weight on alignment; {1 - w:g} on compressibility)", "",
                "| method | toy_alignment ↑ | jpeg_compressibility (−kB) ↑ | WR_z ↑ | Δ WR_z vs DB-MPA (paired) "
                "| Δ WR_z vs MORL oracle (paired) | s / image | UNet evals / image | n |",
                "|---|---|---|---|---|---|---|---|---|"]
        for _, _lab, rs in rows:
            cells = [_name(rs), pm(est(rs, lambda r: r["rewards"][A])), pm(est(rs, lambda r: r["rewards"][J])),
                     pm(est(rs, lambda r, w=w: z(r, w)))]
            for other in (ref, orc):
                if other is None or other is rs:
                    cells.append("—")
                else:
                    e = stats.paired(rs, other, lambda r, w=w: z(r, w), unit=UNIT)
                    cells.append(pm_p(e))
                    if forest is not None and e is not None:
                        forest.append(_forest_row(f"{_name(rs)} − {_name(other)}, w={w:g}", e, kind(rs)))
            cells += [f"{sum(r['seconds'] for r in rs) / len(rs):.3f}", f"{sum(r['unet_evals'] for r in rs) / len(rs):.0f}",
                      str(len(rs))]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    first = next(iter(groups.values()))
    out += [caption(first), ""]
    return "\n".join(out)


def _forest_row(label: str, e: stats.Estimate, key: str) -> figures.ForestRow:
    lo, hi = e.ci()
    return figures.ForestRow(label, e.mean, lo, hi, key)


def write_forest(path: Path, rows: list[figures.ForestRow], title: str, xlabel: str) -> None:
    """The paired differences of a table as a forest plot next to it (PNG + PDF): a point and its 95% interval per
    comparison, against a zero line."""
    figures.forest(rows, path, title, xlabel, f"Paired by prompt and seed; 95% intervals, Student's t; s.e. "
                                              f"{stats.describe_unit(UNIT).split(';')[0]}.")


COMPARISONS = [("mpa", "soup"), ("mpa", "soup_factors"), ("mpa_ls", "mpa"), ("mpa", "oracle"),
               ("compressibility", "mpa"), ("alignment", "mpa"), ("mpa_ls", "soup")]


def comparisons(groups: dict[str, list[dict]], z: Z, weights: list[float]) -> tuple[str, list[dict]]:
    """The paired differences the conclusions of docs/toy_world.md rest on, with 95% intervals, p-values and the naive
    (every image independent) error for comparison."""
    lines = ["| w | comparison (paired Δ WR_z) | Δ | s.e. | 95% interval | p | naive s.e. | s.e. / naive |",
             "|---|---|---|---|---|---|---|---|"]
    rec = []
    for w in weights:
        by = {}
        for _, _lab, rs in _rows_for(groups, w):
            k = kind(rs)
            by[names(rs[0])[0] if k == "single" else k] = rs
        for a, b in COMPARISONS:
            if a not in by or b not in by:
                continue
            e = stats.paired(by[a], by[b], lambda r, w=w: z(r, w), unit=UNIT)
            nv = stats.paired(by[a], by[b], lambda r, w=w: z(r, w), unit="image")
            label = f"{_name(by[a])} − {_name(by[b])}"
            lines.append(f"| {w:g} | {label} | {e.mean:+.3f} | {e.se:.3f} | {ci(e)} | {stats.fmt_p(e.p_value)} "
                         f"| {nv.se:.3f} | {e.se / nv.se:.1f} |")
            rec.append({"w": w, "a": a, "b": b, "label": f"{label}, w={w:g}", **e.to_dict(), "naive_se": nv.se})
    first = next(iter(groups.values()))
    lines += ["", caption(first) + " Naive s.e.: every image independent (what the earlier tables used).", ""]
    return "\n".join(lines), rec


def _errorbar(ax, key: str, pts: list, label: str | None = None, big: bool = False) -> None:
    st = figures.style(key)
    kw = st.kwargs(line=key not in ("single", "oracle", "base"))
    if label:
        kw["label"] = label
    ax.errorbar([p[0][0] for p in pts], [p[1][0] for p in pts], xerr=[p[0][1] for p in pts],
                yerr=[p[1][1] for p in pts], ms=8 if big else 5, **kw)


def pareto(dirs: list[dict[str, list[dict]]], path: Path) -> dict:
    plt = figures.setup()
    series: dict[str, dict[float, tuple]] = defaultdict(dict)
    for groups in dirs:
        for rs in groups.values():
            k, w = kind(rs), w_of(rs)
            if k not in ORDER:
                continue
            pt = (mean_se(rs, lambda r: r["rewards"][A]), mean_se(rs, lambda r: r["rewards"][J]), len(rs))
            if k == "single":  # the endpoints of every blend family
                for fam in ("mpa", "mpa_ls", "soup", "soup_factors"):
                    series[fam].setdefault(w, pt)
            if w is None:
                w = -1.0
            if w not in series[k] or series[k][w][2] < pt[2]:
                series[k][w] = pt
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    dropped: list[str] = []
    for key in ("soup", "soup_factors", "mpa_ls", "mpa", "single", "oracle", "base"):
        pts = sorted(series.get(key, {}).items())
        if not pts:
            continue
        _errorbar(ax, key, [p for _, p in pts], big=key in ("oracle", "base"))
        if key in ("mpa", "oracle"):
            dropped += figures.place_labels(ax, [p[0][0] for _, p in pts], [p[1][0] for _, p in pts],
                                            [f"{w:g}" for w, _ in pts], color=figures.style(key).color).dropped
    ax.set_xlabel("toy_alignment (judge log-prob; higher is better)")
    ax.set_ylabel("jpeg_compressibility (−kB; higher is better)")
    ax.set_title("Toy Pareto fronts over w (labels: weight on alignment)")
    fig.text(0.01, -0.02, f"Error bars: ± 1 s.e., {stats.describe_unit(UNIT).split(';')[0]}."
             + (f" Labels left off for lack of room: {', '.join(dropped)}." if dropped else ""), fontsize=7)
    figures.legend_outside(ax)
    figures.save(fig, path)
    plt.close(fig)
    return {k: {f"{w:g}": [p[0][0], p[0][1], p[1][0], p[1][1], p[2]] for w, p in v.items()} for k, v in series.items()}


def kla(groups: dict[str, list[dict]], oracle_lams: list[float], path: Path) -> str:
    plt = figures.setup()
    line, oracles = {}, {}
    for rs in groups.values():
        r = rs[0]
        vals = (mean_se(rs, lambda x: x["rewards"][A]), mean_se(rs, lambda x: x["rewards"][J]), rs)
        if r.get("role") == "oracle":
            oracles[oracle_lams[int(names(r)[0].split("_")[0].replace("oracle", ""))]] = vals  # "oracle<i>_w…"
        elif r["method"] == "kla":
            line[float(r["lam"])] = vals
        elif r["method"] == "single":
            line[1.0] = vals
        elif r["method"] == "base":
            line.setdefault(0.0, vals)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, j, name in ((axes[0], 0, "toy_alignment ↑"), (axes[1], 1, "jpeg_compressibility (−kB) ↑")):
        lams = sorted(line)
        st, so = figures.style("kla"), figures.style("oracle")
        ax.errorbar(lams, [line[x][j][0] for x in lams], yerr=[line[x][j][1] for x in lams], color=st.color,
                    marker=st.marker, linestyle=st.linestyle, label="DB-KLA: (1−λ)ε_pre + λ ε_align")
        ol = sorted(oracles)
        ax.errorbar(ol, [oracles[x][j][0] for x in ol], yerr=[oracles[x][j][1] for x in ol], color=so.color,
                    marker=so.marker, linestyle="none", ms=9, label="λ-specific oracle (kl_weight/λ)")
        ax.set_xlabel("λ")
        ax.set_ylabel(name)
    axes[0].set_title("(a) alignment")
    axes[1].set_title("(b) JPEG size")
    figures.legend_outside(axes[1])
    fig.suptitle(f"DB-KLA on the alignment adapter vs adapters retrained with kl_weight/λ "
                 f"(± s.e., {stats.describe_unit(UNIT).split(';')[0]})")
    figures.save(fig, path)
    plt.close(fig)
    lines = ["| λ | DB-KLA toy_alignment | DB-KLA jpeg (−kB) | oracle toy_alignment | oracle jpeg (−kB) | "
             "Δ align oracle − DB-KLA (paired) | 95% interval |", "|---|---|---|---|---|---|---|"]
    forest: list[figures.ForestRow] = []
    for lam in sorted(set(line) | set(oracles)):
        a = line.get(lam)
        o = oracles.get(lam)
        d, c = "—", "—"
        if a and o:
            e = stats.paired(o[2], a[2], lambda y: y["rewards"][A], unit=UNIT)
            d, c = pm_p(e), ci(e)
            forest.append(_forest_row(f"λ = {lam:g}", e, "oracle"))
        lines.append(f"| {lam:g} | {pm(a[0]) if a else '—'} | {pm(a[1]) if a else '—'} | {pm(o[0]) if o else '—'} "
                     f"| {pm(o[1]) if o else '—'} | {d} | {c} |")
    write_forest(path.with_name(path.stem + "_forest.png"), forest, "λ-specific oracle − DB-KLA (paired)",
                 "Δ toy_alignment (oracle − DB-KLA at the same λ)")
    first = next(iter(groups.values()))
    return "\n".join(lines) + "\n\n" + caption(first) + "\n"


def _write(out: Path, name: str, md: str, title: str) -> None:
    (out / f"{name}.md").write_text(md)
    (out / f"{name}.tex").write_text(figures.markdown_to_latex(md if md.lstrip().startswith("#") else
                                                               f"### {title}\n\n{md}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stats", default="toy/weights/reward_stats.json")
    ap.add_argument("--table1", default=None)
    ap.add_argument("--weights", default="0.2,0.5,0.8")
    ap.add_argument("--pareto", action="append", default=[])
    ap.add_argument("--kla", default=None)
    ap.add_argument("--kla_oracles", default="0.5,2")
    ap.add_argument("--out", default="docs/toy")
    ap.add_argument("--n_seeds", type=int, default=None, help="use only seeds < N of every run")
    ap.add_argument("--unit", choices=stats.UNITS, default=None,
                    help="unit of the standard errors [default: the design's: prompt for per-image noise, "
                         "prompt+seed for per-seed noise]")
    args = ap.parse_args()
    global UNIT
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    z = Z(json.loads(Path(args.stats).read_text()))
    ws = [float(x) for x in args.weights.split(",")]
    loaded = {d: load(d, args.n_seeds) for d in [args.table1, *args.pareto, args.kla] if d}
    every = [r for g in loaded.values() for rs in g.values() for r in rs]
    UNIT = args.unit or stats.default_unit(every)
    print(f"standard errors: {stats.describe_unit(UNIT, every)}")
    if args.table1:
        groups = loaded[args.table1]
        forest: list[figures.ForestRow] = []
        t = table1(groups, z, ws, forest)
        _write(out, "table1", t, "Toy Table 1")
        write_forest(out / "table1_forest.png", forest, "Toy Table 1: paired Δ WR_z", "Δ WR_z (method − reference)")
        c, rec = comparisons(groups, z, ws)
        _write(out, "comparisons", c, "Paired comparisons")
        write_forest(out / "comparisons_forest.png",
                     [figures.ForestRow(x["label"], x["mean"], *x["ci95"], x["a"] if x["a"] in figures.METHODS
                                        else "single") for x in rec], "Paired comparisons", "Δ WR_z")
        (out / "comparisons.json").write_text(json.dumps(rec, indent=1) + "\n")
        print(t)
        print(c)
    dirs = [loaded[d] for d in ([args.table1] if args.table1 else []) + args.pareto]
    if dirs:
        data = pareto(dirs, out / "pareto.png")
        (out / "pareto.json").write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {out / 'pareto.png'} and .pdf")
    if args.kla:
        t = kla(loaded[args.kla], [float(x) for x in args.kla_oracles.split(",")], out / "kla.png")
        _write(out, "kla", t, "DB-KLA")
        print(t)


if __name__ == "__main__":
    main()
