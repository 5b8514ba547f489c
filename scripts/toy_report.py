"""Toy Table 1 and the claims behind it, from ``run_DB.py`` output folders (used by ``scripts/toy_tables.sh``).

Every reward in these tables is standardised by the toy base model's statistics (``toy/weights/reward_stats.json``,
measured on the toy sampler of ``toy/model.py``), so the base model scores ≈ 0 and 1 = one base standard deviation:

* ``toy_align_heldout_z`` — alignment read by the HELD-OUT judge (nothing trains or guides on it); in WR;
* ``toy_jpeg_capped_z`` — the true JPEG size with a target (soft minimum of ``toy_jpeg_z`` and 1; training uses the
  −TV surrogate with the same target, ``toy_smoothness_capped_z``); in WR;
* ``toy_jpeg_z`` — the true JPEG size without the target, reported beside;
* ``toy_align_z`` — alignment read by the TRAINING judge (the one the adapters climbed), reported beside;
* ``toy_truth`` — the fraction of colour, shape and background that match the prompt, read from pixels with the
  generator's geometry (no learned model), reported beside.

WR(w) = w · toy_align_heldout_z + (1 − w) · toy_jpeg_capped_z. The claims are paired comparisons fixed here, before
any row is read, in two families, each decided together with Holm's adjustment (``blend.claims``):

* the primary family (``primary``), the paper's central claim at w = 0.5: a compromise beats both single adapters —
  DB-MPA against each single adapter, and each single adapter against the MORL oracle (4 comparisons);
* the secondary family (``secondary``): everything else (w = 0.2 and 0.8, soups, DB-MPA-LS, the base model, DB-MPA
  against the oracle, DB-KLA against the λ-specific models).

Comparisons against the MORL oracle pool its training seeds and add their spread to the variance.

    python scripts/toy_report.py --table1 outputs/toy_tables/table1 [--steps50 outputs/toy_tables/table1_steps50] \
        --out docs/toy
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blend import claims, stats  # noqa: E402
from blend.methods import get_method  # noqa: E402
from blend.methods.base import Base  # noqa: E402
from blend.methods.kla import Kla  # noqa: E402
from blend.methods.mpa import Mpa  # noqa: E402
from blend.methods.mpa_ls import MpaLS  # noqa: E402
from blend.methods.single import Oracle, Single  # noqa: E402
from blend.methods.soup import Soup, SoupFactors  # noqa: E402
from blend.styles import forest  # noqa: E402
from dbcore import figures  # noqa: E402

HELD, JPEG, JPEG_RAW, TRAIN, TRUTH = ("toy_align_heldout_z", "toy_jpeg_capped_z", "toy_jpeg_z", "toy_align_z",
                                     "toy_truth")
COLUMNS = [(HELD, "alignment, held-out judge (z)"), (JPEG, "JPEG compressibility, capped (z)"),
           (JPEG_RAW, "JPEG, no cap (z)"), (TRAIN, "alignment, training judge (z)"),
           (TRUTH, "ground truth (fraction right)")]
# the method names, from the registry (blend.methods)
BASE, SINGLE, SOUP, SOUP_F, MPA, LS, ORACLE = (m.name for m in (Base, Single, Soup, SoupFactors, Mpa, MpaLS, Oracle))
KLA = Kla.name
ORDER = [BASE, SINGLE, SOUP, SOUP_F, MPA, LS, ORACLE]
UNIT = "prompt"  # each (prompt, seed) has its own noise: images share only their prompt


def load(out_dir: str | Path) -> dict[str, list[dict]]:
    """Rows of ``results.jsonl`` by config, sorted by (prompt, seed), one row per (config, prompt, seed)."""
    path = Path(out_dir) / "results.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found; pass a run_DB.py output folder (bash scripts/toy_tables.sh makes "
                         f"them under outputs/toy_tables/)")
    groups: dict[str, dict] = defaultdict(dict)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            groups[r["config"]][(r["prompt_index"], r["seed"])] = r
    return {k: [v[key] for key in sorted(v)] for k, v in groups.items()}


def kind(rs: list[dict]) -> str:
    return ORACLE if rs[0].get("role") == ORACLE else rs[0]["method"]


def adapter(rs: list[dict]) -> str:
    a = rs[0]["adapters"][0]
    return a["name"] if isinstance(a, dict) else a


def w_of(rs: list[dict]) -> float | None:
    """Weight on alignment of a config (None: the base model, single adapters fit every w)."""
    r = rs[0]
    if kind(rs) == ORACLE:
        return float(r["targets"].split("(")[1].split(",")[0])
    return float(r["weights"][0]) if r["weights"] and kind(rs) not in (BASE, SINGLE) else None


def wr(w: float):
    return lambda r: w * r["rewards"][HELD] + (1 - w) * r["rewards"][JPEG]


def name(rs: list[dict]) -> str:
    k = kind(rs)
    if k == SINGLE:
        return f"Single adapter: {adapter(rs)}"
    if k == ORACLE:
        path = rs[0]["adapters"][0]["path"] if isinstance(rs[0]["adapters"][0], dict) else ""
        seed = next((p for p in Path(path).parts if p.startswith("seed")), "")
        return f"MORL oracle ({seed.replace('seed', 'training seed ')})" if seed else "MORL oracle"
    return get_method(k).display_name


def rows_for(groups: dict[str, list[dict]], w: float) -> list[list[dict]]:
    out = [rs for rs in groups.values() if kind(rs) in ORDER and (w_of(rs) is None or abs(w_of(rs) - w) < 1e-9)]
    return sorted(out, key=lambda rs: (ORDER.index(kind(rs)), name(rs)))


def pm(e: stats.Estimate) -> str:
    return f"{e.mean:.3f} ± {e.se:.3f}" if e.se == e.se else f"{e.mean:.3f}"


def table(groups: dict[str, list[dict]], w: float) -> str:
    rows = rows_for(groups, w)
    mpa = next((rs for rs in rows if kind(rs) == MPA), None)
    head = ["method", *[c for _, c in COLUMNS], f"WR (w = {w:g}, held-out)", "Δ WR vs DB-MPA (paired)",
            "UNet evals / image", "n"]
    lines = [f"### w = {w:g} (weight on alignment; {1 - w:g} on compressibility)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rs in rows:
        cells = [name(rs)] + [pm(stats.row_estimate(rs, lambda r, k=k: r["rewards"][k], UNIT)) for k, _ in COLUMNS]
        cells.append(pm(stats.row_estimate(rs, wr(w), UNIT)))
        d = None if mpa is None or rs is mpa else stats.paired(rs, mpa, wr(w), unit=UNIT)
        cells.append("—" if d is None else f"{d.mean:+.3f} ± {d.se:.3f} (p {stats.fmt_p(d.p_value)})")
        cells += [f"{sum(r['unet_evals'] for r in rs) / len(rs):.0f}", str(len(rs))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bases(groups: dict[str, list[dict]]) -> str:
    """Each single adapter minus the base model, paired, on every reward: the conflict and the balance of the bases."""
    base = next((rs for rs in groups.values() if kind(rs) == BASE), None)
    singles = [rs for rs in groups.values() if kind(rs) == SINGLE]
    if base is None or not singles:
        return ""
    lines = ["| adapter − base model (paired) | " + " | ".join(c for _, c in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for rs in singles:
        cells = []
        for k, _ in COLUMNS:
            d = stats.paired(rs, base, lambda r, k=k: r["rewards"][k], unit=UNIT)
            lo, hi = d.ci()
            cells.append(f"{d.mean:+.2f} [{lo:+.2f}, {hi:+.2f}]")
        lines.append(f"| {adapter(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def caption(groups: dict[str, list[dict]]) -> str:
    rs = next(iter(groups.values()))
    r = rs[0]
    return (f"{r['steps']} DDIM steps, guidance {r['guidance']:g}, η {r['eta']:g}; mean ± standard error, "
            f"{stats.describe_unit(UNIT, rs)}. All rewards in base-model standard deviations (the base ≈ 0). "
            "WR uses the held-out judge and the capped JPEG size; the JPEG size without the cap, the training judge "
            "and the ground truth are reported beside. Paired Δ: the same prompt and seed, image by image; p two-sided, "
            "Student's t, df = prompts − 1.")


def family(groups: dict[str, list[dict]], w: float = 0.5) -> list[claims.Comparison]:
    """The comparisons the README's conclusions rest on, fixed before the rows are read."""
    rows = rows_for(groups, w)
    by = {(kind(rs), adapter(rs) if kind(rs) == SINGLE else ""): rs for rs in rows if kind(rs) != ORACLE}
    oracles = [rs for rs in rows if kind(rs) == ORACLE]
    mpa = by.get((MPA, ""))
    out = []
    if mpa is None:
        return out
    for key, label in [((SINGLE, "alignment"), "single adapter: alignment"),
                       ((SINGLE, "compressibility"), "single adapter: compressibility"),
                       ((SOUP, ""), "rewarded soup (ΔW)"), ((SOUP_F, ""), "rewarded soup (factors)"),
                       ((LS, ""), "DB-MPA-LS"), ((BASE, ""), "base model")]:
        if key in by:
            out.append(claims.Comparison(f"w = {w:g}: DB-MPA − {label}", mpa, by[key], wr(w)))
    if oracles:
        out.append(claims.Comparison(f"w = {w:g}: DB-MPA − MORL oracle ({len(oracles)} training seed(s))", mpa,
                                     oracles, wr(w)))
        for key, label in [((SINGLE, "alignment"), "alignment"), ((SINGLE, "compressibility"), "compressibility")]:
            if key in by:  # written single − oracle so that the oracle's training seeds are pooled (blend.claims)
                out.append(claims.Comparison(f"w = {w:g}: single adapter: {label} − MORL oracle ({len(oracles)} "
                                             f"training seed(s))", by[key], oracles, wr(w)))
    return out


PRIMARY_W = 0.5
PRIMARY_LABELS = tuple(f"w = {PRIMARY_W:g}: {label}" for label in (
    "DB-MPA − single adapter: alignment", "DB-MPA − single adapter: compressibility",
    "single adapter: alignment − MORL oracle", "single adapter: compressibility − MORL oracle"))


def is_primary(c: claims.Comparison) -> bool:
    """Whether ``c`` belongs to the primary family (its label up to the oracle's seed count)."""
    return c.label.split(" (")[0] in PRIMARY_LABELS


def primary(comparisons: list[claims.Comparison]) -> list[claims.Comparison]:
    """The primary family: at w = 0.5, DB-MPA beats each single adapter and the MORL oracle beats each single adapter
    (the compromise-wins claim; 4 comparisons, Holm over these 4 only)."""
    return [c for c in comparisons if is_primary(c)]


def secondary(comparisons: list[claims.Comparison]) -> list[claims.Comparison]:
    """Every other comparison of the report, one family of its own."""
    return [c for c in comparisons if not is_primary(c)]


def oracle_lambda(rs: list[dict]) -> float | None:
    """λ of a λ-specific oracle, read from its folder (``oracles_kl/lam<λ>/seed<s>``, scripts/build_toy.sh)."""
    a = rs[0]["adapters"][0]
    part = next((p for p in Path(a["path"] if isinstance(a, dict) else "").parts if p.startswith("lam")), None)
    return float(part[3:]) if part else None


def kla_family(groups: dict[str, list[dict]]) -> list[claims.Comparison]:
    """DB-KLA at λ minus the λ-specific oracles (the alignment adapter retrained with kl_weight/λ; training seeds
    pooled, their spread in the variance), on alignment read by the held-out and by the training judge."""
    kla = {round(float(rs[0]["lam"]), 6): rs for rs in groups.values() if kind(rs) == KLA}
    oracles: dict[float, list] = defaultdict(list)
    for rs in groups.values():
        lam = oracle_lambda(rs) if kind(rs) == ORACLE else None
        if lam is not None:
            oracles[round(lam, 6)].append(rs)
    out = []
    for lam in sorted(oracles):
        if lam in kla:
            for key, judge in ((HELD, "held-out judge"), (TRAIN, "training judge")):
                out.append(claims.Comparison(
                    f"λ = {lam:g}: DB-KLA − λ-specific model ({len(oracles[lam])} training seed(s)), alignment, "
                    f"{judge}", kla[lam], oracles[lam], lambda r, k=key: r["rewards"][k]))
    return out


def oracle_share(groups: dict[str, list[dict]], w: float) -> dict | None:
    """DB-MPA's share of the MORL oracle's WR gain over the base model, (WR_mpa − WR_base)/(WR_oracle − WR_base)."""
    rows = rows_for(groups, w)
    get = {kind(rs): rs for rs in rows}
    oracles = [rs for rs in rows if kind(rs) == ORACLE]
    if not oracles or MPA not in get or BASE not in get:
        return None
    mean = lambda rs: stats.row_estimate(rs, wr(w), UNIT).mean  # noqa: E731
    base, m = mean(get[BASE]), mean(get[MPA])
    o = sum(mean(rs) for rs in oracles) / len(oracles)
    return {"w": w, "wr_base": base, "wr_mpa": m, "wr_oracle": o,
            "share": (m - base) / (o - base) if abs(o - base) > 1e-12 else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table1", required=True, help="run_DB.py output folder of the main table (10 steps)")
    ap.add_argument("--steps50", default=None, help="the same table at 50 steps (w = 0.5)")
    ap.add_argument("--kla", default=None, help="run_DB.py output folder of the DB-KLA sweep (its summary is kept)")
    ap.add_argument("--budget_run", default=None,
                    help="run_DB.py output folder of the compute-matched table (its summary is kept)")
    ap.add_argument("--weights", default="0.2,0.5,0.8")
    ap.add_argument("--out", default="docs/toy")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    groups = load(args.table1)
    ws = [float(x) for x in args.weights.split(",")]
    md = "\n".join(table(groups, w) for w in ws) + "\n" + caption(groups) + "\n"
    (out / "table1.md").write_text(md, encoding="utf-8")
    (out / "table1.tex").write_text(figures.markdown_to_latex(md, caption(groups)), encoding="utf-8")
    (out / "bases.md").write_text(bases(groups) + "\n" + caption(groups) + " Brackets: 95% intervals.\n",
                                  encoding="utf-8")
    fam = [c for w in ws for c in family(groups, w)]
    if args.kla:
        fam += kla_family(load(args.kla))
    records_primary = claims.decide(primary(fam), UNIT)
    records = claims.decide(secondary(fam), UNIT)
    shares = [s for s in (oracle_share(groups, w) for w in ws) if s]
    extra = {}
    if args.steps50:
        g50 = load(args.steps50)
        md50 = table(g50, 0.5) + "\n" + caption(g50) + "\n"
        (out / "table1_steps50.md").write_text(md50, encoding="utf-8")
        fam50 = family(g50, 0.5)
        rec50 = {"primary": claims.decide(primary(fam50), UNIT), "secondary": claims.decide(secondary(fam50), UNIT)}
        (out / "claims_steps50.md").write_text(
            "Primary family (Holm over its own comparisons):\n\n" + claims.markdown(rec50["primary"])
            + "\nSecondary family:\n\n" + claims.markdown(rec50["secondary"]), encoding="utf-8")
        extra["steps50"] = rec50
    if args.budget_run:
        (out / "table1_compute_matched.md").write_text(
            (Path(args.budget_run) / "summary.md").read_text(encoding="utf-8"), encoding="utf-8")
    if args.kla:
        (out / "kla.md").write_text((Path(args.kla) / "summary.md").read_text(encoding="utf-8"), encoding="utf-8")
    (out / "claims.md").write_text(
        f"## Primary family: a compromise wins at w = {PRIMARY_W:g} ({len(records_primary)} comparisons)\n\n"
        + claims.markdown(records_primary)
        + f"\n## Secondary family ({len(records)} comparisons)\n\n" + claims.markdown(records)
        + "\nTwo families of paired comparisons (of WR on the held-out judge; the DB-KLA rows compare alignment), "
        f"each clustered by prompt ({stats.describe_unit(UNIT, next(iter(groups.values())))}), "
        "fixed before the rows were read; Holm p adjusts within each family, and each family's simultaneous "
        "intervals hold together. Comparisons with the MORL oracle pool its training seeds and add their spread to "
        "the variance.\n\n"
        + "\n".join(f"DB-MPA's share of the oracle's WR gain at w = {s['w']:g}: {s['share']:.2f} "
                    f"(base {s['wr_base']:+.3f}, DB-MPA {s['wr_mpa']:+.3f}, oracle {s['wr_oracle']:+.3f})"
                    for s in shares) + "\n", encoding="utf-8")
    (out / "claims.json").write_text(json.dumps({"primary": records_primary, "family": records,
                                                 "oracle_share": shares, **extra}, indent=1), encoding="utf-8")
    if records_primary or records:
        forest([figures.ForestRow(("primary: " if r in records_primary else "") + r["label"], r["mean"],
                                  *r["ci_simultaneous"], key=MPA) for r in records_primary + records],
               out / "claims_forest", "The toy's claims: paired differences", "Δ WR, held-out judge (DB-KLA rows: Δ alignment)",
               note="simultaneous intervals (Bonferroni within each family)")
    print(md)
    print(claims.markdown(records_primary))
    print(claims.markdown(records))


if __name__ == "__main__":
    main()
