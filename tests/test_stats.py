"""Cluster-robust standard errors: a hand computation, Student's t, and coverage under a known correlation."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from blend.stats import bootstrap_twoway, clustered, estimate, mean_se, naive, paired, t_quantile, t_sf, twoway

# 2 prompts × 3 seeds
VALUES = [1.0, 2.0, 6.0, 3.0, 2.0, 4.0]
PROMPTS = [0, 0, 0, 1, 1, 1]
SEEDS = [0, 1, 2, 0, 1, 2]


def test_clustered_se_equals_a_hand_computation():
    # mean 3; residuals -2, -1, 3, 0, -1, 1; seed sums: -2, -2, 4; G = 3, n = 6
    # V = 3/2 · (4 + 4 + 16) / 36 = 1
    est = clustered(VALUES, SEEDS, "seed")
    assert est.mean == 3.0 and est.df == 2
    assert est.se == pytest.approx(1.0, abs=1e-12)
    # prompt sums: 0, 0 → V_prompt = 0; image: 6/5 · 16 / 36 = 8/15
    assert clustered(VALUES, PROMPTS).se == pytest.approx(0.0, abs=1e-12)
    img = clustered(VALUES, list(range(6)))
    assert img.se == pytest.approx(math.sqrt(8 / 15), abs=1e-12)
    assert img.se == pytest.approx(naive(VALUES).se, abs=1e-12)  # one image per cluster = the naive error
    # two-way: V_p + V_s − V_i = 0 + 1 − 8/15
    tw = twoway(VALUES, PROMPTS, SEEDS)
    assert tw.se == pytest.approx(math.sqrt(1 - 8 / 15), abs=1e-12)
    assert tw.df == 1 and tw.unit == "prompt+seed"
    assert estimate(VALUES, PROMPTS, SEEDS, "seed").se == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unit"):
        estimate(VALUES, PROMPTS, SEEDS, "batch")


def test_student_t_matches_tables():
    assert t_quantile(0.975, 10) == pytest.approx(2.228139, abs=1e-5)
    assert t_quantile(0.975, 2) == pytest.approx(4.302653, abs=1e-5)
    assert t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-4)
    assert t_quantile(0.025, 5) == pytest.approx(-2.570582, abs=1e-5)
    assert 2 * t_sf(2.228139, 10) == pytest.approx(0.05, abs=1e-6)
    est = clustered(VALUES, SEEDS)
    lo, hi = est.ci()
    assert (lo, hi) == pytest.approx((3 - 4.302653, 3 + 4.302653), abs=1e-5)
    assert est.p_value == pytest.approx(2 * t_sf(3.0, 2))


def test_scipy_t_agrees_with_the_former_hand_written_incomplete_beta():
    """Values of the former continued-fraction t_sf / bisection t_quantile (blend/stats.py before scipy): scipy.stats.t
    gives the same numbers to 1e-6, so stored p-values and intervals do not move."""
    for df, x, old in [(1, 2.0, 0.14758361765043318), (3, 1.5, 0.11529193262241151), (7, 0.8, 0.22500134973491304),
                       (20, 2.5, 0.010616772719566233)]:
        assert t_sf(x, df) == pytest.approx(old, abs=1e-6)
    for df, q, old in [(1, 0.975, 12.706204736174687), (3, 0.9, 1.6377443536962093), (7, 0.995, 3.499483297350494),
                       (20, 0.975, 2.085963447265865)]:
        assert t_quantile(q, df) == pytest.approx(old, abs=1e-6)
    with pytest.raises(ValueError, match="quantile level"):
        t_quantile(1.0, 3)


def test_paired_difference_matches_images_by_prompt_and_seed():
    a = [{"prompt_index": p, "seed": s, "v": v} for p, s, v in zip(PROMPTS, SEEDS, VALUES)]
    b = [{"prompt_index": p, "seed": s, "v": 1.0} for p, s in zip(PROMPTS[::-1], SEEDS[::-1])][:5]  # order, one gap
    d = paired(a, b, lambda r: r["v"], unit="image")
    assert d.n == 5 and d.mean == pytest.approx((sum(VALUES[1:]) - 5) / 5)
    assert paired(a, [], lambda r: r["v"]) is None


def test_simulated_within_seed_correlation_naive_undercovers_clustered_covers():
    """y = a_seed + b_prompt + e with a known intra-seed correlation 0.5: the naive 95% interval covers the true
    mean far too rarely; the clustered (by seed) and two-way errors cover at about the nominal rate."""
    rng = np.random.default_rng(0)
    n_p, n_s, reps = 12, 12, 600
    prompts = np.repeat(np.arange(n_p), n_s)
    seeds = np.tile(np.arange(n_s), n_p)
    hits = {"naive": 0, "seed": 0, "twoway": 0}
    ratio = []
    for _ in range(reps):
        y = rng.normal(size=n_s)[seeds] + 0.3 * rng.normal(size=n_p)[prompts] + rng.normal(size=n_p * n_s)
        for name, est in (("naive", naive(y)), ("seed", clustered(y, seeds)), ("twoway", twoway(y, prompts, seeds))):
            lo, hi = est.ci()
            hits[name] += lo <= 0.0 <= hi
        ratio.append(twoway(y, prompts, seeds).se / naive(y).se)
    cover = {k: v / reps for k, v in hits.items()}
    assert cover["naive"] < 0.75, cover
    assert 0.90 <= cover["seed"] <= 0.985, cover
    assert 0.90 <= cover["twoway"] <= 0.99, cover
    # intra-seed correlation 1/2.09 over 12 prompts: a design effect of about √(1 + 11 · 0.48) ≈ 2.5
    assert np.median(ratio) > 2.0


def test_twoway_bootstrap_agrees_with_the_analytic_error():
    rng = np.random.default_rng(1)
    prompts = np.repeat(np.arange(10), 10)
    seeds = np.tile(np.arange(10), 10)
    y = rng.normal(size=10)[seeds] + rng.normal(size=10)[prompts] + rng.normal(size=100)
    se_boot, (lo, hi) = bootstrap_twoway(y, prompts, seeds, n_boot=1000, seed=0)
    se = twoway(y, prompts, seeds).se
    assert 0.6 < se_boot / se < 1.5
    assert lo < y.mean() < hi
    # one seed: the two-way error falls back to the prompt clusters
    one = twoway(y[seeds == 0], prompts[seeds == 0], seeds[seeds == 0])
    assert one.unit == "prompt" and one.se == pytest.approx(naive(y[seeds == 0]).se)


def test_holm_matches_the_step_down_definition():
    from blend.stats import holm

    # k = 4: sorted 0.01, 0.02, 0.03, 0.5 → 0.04, max(0.04, 0.06), max(0.06, 0.06), max(0.06, 0.5)
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert holm([0.9, 0.3]) == pytest.approx([0.9, 0.6]) and holm([0.8, 0.7]) == [1.0, 1.0]  # monotone, capped
    out = holm([float("nan"), 0.01, 0.04])
    assert out[0] != out[0] and out[1:] == pytest.approx([0.02, 0.04])  # NaN not counted


def test_training_seed_variance_widens_the_interval():
    from blend.stats import Estimate, simultaneous_level, with_training_seeds

    pooled = Estimate(0.10, 0.02, 144, 11, "prompt")
    same = [Estimate(0.10, 0.03, 144, 11, "prompt")] * 3
    spread = [Estimate(m, 0.03, 144, 11, "prompt") for m in (0.0, 0.1, 0.2)]
    assert with_training_seeds(same, pooled).se == pytest.approx(0.02)  # no seed spread: sampling s.e. only
    wide = with_training_seeds(spread, pooled)
    assert wide.se == pytest.approx((0.02 ** 2 + 0.01 / 3) ** 0.5) and wide.df < 11
    assert with_training_seeds(spread[:1], pooled) is pooled
    assert simultaneous_level(2) == pytest.approx(0.975)


def test_mean_se_by_hand():
    """Mean ± s.d./√n (ddof 1) and the clustered (CR1) variant that toy/evaluate.py uses, against a hand computation:
    y = 1, 2, 3, 6: ȳ = 3, Σ(y − ȳ)² = 14, s.e. = √(14/3/4); clusters {1, 2} {3, 6}: residual sums −3, 3,
    V = 2/(2−1) · (9 + 9)/4² = 2.25, s.e. = 1.5."""
    import torch

    y = [1.0, 2.0, 3.0, 6.0]
    assert mean_se(y) == (3.0, pytest.approx(math.sqrt(14 / 3 / 4), abs=1e-15))
    assert mean_se(torch.tensor(y, dtype=torch.float32)) == mean_se(y)  # a tensor of any float dtype, as float64
    assert mean_se(y, [0, 0, 1, 1]) == (3.0, pytest.approx(1.5, abs=1e-15))
    assert mean_se(torch.tensor(y), ["a", "a", "b", "b"]) == mean_se(y, [0, 0, 1, 1])
    assert mean_se([0.5]) == (0.5, 0.0)
    assert all(math.isnan(v) for v in mean_se([]))
    assert math.isnan(mean_se(y, [0, 0, 0, 0])[1])  # one cluster: no error estimate


def test_mean_se_is_defined_once():
    """Every caller imports ``blend.stats.mean_se``; no module keeps its own copy (issue #22)."""
    root = Path(__file__).resolve().parents[1]
    found = {p.relative_to(root).as_posix() for d in ("blend", "dbcore", "diffusion", "dpok", "rewards", "theory",
                                                     "toy", "diffusion_blend", "scripts") for p in (root / d).rglob("*.py")
             if re.search(r"^def mean_se\(", p.read_text(encoding="utf-8"), re.M)}
    assert found == {"blend/stats.py"}, found
