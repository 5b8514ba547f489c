"""Figures of the theory lab; each function takes result rows and returns a matplotlib Figure.

Style from ``dbcore.figures`` (DejaVu Sans, legends outside the data, every panel labelled);
colour encodes α (or the mode spacing), the marker the method.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from dbcore import figures
from theory.mixture import square_world

plt = figures.setup()


def _by(rows: Sequence[dict], key: str) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


def _log_alpha_axis(ax, alphas: Sequence[float]) -> None:
    """Log-scaled α axis with one plain label per measured α."""
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sorted(set(alphas)))
    ax.set_xticklabels([f"{a:g}" for a in sorted(set(alphas))])


def _colors(n: int) -> list:
    cmap = plt.get_cmap("viridis")
    return [cmap(i / max(n - 1, 1) * 0.9) for i in range(n)]


def samples_figure(pictures: dict[float, dict[str, torch.Tensor]], separation: float, sigma: float,
                   n_show: int = 1500) -> Figure:
    """Rows: α; columns: base, fine-tuned r1/r2, exact MORL target (w = ½), DB-MPA, DB-MPA-LS."""
    alphas = list(pictures)
    cols = list(pictures[alphas[0]])
    fig, axes = plt.subplots(len(alphas), len(cols), figsize=(2.3 * len(cols), 2.4 * len(alphas)), squeeze=False,
                             layout="constrained")
    means = square_world(separation, sigma).base.means
    lim = separation / 2 + 4 * sigma + 0.8
    for i, alpha in enumerate(alphas):
        for j, name in enumerate(cols):
            ax = axes[i][j]
            x = pictures[alpha][name][:n_show]
            ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.35, color="#0072B2" if j < 4 else "#D55E00", rasterized=True)
            ax.scatter(means[:, 0], means[:, 1], marker="+", color="k", s=40)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"α = {alpha:g}\nx₂ (r2)", fontsize=9)
            if i == len(alphas) - 1:
                ax.set_xlabel("x₁ (r1)", fontsize=8)
    fig.suptitle(f"square world, mode spacing {separation:g} (σ = {sigma:g}); r1 = x₁, r2 = x₂, w = ½; "
                 "blue: exact, red: sampled with DB (DB-MPA-LS: one draw per sample and step; batch draw: one per "
                 "step for all)", fontsize=9)

    return fig


def mpa_w_figure(rows: Sequence[dict]) -> Figure:
    """(a) Pareto fronts E[r1] vs E[r2] over w; (b) weighted-reward gap vs w, per α."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    groups = _by(rows, "alpha")
    for c, (alpha, rs) in zip(_colors(len(groups)), groups.items()):
        a.plot([r["target_r1"] for r in rs], [r["target_r2"] for r in rs], "-", color=c, lw=1.5, label=f"exact α={alpha:g}")
        a.plot([r["db_r1"] for r in rs], [r["db_r2"] for r in rs], "o", color=c, ms=4)
        a.plot([r["oracle_r1"] for r in rs], [r["oracle_r2"] for r in rs], "x", color=c, ms=4)
        w = [r["w"] for r in rs]
        b.errorbar(w, [r["db_gap"] for r in rs], yerr=[2 * r["db_se"] for r in rs], fmt="o-", color=c, ms=3,
                   capsize=2, label=f"DB-MPA α={alpha:g}")
        b.plot(w, [r["oracle_gap"] for r in rs], "x--", color=c, ms=4, lw=0.8)
    a.set_xlabel("E[r1]")
    a.set_ylabel("E[r2]")
    a.set_title("(a) Pareto front over w: lines exact MORL, o DB-MPA, x oracle", fontsize=9)
    b.axhline(0, color="k", lw=0.6)
    b.set_xlabel("w (weight of r1)")
    b.set_ylabel("E_sampled[r(w)] − E_target[r(w)]")
    b.set_title("(b) weighted-reward gap (±2 SE); dashed x: oracle", fontsize=9)
    figures.legend_outside(a)
    figures.legend_outside(b)

    return fig


def mpa_separation_figure(rows: Sequence[dict], w: float = 0.5) -> Figure:
    """At weight w: reward gap, sliced W2 and mode-weight error vs α, one line per mode separation."""
    rows = [r for r in rows if abs(r["w"] - w) < 1e-9]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    groups = dict(sorted(_by(rows, "separation").items()))
    for c, (s, rs) in zip(_colors(len(groups)), groups.items()):
        rs = sorted(rs, key=lambda r: r["alpha"])
        al = [r["alpha"] for r in rs]
        axes[0].plot(al, [r["db_gap"] for r in rs], "o-", color=c, label=f"spacing {s:g}")
        axes[0].plot(al, [r["oracle_gap"] for r in rs], "x--", color=c, lw=0.8)
        axes[1].plot(al, [r["db_sw2"] for r in rs], "o-", color=c, label=f"spacing {s:g}")
        axes[1].plot(al, [r["oracle_sw2"] for r in rs], "x--", color=c, lw=0.8)
        axes[1].plot(al, [r["floor_sw2"] for r in rs], ":", color="gray", lw=0.8)
        axes[2].plot(al, [r["db_tv"] for r in rs], "o-", color=c, label=f"spacing {s:g}")
        axes[2].plot(al, [r["oracle_tv"] for r in rs], "x--", color=c, lw=0.8)
    titles = ["(a) E[r(w)] gap to the exact target", "(b) sliced W2 to exact samples (dotted: noise floor)",
              "(c) mode-weight error ½‖π̂ − π‖₁"]
    ylabels = ["E_DB[r(w)] − E_target[r(w)]", "sliced W2", "½‖π̂ − π‖₁"]
    for ax, ttl, yl in zip(axes, titles, ylabels):
        _log_alpha_axis(ax, [r["alpha"] for r in rows])
        ax.set_xlabel("α (KL strength)")
        ax.set_ylabel(yl)
        ax.set_title(ttl, fontsize=9)
    figures.legend_outside(axes[2])
    axes[0].axhline(0, color="k", lw=0.6)
    fig.suptitle(f"DB-MPA (o, solid) vs oracle (x, dashed) at w = {w:g}", fontsize=9)

    return fig


def kla_figure(rows: Sequence[dict]) -> Figure:
    """(a) E[r1] vs λ (exact α/λ target lines, DB-KLA markers); (b) sliced W2 to the exact targets."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    groups = _by(rows, "alpha")
    for c, (alpha, rs) in zip(_colors(len(groups)), groups.items()):
        lam = [r["lam"] for r in rs]
        a.plot(lam, [r["target_rw"] for r in rs], "-", color=c, label=f"exact α/λ, α={alpha:g}")
        a.errorbar(lam, [r["db_rw"] for r in rs], yerr=[2 * r["db_se"] for r in rs], fmt="o", color=c, ms=4, capsize=2)
        a.plot(lam, [r["oracle_rw"] for r in rs], "x", color=c, ms=5)
        b.plot(lam, [r["db_sw2"] for r in rs], "o-", color=c, label=f"DB-KLA α={alpha:g}")
        b.plot(lam, [r["oracle_sw2"] for r in rs], "x--", color=c, lw=0.8)
        b.plot(lam, [r["floor_sw2"] for r in rs], ":", color="gray", lw=0.8)
    a.set_xlabel("λ")
    a.set_ylabel("E[r1]")
    a.set_title("(a) reward: lines exact, o DB-KLA (±2 SE), x oracle", fontsize=9)
    b.set_xlabel("λ")
    b.set_ylabel("sliced W2 to exact samples")
    b.set_title("(b) distance; dashed: oracle, dotted: noise floor", fontsize=9)
    figures.legend_outside(a)
    figures.legend_outside(b)

    return fig


def ls_figure(rows: Sequence[dict]) -> Figure:
    """DB-MPA-LS vs DB-MPA against the number of DDIM steps."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    groups = _by(rows, "alpha")
    for c, (alpha, rs) in zip(_colors(len(groups)), groups.items()):
        st = [r["steps"] for r in rs]
        a.plot(st, [r["ls_sample_sw2_vs_mpa"] for r in rs], "^-", color=c, label=f"LS per sample (default) α={alpha:g}")
        a.plot(st, [r["ls_batch_sw2_vs_mpa"] for r in rs], "v--", color=c, label=f"LS per batch (paper code) α={alpha:g}")
        a.plot(st, [r["floor_sw2"] for r in rs], ":", color=c, lw=0.8)
        b.errorbar(st, [r["ls_sample_gap_vs_mpa"] for r in rs], yerr=[2 * r["ls_sample_gap_se"] for r in rs], fmt="^-",
                   color=c, label=f"per sample α={alpha:g} (±2 SE)")
        b.errorbar(st, [r["ls_batch_gap_vs_mpa"] for r in rs], yerr=[2 * r.get("ls_batch_gap_se", 0.0) for r in rs],
                   fmt="v--", color=c, label=f"per batch α={alpha:g} (±2 SE over sequences)")
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("DDIM steps")
    a.set_ylabel("sliced W2(LS, MPA)")
    a.set_title("(a) distance to DB-MPA; dotted: MPA vs MPA (independent noise)", fontsize=9)
    b.set_xscale("log")
    b.axhline(0, color="k", lw=0.6)
    b.set_xlabel("DDIM steps")
    b.set_ylabel("E_LS[r(w)] − E_MPA[r(w)]")
    b.set_title("(b) weighted-reward difference (±2 SE)", fontsize=9)
    figures.legend_outside(a)
    figures.legend_outside(b)

    return fig


def jensen_figure(rows: Sequence[dict], separation: float) -> Figure:
    """(a) ‖Δ_w‖/‖u_w‖ vs t; (b) ‖ε_DB − ε_target‖ vs t; (c) its trajectory mean vs α, per separation."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    main = [r for r in rows if r["separation"] == separation]
    groups = _by(main, "alpha")
    for c, (alpha, rs) in zip(_colors(len(groups)), groups.items()):
        t = [r["t"] for r in rs]
        axes[0].plot(t, [r["gap"] / max(r["control"], 1e-300) for r in rs], "-", color=c, label=f"α={alpha:g}")
        axes[1].plot(t, [max(r["blend_err"], 1e-17) for r in rs], "-", color=c, label=f"α={alpha:g}")
    seps = {s: rs for s, rs in _by(rows, "separation").items() if s > 0}  # spacing 0 is exact (≈1e-16)
    for c, (s, rs) in zip(_colors(len(seps)), sorted(seps.items())):
        per_alpha = _by(rs, "alpha")
        al = sorted(per_alpha)
        axes[2].plot(al, [max(sum(r["blend_err"] for r in per_alpha[x]) / len(per_alpha[x]), 1e-17) for x in al],
                     "o-", color=c, label=f"spacing {s:g}")
    axes[0].set_title(f"(a) Jensen gap ‖Δ_w‖ / ‖u_w‖ along DB-MPA paths (spacing {separation:g})", fontsize=9)
    axes[1].set_title("(b) DB's ε error ‖ε_DB − ε_target‖ = √(1−ᾱ)‖Σw_iΔ_i − Δ_w‖", fontsize=9)
    axes[2].set_title("(c) the ε error of (b), averaged over the trajectory (spacing 0: ≈1e-16)", fontsize=9)
    for ax in axes[:2]:
        ax.set_xlabel("t (1000 = noise)")
        ax.invert_xaxis()
    axes[0].set_ylabel("‖Δ_w‖ / ‖u_w‖")
    axes[1].set_ylabel("‖ε_DB − ε_target‖")
    axes[1].set_yscale("log")
    _log_alpha_axis(axes[2], [r["alpha"] for r in rows])
    axes[2].set_yscale("log")
    axes[2].set_xlabel("α")
    axes[2].set_ylabel("trajectory mean of ‖ε_DB − ε_target‖")
    figures.legend_outside(axes[1], title=f"spacing {separation:g}")
    figures.legend_outside(axes[2])

    return fig


def control_figure(rows: Sequence[dict], disc: Sequence[dict]) -> Figure:
    """(a) the chain's exact covariance error vs steps (discretisation); (b) reward gaps in SE units."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    for c, (d, rs) in zip(["C0", "C1", "C2"], _by(disc, "dim").items()):
        a.plot([r["steps"] for r in rs], [r["cov_rel_bias"] for r in rs], "o-", color=c, label=f"‖C_chain − C‖/‖C‖, d={d}")
        a.plot([r["steps"] for r in rs], [max(r["mean_bias"], 1e-12) for r in rs], "s--", color=c, label=f"‖m_chain − m‖, d={d}")
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("DDIM steps (η = 1)")
    a.set_ylabel("error of the chain's law")
    a.set_title("(a) single Gaussian: exact law of the DDIM chain vs target", fontsize=9)
    figures.legend_outside(a)
    labels = [f"d={r['dim']} {r['method']} {r['setting']}" for r in rows]
    y = range(len(rows))
    b.errorbar([r["rw_gap"] / r["rw_se"] for r in rows], y, xerr=2, fmt="o", ms=3, capsize=2, label="sampled (±2)")
    b.plot([r["chain_rw_gap"] / r["rw_se"] for r in rows], y, "x", color="C3", label="chain law (discretisation)")
    b.axvline(0, color="k", lw=0.6)
    b.set_yticks(list(y))
    b.set_yticklabels(labels, fontsize=6)
    b.set_xlabel("(E_DB[r] − E_target[r]) / SE")
    b.set_ylabel("setting")
    b.set_title("(b) single Gaussian: DB reward gap in standard errors", fontsize=9)
    figures.legend_outside(b)

    return fig
