"""Toy tables and plots from ``run_DB.py`` output folders (used by ``scripts/toy_tables.sh``).

The two toy rewards live on different scales (toy_alignment: std ≈ 3 nats on base samples;
jpeg_compressibility: std ≈ 0.3 kB), so the weighted reward is computed on rewards standardised by
the base model's statistics (``toy/weights/reward_stats.json``, the same σ the MORL oracles were
trained with):

    WR_z(w) = w · (r_align − μ_align)/σ_align + (1 − w) · (r_jpeg − μ_jpeg)/σ_jpeg

(w = weight of the alignment adapter; the base model scores ≈ 0). Differences between methods are
paired (same prompt and seed → same noise), mean ± s.e. over images.

    python scripts/toy_report.py --stats toy/weights/reward_stats.json --table1 DIR --pareto DIR \
        --kla DIR --kla_oracles 0.5,2 --out docs/toy
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

A, J = "toy_alignment", "jpeg_compressibility"
ORDER = ["base", "single", "soup", "soup_factors", "mpa", "mpa_ls", "oracle"]
NAMES = {"base": "Base model", "soup": "Rewarded soup (ΔW)", "soup_factors": "Rewarded soup (factors)",
         "mpa": "DB-MPA", "mpa_ls": "DB-MPA-LS", "oracle": "MORL oracle"}


def load(out_dir: str | Path) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    seen = set()
    for line in (Path(out_dir) / "results.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            key = (r["config"], r["prompt_index"], r["seed"])
            if key not in seen:
                seen.add(key)
                groups[r["config"]].append(r)
    for rs in groups.values():
        rs.sort(key=lambda r: (r["prompt_index"], r["seed"]))
    return groups


def mean_se(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    m = sum(xs) / n
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n) if n > 1 else 0.0)


def pm(ms: tuple[float, float], d: int = 3) -> str:
    return f"{ms[0]:.{d}f} ± {ms[1]:.{d}f}"


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


def table1(groups: dict[str, list[dict]], z: Z, weights: list[float]) -> str:
    out = []
    for w in weights:
        rows = []
        for label, rs in groups.items():
            k, wk = kind(rs), w_of(rs)
            if k in ("base", "single") or (wk is not None and abs(wk - w) < 1e-9):
                rows.append((ORDER.index(k), label, rs))
        rows.sort(key=lambda t: (t[0], t[1]))
        ref = next((rs for _, _lab, rs in rows if kind(rs) == "mpa"), None)
        orc = next((rs for _, _lab, rs in rows if kind(rs) == "oracle"), None)
        out += [f"### w = {w:g} (weight on alignment; {1 - w:g} on compressibility)", "",
                "| method | toy_alignment ↑ | jpeg_compressibility (−kB) ↑ | WR_z ↑ | Δ WR_z vs DB-MPA (paired) "
                "| Δ WR_z vs MORL oracle (paired) | s / image | UNet evals / image | n |",
                "|---|---|---|---|---|---|---|---|---|"]
        for _, _lab, rs in rows:
            k = kind(rs)
            name = NAMES.get(k, "") or f"Single adapter: {names(rs[0])[0]}"
            wr = [z(r, w) for r in rs]
            cells = [name, pm(mean_se([r["rewards"][A] for r in rs])), pm(mean_se([r["rewards"][J] for r in rs])),
                     pm(mean_se(wr))]
            for other in (ref, orc):
                if other is None or other is rs or len(other) != len(rs):
                    cells.append("—")
                else:
                    cells.append(pm(mean_se([a - z(b, w) for a, b in zip(wr, other)])))
            cells += [f"{sum(r['seconds'] for r in rs) / len(rs):.3f}", f"{sum(r['unet_evals'] for r in rs) / len(rs):.0f}",
                      str(len(rs))]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def pareto(dirs: list[dict[str, list[dict]]], path: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[float, tuple]] = defaultdict(dict)
    for groups in dirs:
        for rs in groups.values():
            k, w = kind(rs), w_of(rs)
            if k in ("kla",):
                continue
            pt = (mean_se([r["rewards"][A] for r in rs]), mean_se([r["rewards"][J] for r in rs]), len(rs))
            if k == "single":  # the endpoints of every blend family
                for fam in ("mpa", "mpa_ls", "soup", "soup_factors"):
                    series[fam].setdefault(w, pt)
            key = k if k != "single" else "single"
            if w is None:
                w = -1.0
            if w not in series[key] or series[key][w][2] < pt[2]:
                series[key][w] = pt
    fig, ax = plt.subplots(figsize=(7, 5))
    styles = {"mpa": ("o-", "DB-MPA"), "mpa_ls": ("^--", "DB-MPA-LS"), "soup": ("D:", "Rewarded soup (ΔW)"),
              "soup_factors": ("v:", "Rewarded soup (factors)"), "oracle": ("P", "MORL oracle"),
              "single": ("s", "single adapters"), "base": ("k*", "base model")}
    for key, (fmt, name) in styles.items():
        pts = sorted(series.get(key, {}).items())
        if not pts:
            continue
        xs, ys = [p[1][0][0] for p in pts], [p[1][1][0] for p in pts]
        ax.errorbar(xs, ys, xerr=[p[1][0][1] for p in pts], yerr=[p[1][1][1] for p in pts], fmt=fmt, label=name,
                    capsize=2, ms=8 if key in ("oracle", "base") else 5)
        if key in ("mpa", "oracle"):
            for w, p in pts:
                ax.annotate(f"{w:g}", (p[0][0], p[1][0]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("toy_alignment (judge log-prob; higher is better)")
    ax.set_ylabel("jpeg_compressibility (−kB; higher is better)")
    ax.set_title("Toy Pareto fronts over w (labels: weight on alignment)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {k: {f"{w:g}": [p[0][0], p[0][1], p[1][0], p[1][1], p[2]] for w, p in v.items()} for k, v in series.items()}


def kla(groups: dict[str, list[dict]], oracle_lams: list[float], path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    line, oracles = {}, {}
    for rs in groups.values():
        r = rs[0]
        vals = (mean_se([x["rewards"][A] for x in rs]), mean_se([x["rewards"][J] for x in rs]), rs)
        if r.get("role") == "oracle":
            oracles[oracle_lams[int(names(r)[0].split("_")[0].replace("oracle", ""))]] = vals  # "oracle<i>_w…"
        elif r["method"] == "kla":
            line[float(r["lam"])] = vals
        elif r["method"] == "single":
            line[1.0] = vals
        elif r["method"] == "base":
            line.setdefault(0.0, vals)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, j, name in ((axes[0], 0, "toy_alignment ↑"), (axes[1], 1, "jpeg_compressibility (−kB) ↑")):
        lams = sorted(line)
        ax.errorbar(lams, [line[x][j][0] for x in lams], yerr=[line[x][j][1] for x in lams], fmt="o-",
                    label="DB-KLA: (1−λ)ε_pre + λ ε_align", capsize=2)
        ol = sorted(oracles)
        ax.errorbar(ol, [oracles[x][j][0] for x in ol], yerr=[oracles[x][j][1] for x in ol], fmt="P", ms=10,
                    label="λ-specific oracle (kl_weight/λ)", capsize=2)
        ax.set_xlabel("λ")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("DB-KLA on the alignment adapter vs adapters retrained with kl_weight/λ")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    lines = ["| λ | DB-KLA toy_alignment | DB-KLA jpeg (−kB) | oracle toy_alignment | oracle jpeg (−kB) | "
             "Δ align oracle − DB-KLA (paired) |", "|---|---|---|---|---|---|"]
    for lam in sorted(set(line) | set(oracles)):
        a = line.get(lam)
        o = oracles.get(lam)
        d = "—"
        if a and o and len(a[2]) == len(o[2]):
            d = pm(mean_se([y["rewards"][A] - x["rewards"][A] for x, y in zip(a[2], o[2])]))
        lines.append(f"| {lam:g} | {pm(a[0]) if a else '—'} | {pm(a[1]) if a else '—'} | {pm(o[0]) if o else '—'} "
                     f"| {pm(o[1]) if o else '—'} | {d} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stats", default="toy/weights/reward_stats.json")
    ap.add_argument("--table1", default=None)
    ap.add_argument("--weights", default="0.2,0.5,0.8")
    ap.add_argument("--pareto", action="append", default=[])
    ap.add_argument("--kla", default=None)
    ap.add_argument("--kla_oracles", default="0.5,2")
    ap.add_argument("--out", default="docs/toy")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    z = Z(json.loads(Path(args.stats).read_text()))
    if args.table1:
        t = table1(load(args.table1), z, [float(x) for x in args.weights.split(",")])
        (out / "table1.md").write_text(t)
        print(t)
    dirs = [load(d) for d in ([args.table1] if args.table1 else []) + args.pareto]
    if dirs:
        data = pareto(dirs, out / "pareto.png")
        (out / "pareto.json").write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {out / 'pareto.png'}")
    if args.kla:
        t = kla(load(args.kla), [float(x) for x in args.kla_oracles.split(",")], out / "kla.png")
        (out / "kla.md").write_text(t)
        print(t)


if __name__ == "__main__":
    main()
