"""blend.claims: a family of paired comparisons with Holm-adjusted p and training-seed variance."""

from __future__ import annotations

import numpy as np
import pytest

from blend import claims, stats


def rows(values, n_prompts=6, n_seeds=4):
    return [{"prompt_index": p, "seed": s, "v": float(values[p * n_seeds + s])}
            for p in range(n_prompts) for s in range(n_seeds)]


def test_family_reports_raw_and_holm_p_and_a_wider_simultaneous_interval():
    rng = np.random.default_rng(0)
    base = rng.normal(size=24)
    a = rows(base + 1.0)
    b1, b2 = rows(base + rng.normal(0, 0.3, 24)), rows(base + 0.9 + rng.normal(0, 0.3, 24))
    out = claims.decide([claims.Comparison("A − B1", a, b1, lambda r: r["v"]),
                         claims.Comparison("A − B2", a, b2, lambda r: r["v"])], unit="prompt")
    big, small = out
    assert big["holds"] and big["p_holm"] >= big["p"]
    assert small["p_holm"] == pytest.approx(max(min(1, 2 * big["p"]), small["p"])) or small["p_holm"] >= small["p"]
    assert small["ci_simultaneous"][0] < small["ci"][0] and small["ci_simultaneous"][1] > small["ci"][1]
    assert stats.holm([big["p"], small["p"]]) == pytest.approx([big["p_holm"], small["p_holm"]])
    assert "Holm p" in claims.markdown(out)


def test_comparison_against_several_training_seeds_pools_them_and_adds_their_spread():
    rng = np.random.default_rng(1)
    base = rng.normal(size=24)
    a = rows(base + 0.5)
    seeds = [rows(base + shift) for shift in (0.0, 0.2, 0.4)]  # three trainings that differ by a constant
    est = claims.Comparison("A − oracle", a, seeds, lambda r: r["v"]).estimate("prompt")
    assert est.mean == pytest.approx(0.3)  # against the mean of the three oracles
    assert est.se == pytest.approx(np.sqrt(np.var([0.5, 0.3, 0.1], ddof=1) / 3))  # sampling noise is 0 here
    assert "training seed" in est.unit
