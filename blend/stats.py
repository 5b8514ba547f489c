"""Standard errors over the right unit, and paired comparisons with confidence intervals and p-values.

Images of one experiment are not independent draws. All images of one prompt share the prompt (its
difficulty moves every method's reward together), and under the paper's noise design (``--noise
per_seed``) all images of one seed share x_T and every step's noise. A standard error that treats the
prompts × seeds images as independent is then too small. This module estimates the standard error of a
mean by clustering:

* one-way cluster-robust (CR1): V = G/(G−1) · Σ_g (Σ_{i∈g} (y_i − ȳ))² / n², G clusters;
* two-way cluster-robust by prompt and seed (Cameron, Gelbach & Miller 2011, J. Bus. Econ. Stat. 29(2)):
  V = V_prompt + V_seed − V_image, with the one-way V of each grouping (V_image = the naive variance
  with the same G/(G−1) factor); if that is not positive, the larger one-way V is used;
* a two-way ("pigeonhole") bootstrap: prompts and seeds are resampled independently with replacement
  and every image of a drawn (prompt, seed) pair enters once per draw of its prompt and of its seed.

Confidence intervals and p-values use Student's t (``scipy.stats.t``) with (smallest number of clusters − 1) degrees of
freedom, the usual small-sample choice for cluster-robust errors.

A paired difference (method A − method B) is formed image by image over the (prompt, seed) pairs both
methods have, and then clustered like any other per-image value.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import t as student_t

UNITS = ("prompt+seed", "seed", "prompt", "image")


@dataclass(frozen=True)
class Estimate:
    """A mean with its standard error, degrees of freedom and the unit the error treats as independent."""

    mean: float
    se: float
    n: int
    df: int
    unit: str

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        h = t_quantile(0.5 + level / 2, self.df) * self.se if self.df > 0 else float("nan")
        return self.mean - h, self.mean + h

    @property
    def t(self) -> float:
        return self.mean / self.se if self.se > 0 else float("nan")

    @property
    def p_value(self) -> float:
        """Two-sided p-value of mean = 0 (Student's t with ``df`` degrees of freedom)."""
        if not self.se > 0 or self.df < 1:
            return float("nan")
        return 2.0 * t_sf(abs(self.t), self.df)

    def to_dict(self) -> dict:
        lo, hi = self.ci()
        return {**asdict(self), "ci95": [lo, hi], "p": self.p_value}


# ---- Student's t (scipy.stats.t) ----------------------------------------------------------------------
def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    return float(student_t.sf(t, df))


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t (q in (0, 1))."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {q}")
    return float(student_t.ppf(q, df))


# ---- cluster-robust variances --------------------------------------------------------------------------
def _codes(labels: Sequence[Hashable]) -> np.ndarray:
    index: dict[Hashable, int] = {}
    return np.array([index.setdefault(x, len(index)) for x in labels], dtype=np.int64)


def cluster_var(values: Sequence[float], clusters: Sequence[Hashable]) -> tuple[float, int]:
    """CR1 variance of the mean, G/(G−1) · Σ_g (Σ_{i∈g} (y_i − ȳ))² / n², and the number of clusters G."""
    y = np.asarray(values, dtype=np.float64)
    if len(y) != len(clusters):
        raise ValueError(f"{len(y)} values but {len(clusters)} cluster labels")
    codes = _codes(clusters)
    g = int(codes.max()) + 1 if len(codes) else 0
    if g < 2:
        return float("nan"), g
    sums = np.bincount(codes, weights=y - y.mean(), minlength=g)
    return float(g / (g - 1) * np.sum(sums**2) / len(y) ** 2), g


def naive(values: Sequence[float]) -> Estimate:
    """Mean ± s.d./√n, every value its own unit (ddof = 1)."""
    y = np.asarray(values, dtype=np.float64)
    n = len(y)
    if n == 0:
        return Estimate(float("nan"), float("nan"), 0, 0, "image")
    se = float(y.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return Estimate(float(y.mean()), se, n, n - 1, "image")


def mean_se(values: Sequence[float], clusters: Sequence[Hashable] | None = None) -> tuple[float, float]:
    """(mean, standard error) of a 1-D sample (a list or a tensor of any float dtype, taken as float64): the naive
    s.d./√n (ddof = 1; 0 for one value, NaN for none), or one-way cluster-robust by ``clusters`` (e.g. the prompt of
    each image) when given. The one place the scripts, ``theory/`` and ``toy/`` get a mean with its error."""
    e = naive(values) if clusters is None else clustered(values, clusters)
    return e.mean, e.se


def clustered(values: Sequence[float], clusters: Sequence[Hashable], unit: str = "cluster") -> Estimate:
    """Mean with the one-way cluster-robust standard error; df = G − 1."""
    y = np.asarray(values, dtype=np.float64)
    var, g = cluster_var(y, clusters)
    return Estimate(float(y.mean()) if len(y) else float("nan"), math.sqrt(var) if var == var else float("nan"),
                    len(y), g - 1, unit)


def twoway(values: Sequence[float], prompts: Sequence[Hashable], seeds: Sequence[Hashable]) -> Estimate:
    """Mean with the two-way cluster-robust standard error by prompt and seed; df = min(G_p, G_s) − 1.

    A design with a single seed (or prompt) falls back to clustering by the other one.
    """
    y = np.asarray(values, dtype=np.float64)
    vp, gp = cluster_var(y, prompts)
    vs, gs = cluster_var(y, seeds)
    if gs < 2 and gp >= 2:
        return Estimate(float(y.mean()), math.sqrt(vp), len(y), gp - 1, "prompt")
    if gp < 2 and gs >= 2:
        return Estimate(float(y.mean()), math.sqrt(vs), len(y), gs - 1, "seed")
    if gp < 2 and gs < 2:
        return naive(y)
    vi, _ = cluster_var(y, list(zip(prompts, seeds)))
    var = vp + vs - vi
    if not var > 0:
        var = max(vp, vs)
    return Estimate(float(y.mean()), math.sqrt(var), len(y), min(gp, gs) - 1, "prompt+seed")


def estimate(values: Sequence[float], prompts: Sequence[Hashable], seeds: Sequence[Hashable],
             unit: str = "prompt+seed") -> Estimate:
    """Mean ± s.e. over ``unit``: "prompt+seed" (two-way, the default), "seed", "prompt" or "image" (naive)."""
    if unit == "prompt+seed":
        return twoway(values, prompts, seeds)
    if unit == "seed":
        return clustered(values, seeds, "seed")
    if unit == "prompt":
        return clustered(values, prompts, "prompt")
    if unit == "image":
        return naive(values)
    raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")


def bootstrap_twoway(values: Sequence[float], prompts: Sequence[Hashable], seeds: Sequence[Hashable],
                     n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Two-way bootstrap over prompts and seeds: (standard error, percentile interval) of the mean.

    Each replicate draws G_p prompts and G_s seeds with replacement; an image (p, s) enters with weight
    (times p was drawn) × (times s was drawn).
    """
    y = np.asarray(values, dtype=np.float64)
    pc, sc = _codes(prompts), _codes(seeds)
    gp, gs = int(pc.max()) + 1, int(sc.max()) + 1
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for b in range(n_boot):
        wp = np.bincount(rng.integers(0, gp, gp), minlength=gp)
        ws = np.bincount(rng.integers(0, gs, gs), minlength=gs)
        w = wp[pc] * ws[sc]
        tot = w.sum()
        means[b] = (w @ y) / tot if tot > 0 else np.nan
    means = means[np.isfinite(means)]
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(means.std(ddof=1)), (float(lo), float(hi))


# ---- rows of results.jsonl -------------------------------------------------------------------------------
def default_unit(rows: Sequence[dict]) -> str:
    """The unit of independence of a design: with ``--noise per_image`` (the default) images share only their
    prompt, so the errors cluster by prompt; with the paper's ``--noise per_seed`` (or rows that do not say)
    images also share the noise of their seed, so the errors are two-way by prompt and seed.

    (DB-MPA-LS with ``--ls_draw per_batch_step`` also correlates the images of one batch; that option is for
    comparison with the official code only, and its errors are not corrected for it.)"""
    return "prompt" if rows and all(r.get("noise") == "per_image" for r in rows) else "prompt+seed"


def describe_unit(unit: str, rows: Sequence[dict] | None = None) -> str:
    """A caption fragment naming the unit of independence behind a standard error."""
    n_p = len({r["prompt_index"] for r in rows}) if rows else None
    n_s = len({r["seed"] for r in rows}) if rows else None
    noise = {r.get("noise", "per_seed") for r in rows} if rows else set()
    design = ("each (prompt, seed) has its own noise" if noise == {"per_image"}
              else "all prompts of a seed share x_T and the step noise" if noise == {"per_seed"} else "")
    counts = f" ({n_p} prompts, {n_s} seeds)" if rows else ""
    text = {"prompt+seed": f"two-way cluster-robust by prompt and by seed{counts}",
            "seed": f"cluster-robust by seed{counts}", "prompt": f"cluster-robust by prompt{counts}",
            "image": "naive, every image independent"}[unit]
    return text + (f"; {design}" if design else "")


def row_estimate(rows: Sequence[dict], value, unit: str = "prompt+seed") -> Estimate:
    """``value(row)`` per row, averaged with its standard error over ``unit``."""
    return estimate([value(r) for r in rows], [r["prompt_index"] for r in rows], [r["seed"] for r in rows], unit)


def paired(rows_a: Sequence[dict], rows_b: Sequence[dict], value_a, value_b=None,
           unit: str = "prompt+seed") -> Estimate | None:
    """Mean of value_a(a) − value_b(b) over the (prompt, seed) pairs both have, clustered over ``unit``.

    None when the two share no image (nothing to pair).
    """
    value_b = value_b or value_a
    b_by = {(r["prompt_index"], r["seed"]): r for r in rows_b}
    pairs = [(a, b_by[(a["prompt_index"], a["seed"])]) for a in rows_a if (a["prompt_index"], a["seed"]) in b_by]
    if not pairs:
        return None
    return estimate([value_a(a) - value_b(b) for a, b in pairs], [a["prompt_index"] for a, _ in pairs],
                    [a["seed"] for a, _ in pairs], unit)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values of a family of tests (Holm 1979, Scand. J. Statist. 6(2)).

    Sorted ascending, p_(i) becomes max over j ≤ i of min(1, (k − j + 1)·p_(j)); rejecting every test with
    adjusted p < α controls the family-wise error rate at α. NaN p-values are left as NaN and not counted.
    """
    ps = list(p_values)
    idx = sorted((i for i, p in enumerate(ps) if p == p), key=lambda i: ps[i])
    k, running, out = len(idx), 0.0, [float("nan")] * len(ps)
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (k - rank) * ps[i]))
        out[i] = running
    return out


def simultaneous_level(k: int, level: float = 0.95) -> float:
    """The per-interval level that makes k intervals hold together at ``level`` (Bonferroni: 1 − (1−level)/k).

    Intervals at this level that exclude 0 agree with Holm's rejections at α = 1 − level or are stricter."""
    return 1 - (1 - level) / max(k, 1)


def with_training_seeds(per_seed: Sequence[Estimate], pooled: Estimate) -> Estimate:
    """A difference averaged over independently trained models (e.g. DB-MPA − the oracle of training seed s).

    ``per_seed``: the paired estimate against each training seed's model; ``pooled``: the paired estimate of
    the per-image difference averaged over those models (its s.e. holds the sampling noise given these S
    models). The variance adds the training-seed component, estimated by the spread of the S per-seed means
    (conservative: that spread also holds some sampling noise):

        V = se_pooled² + Var_s(Δ_s) / S,   df by Welch–Satterthwaite from (df_pooled, S − 1).

    With one seed the seed component is unknown and the pooled estimate is returned unchanged.
    """
    means = np.array([e.mean for e in per_seed], dtype=np.float64)
    s = len(means)
    if s < 2:
        return pooled
    a, b = pooled.se ** 2, float(means.var(ddof=1)) / s
    df = (a + b) ** 2 / ((a * a) / max(pooled.df, 1) + (b * b) / (s - 1)) if a + b > 0 else pooled.df
    return Estimate(pooled.mean, math.sqrt(a + b), pooled.n, max(1, int(df)), f"{pooled.unit}+training seed")


def fmt_p(p: float) -> str:
    if p != p:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


__all__ = ["Estimate", "UNITS", "naive", "clustered", "twoway", "estimate", "bootstrap_twoway", "cluster_var",
           "paired", "row_estimate", "describe_unit", "default_unit", "t_quantile", "t_sf", "fmt_p", "holm",
           "simultaneous_level", "with_training_seeds"]
