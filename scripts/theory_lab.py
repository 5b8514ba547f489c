"""Theory lab (issue 6): Diffusion Blend on Gaussian-mixture data, where every target is exact.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/theory_lab.py                 # → docs/theory/ (a few minutes, 1 core)
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/theory_lab.py --smoke --out /tmp/lab   # seconds

Writes RESULTS.md (tables + figures), *.png, results.json (every row) and config.json (the
resolved config, package versions, git commit, runtime) into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dbcore.figures import markdown_to_latex  # noqa: E402
from dbcore.io import atomic_path, write_json_atomic, write_text_atomic  # noqa: E402
from dbcore.logging import get_logger, setup_logging  # noqa: E402
from dbcore.provenance import provenance  # noqa: E402
from theory import plots  # noqa: E402
from theory.experiments import LabConfig, run_all  # noqa: E402

log = get_logger("theory_lab")

Col = tuple[str, str, Callable[[dict], object]]


def _f(x: float, digits: int = 3) -> str:
    if isinstance(x, float) and (abs(x) >= 1e4 or (0 < abs(x) < 10 ** -digits)):
        return f"{x:.1e}"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def md_table(rows: Sequence[dict], cols: Sequence[Col]) -> str:
    head = "| " + " | ".join(c[1] for c in cols) + " |"
    sep = "|" + "|".join("---:" for _ in cols) + "|"
    body = ["| " + " | ".join(_f(c[2](r)) for c in cols) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def _gap(m: str) -> Callable[[dict], str]:
    return lambda r: f"{r[f'{m}_gap']:+.3f} ({r[f'{m}_z']:+.1f})"


def _sampled_cols() -> list[Col]:
    return [("db_gap", "DB gap (z)", _gap("db")), ("oracle_gap", "oracle gap (z)", _gap("oracle")),
            ("db_sw2", "SW2 DB", lambda r: r["db_sw2"]), ("oracle_sw2", "SW2 oracle", lambda r: r["oracle_sw2"]),
            ("floor_sw2", "SW2 floor", lambda r: r["floor_sw2"]), ("db_tv", "TV DB", lambda r: r["db_tv"]),
            ("oracle_tv", "TV oracle", lambda r: r["oracle_tv"]), ("floor_tv", "TV floor", lambda r: r["floor_tv"])]


def save_fig(fig, path: Path) -> None:
    """PNG (no software stamp, so reruns give the same bytes for the same pixels) and PDF side by side."""
    for fmt in ("png", "pdf"):
        buf = io.BytesIO()
        meta = {"Software": None} if fmt == "png" else {"Creator": None, "Producer": None, "CreationDate": None}
        fig.savefig(buf, format=fmt, dpi=130, metadata=meta, bbox_inches="tight")
        with atomic_path(path.with_suffix("." + fmt)) as tmp:
            tmp.write_bytes(buf.getvalue())
    plots.plt.close(fig)


def jensen_table(rows: Sequence[dict], n_points: int = 5) -> tuple[list[dict], list[Col]]:
    """Per (separation, α): Jensen gap ratio and DB's ε error at a few timesteps, plus trajectory means."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["separation"], r["alpha"]), []).append(r)
    steps = len(next(iter(groups.values())))
    picks = sorted({round(i * (steps - 1) / (n_points - 1)) for i in range(n_points)})
    t_of = {p: next(iter(groups.values()))[p]["t"] for p in picks}
    out = []
    for (s, alpha), rs in groups.items():
        row = {"separation": s, "alpha": alpha,
               "mean_blend_err": sum(r["blend_err"] for r in rs) / len(rs),
               "mean_control": sum(r["control"] for r in rs) / len(rs)}
        for p in picks:
            row[f"rel_{p}"] = rs[p]["gap"] / rs[p]["control"] if rs[p]["control"] > 0 else 0.0
            row[f"err_{p}"] = rs[p]["blend_err"]
        out.append(row)
    cols: list[Col] = [("separation", "spacing", lambda r: f"{r['separation']:g}"),
                       ("alpha", "α", lambda r: f"{r['alpha']:g}")]
    cols += [(f"rel_{p}", f"‖Δ‖/‖u‖ t={t_of[p]}", lambda r, p=p: r[f"rel_{p}"]) for p in picks]
    cols += [(f"err_{p}", f"ε err t={t_of[p]}", lambda r, p=p: r[f"err_{p}"]) for p in picks]
    cols += [("mean_blend_err", "ε err (traj. mean)", lambda r: r["mean_blend_err"]),
             ("mean_control", "‖u‖√(1−ᾱ) (traj. mean)", lambda r: r["mean_control"])]
    return out, cols


def write_report(res: dict, cfg: LabConfig, out: Path, runtime_s: float) -> str:
    figs = {"samples.png": plots.samples_figure(res["pictures"], cfg.separation, cfg.sigma),
            "mpa_w.png": plots.mpa_w_figure(res["mpa_w"]),
            "mpa_separation.png": plots.mpa_separation_figure(res["mpa_sep"]),
            "kla.png": plots.kla_figure(res["kla"]),
            "ls.png": plots.ls_figure(res["ls"]),
            "jensen.png": plots.jensen_figure(res["jensen"], cfg.separation),
            "control.png": plots.control_figure(res["control"], res["discretisation"])}
    for name, fig in figs.items():
        save_fig(fig, out / name)

    a = lambda k: (k, "α", lambda r: f"{r[k]:g}")  # noqa: E731
    w_col: Col = ("w", "w", lambda r: f"{r['w']:g}")
    target_col: Col = ("target_rw", "E_target[r(w)]", lambda r: r["target_rw"])
    sep_col: Col = ("separation", "spacing", lambda r: f"{r['separation']:g}")
    jrows, jcols = jensen_table(res["jensen"])
    md = [
        "# Theory lab results",
        "",
        f"Produced by `scripts/theory_lab.py` (config `{cfg.name}`, {runtime_s:.0f} s). Every sampler is the "
        f"project's `ddim_step` (SD1.5 DDIM schedule, {cfg.steps} steps, η = {cfg.eta:g}) driven by the exact ε of "
        f"Gaussian mixtures, blended with `blend.eps`; N = {cfg.n_samples} samples per distribution, shared noise "
        "across methods. References: **exact** = samples drawn from the closed-form target; **oracle** = the "
        "target's exact ε through the same DDIM chain and noise (no blend error, only the sampler's own).",
        "",
        "Columns: *gap (z)* = E_sampled[r(w)] − E_target[r(w)] (closed form) and that gap in standard errors; "
        "*SW2* = sliced 2-Wasserstein distance to an exact sample; *floor* = the same metric between two "
        "independent exact samples (sampling noise alone); *TV* = mode-weight error ½‖mean γ(x) − π‖₁ under the "
        "target's responsibilities (≈ 0 for exact samples).",
        "",
        "## 1. Control: single Gaussian (blending is exact)",
        "",
        "![control](control.png)",
        "",
        "`max ε err` = max |ε_DB − ε_target| over all steps and samples; `max x diff` = max |x_DB − x_oracle| "
        "(same noise). `z` = largest |z| of the sample mean / covariance entries against the exact law of the "
        "DDIM chain (computed in closed form: ε is affine, every step is a Gaussian linear map). "
        "`chain cov bias` = ‖C_chain − C_target‖/‖C_target‖: the discretisation error of the sampler itself.",
        "",
        md_table(res["control"], [
            ("dim", "d", lambda r: str(r["dim"])), ("method", "method", lambda r: r["method"]),
            ("setting", "setting", lambda r: r["setting"]), ("e", "max ε err", lambda r: f"{r['max_eps_err']:.1e}"),
            ("x", "max x diff", lambda r: f"{r['max_x_diff']:.1e}"),
            ("zm", "z mean", lambda r: r["z_mean_vs_chain"]), ("zc", "z cov", lambda r: r["z_cov_vs_chain"]),
            ("cb", "chain cov bias", lambda r: r["chain_cov_rel_bias"]),
            ("mb", "chain mean bias", lambda r: r["chain_mean_bias"]),
            ("g", "E[r] gap ± SE", lambda r: f"{r['rw_gap']:+.4f} ± {r['rw_se']:.4f}")]),
        "",
        "Discretisation of the DDIM chain (η = 1) alone, single Gaussian, exact ε of the w = ½ target:",
        "",
        md_table(res["discretisation"], [
            ("dim", "d", lambda r: str(r["dim"])), ("steps", "steps", lambda r: str(r["steps"])),
            ("m", "‖m_chain − m‖", lambda r: r["mean_bias"]), ("c", "‖C_chain − C‖/‖C‖", lambda r: r["cov_rel_bias"]),
            ("tr", "tr C_chain / tr C", lambda r: r["trace_ratio"])]),
        "",
        "## 2. DB-MPA against the exact MORL target",
        "",
        "![samples](samples.png)",
        "",
        f"### 2a. Over w (square world, mode spacing {cfg.separation:g}, σ = {cfg.sigma:g})",
        "",
        "![mpa_w](mpa_w.png)",
        "",
        md_table(res["mpa_w"], [a("alpha"), w_col, target_col, *_sampled_cols()]),
        "",
        "### 2b. As α shrinks and the modes separate (spacing 0 = single Gaussian)",
        "",
        "![mpa_separation](mpa_separation.png)",
        "",
        md_table(sorted(res["mpa_sep"], key=lambda r: (r["separation"], -r["alpha"], r["w"])),
                 [sep_col, a("alpha"), w_col, target_col, *_sampled_cols()]),
        "",
        f"### 2c. Stress: d = {cfg.stress_dim}, {cfg.stress_components} anisotropic modes (spacing {cfg.stress_separation:g})",
        "",
        "*random*: two random unit reward directions; *aligned*: r_i points from the centre of the modes to "
        "mode i (each reward prefers a different mode).",
        "",
        md_table(res["stress"], [("rewards", "rewards", lambda r: r["rewards"]), a("alpha"), w_col, target_col,
                                 *_sampled_cols()]),
        "",
        "## 3. DB-KLA over λ against the exact α/λ targets (reward r1)",
        "",
        "![kla](kla.png)",
        "",
        md_table(res["kla"], [a("alpha"), ("lam", "λ", lambda r: f"{r['lam']:g}"),
                              ("target_rw", "E_target[r1]", lambda r: r["target_rw"]), *_sampled_cols()]),
        "",
        f"## 4. DB-MPA-LS against DB-MPA (w = {cfg.ls_w:g})",
        "",
        "![ls](ls.png)",
        "",
        "*sample* = an independent model draw per sample and step (what `run_DB.py` does by default, "
        "`--ls_draw per_image`; the process of Prop. 2 sampled N times); *batch* = one model draw per step for the "
        f"whole batch (the paper's code, `--ls_draw per_batch_step`), {cfg.ls_batch_repeats} independent draw "
        "sequences on one noise draw (max in brackets). *floor* = SW2 between two DB-MPA runs with independent "
        "noise. Gaps are E_LS[r(w)] − E_MPA[r(w)] with their standard errors over the right unit: for *sample* "
        "the samples (independent noise and draws); for *batch* all N samples share one draw sequence, so the "
        f"unit is the sequence: the spread of the {cfg.ls_batch_repeats} sequence means (*seq SE*, df = "
        f"{cfg.ls_batch_repeats - 1}) combined with the sampling error of the shared noise.",
        "",
        md_table(res["ls"], [
            a("alpha"), ("steps", "steps", lambda r: str(r["steps"])),
            ("s", "SW2 sample", lambda r: r["ls_sample_sw2_vs_mpa"]),
            ("b", "SW2 batch (max)", lambda r: f"{r['ls_batch_sw2_vs_mpa']:.3f} ({r['ls_batch_sw2_max']:.3f})"),
            ("f", "SW2 floor", lambda r: r["floor_sw2"]),
            ("gs", "gap sample ± SE", lambda r: f"{r['ls_sample_gap_vs_mpa']:+.3f} ± {r['ls_sample_gap_se']:.3f}"),
            ("gb", "gap batch ± SE (max abs gap)", lambda r: f"{r['ls_batch_gap_vs_mpa']:+.3f} ± "
             f"{r.get('ls_batch_gap_se', float('nan')):.3f} ({r['ls_batch_gap_absmax']:.3f})"),
            ("sq", "seq SE", lambda r: r.get("ls_batch_seq_se", float("nan"))),
            ("tm", "TV MPA", lambda r: r["mpa_tv"]), ("ts", "TV sample", lambda r: r["ls_sample_tv"]),
            ("tb", "TV batch", lambda r: r["ls_batch_tv"])]),
        "",
        "## 5. The Jensen gap along DB-MPA trajectories (w = ½)",
        "",
        "![jensen](jensen.png)",
        "",
        "‖Δ‖/‖u‖: size of the Jensen gap Δ_w = u_w − ū_w relative to the exact control u_w of the weighted reward "
        "(Prop. 1, Lemma 1). ε err: ‖ε_DB − ε_target‖ = √(1−ᾱ)‖Σ_i w_i Δ_i − Δ_w‖, the term Lemma 2 drops; "
        "means over trajectories, t = 1000 is pure noise.",
        "",
        md_table(sorted(jrows, key=lambda r: (r["separation"], -r["alpha"])), jcols),
        "",
    ]
    text = "\n".join(md)
    write_text_atomic(out / "RESULTS.md", text)
    write_text_atomic(out / "RESULTS_tables.tex", markdown_to_latex(text, (
        f"N = {cfg.n_samples} independent samples per distribution (each its own noise); standard errors over "
        "samples, except DB-MPA-LS per batch, whose unit is the draw sequence.")))
    return text


def _jsonable(res: dict) -> dict:
    return {k: v for k, v in res.items() if k != "pictures"}


def main(argv: Sequence[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "theory",
                   help="output directory (default: docs/theory)")
    p.add_argument("--smoke", action="store_true", help="the smallest configuration (seconds; used by the tests)")
    p.add_argument("--seed", type=int, default=None, help="override the config seed")
    p.add_argument("--n-samples", type=int, default=None, help="override samples per distribution")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)

    setup_logging()
    torch.set_num_threads(args.threads)
    cfg = LabConfig.smoke() if args.smoke else LabConfig()
    overrides = {k: v for k, v in {"seed": args.seed, "n_samples": args.n_samples}.items() if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    log.info("theory lab, config %s → %s", cfg.name, out)

    t0 = time.perf_counter()
    res = run_all(cfg)
    runtime = time.perf_counter() - t0
    write_report(res, cfg, out, runtime)
    write_json_atomic(out / "results.json", _jsonable(res))
    write_json_atomic(out / "config.json", {"config": dataclasses.asdict(cfg), "runtime_s": round(runtime, 1),
                                            "threads": args.threads, "command": " ".join(sys.argv), **provenance()})
    log.info("done in %.1f s; see %s", runtime, out / "RESULTS.md")
    return out


if __name__ == "__main__":
    main()
