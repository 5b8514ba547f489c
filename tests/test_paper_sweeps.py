"""Every paper sweep (scripts/paper_sweeps.py, blend/sweeps.py) runs end to end on the tiny model with two prompts and writes its
markdown table, LaTeX table and plot; the hypervolume is exact on small fronts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweeps():
    import blend.sweeps

    return blend.sweeps


@pytest.mark.parametrize("sweep", ["table1", "table5", "m34", "kla", "pareto"])
def test_sweep_runs_on_the_tiny_model_and_writes_tables_and_plot(sweeps, sweep, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "sweeps"  # shared: the random adapters are written once
    prompts = root / "prompts.json"
    root.mkdir(exist_ok=True)
    prompts.write_text(json.dumps(["a red circle", "a blue square"]))
    args = [sweep, "--world", "tiny", "--prompt_file", str(prompts), "--out", str(root)]
    if sweep == "pareto":
        args += ["--pareto_grid", "3"]
    assert sweeps.main(args) == 0
    out = root / sweep
    md, tex = (out / "table.md").read_text(), (out / "table.tex").read_text()
    assert md.startswith("### ") and "\\begin{tabular}" in tex and (out / "plot.png").stat().st_size > 1000
    expected = {"table1": ["CoDe", "RGG", "SMC", "Best-of-N over DB-MPA", "MORL oracle", "UNet bwd"],
                "table5": ["CoDe", "DB-MPA"], "m34": ["m = 3", "m = 4", "Δr4"], "kla": ["λ-specific model"],
                "pareto": ["hypervolume", "reference point"]}[sweep]
    for word in expected:
        assert word in md, (word, md)
    # every table with paired differences has its forest plot next to it (the Pareto table has none)
    assert ((out / "forest.png").exists() and (out / "forest.pdf").exists()) == (sweep != "pareto")
    # resumable: a second call computes nothing new and writes the same table
    assert sweeps.main(args) == 0
    assert (out / "table.md").read_text() == md


def test_hypervolume_and_front(sweeps):
    pts = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.2, 0.2)]
    assert sweeps.pareto_front(pts) == [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
    assert sweeps.hypervolume(pts, (0.0, 0.0)) == pytest.approx(0.25)  # points on the reference axes add nothing
    assert sweeps.hypervolume([(1.0, 1.0)], (0.0, 0.0)) == pytest.approx(1.0)
    assert sweeps.hypervolume([(2.0, 1.0), (1.0, 2.0)], (0.0, 0.0)) == pytest.approx(3.0)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _stored(root: Path) -> dict[str, int]:
    """Every image and part file under ``root`` with its size (what sampling would add to)."""
    return {str(p): p.stat().st_size for p in root.rglob("*") if p.is_file() and (
        p.suffix == ".png" and "images" in p.parts or p.parent.name == "parts")}


def test_sweep_errors_are_clustered_by_prompt_and_report_only_rebuilds_without_sampling(sweeps, tmp_path):
    from blend import stats

    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["a red circle", "a blue square"]))
    base_args = ["kla", "--world", "tiny", "--prompt_file", str(prompts), "--out", str(tmp_path)]
    args = [*base_args, "--n_seeds", "2"]
    assert sweeps.main(args) == 0
    out = tmp_path / "kla"
    md, data = (out / "table.md").read_text(), json.loads((out / "table.json").read_text())

    # the table's error is blend.stats' cluster-robust one by prompt (per-image noise), not the naive one
    brightness = [r for r in _rows(out / "run" / "results.jsonl") if r["method"] == "kla" and r["lam"] == 0.5]
    values, by_prompt = [r["rewards"]["brightness"] for r in brightness], [r["prompt"] for r in brightness]
    assert len(values) == 4 and {r["noise"] for r in brightness} == {"per_image"}
    ref = stats.clustered(values, by_prompt, "prompt")
    cell = data["curve"]["0.5"]
    assert data["unit"] == "prompt" and cell["df"] == 1 and cell["n"] == 4
    assert cell["mean"] == pytest.approx(ref.mean, rel=1e-12) and cell["se"] == pytest.approx(ref.se, rel=1e-12)
    assert not math.isclose(stats.naive(values).se, ref.se, rel_tol=1e-3)
    assert f"{ref.mean:.2f} ± {ref.se:.2f}" in md and "cluster-robust by prompt (2 prompts, 2 seeds)" in md

    # DB-KLA − the λ-specific model: paired by (prompt, seed), clustered by prompt, with its t interval and p
    oracle = {(r["prompt"], r["seed"]): r["rewards"]["brightness"]
              for r in _rows(out / "oracle_lam0.5" / "results.jsonl")}
    diffs = [r["rewards"]["brightness"] - oracle[(r["prompt"], r["seed"])] for r in brightness]
    d_ref, d = stats.clustered(diffs, by_prompt, "prompt"), data["delta_kla_vs_lambda_specific"]["0.5"]
    assert d["mean"] == pytest.approx(d_ref.mean, rel=1e-12) and d["se"] == pytest.approx(d_ref.se, rel=1e-12)
    assert d["p"] == pytest.approx(d_ref.p_value) and d["ci95"] == pytest.approx(list(d_ref.ci()))

    # --report_only rewrites the same tables from the stored rows and samples nothing
    stored = _stored(tmp_path)
    for name in ("table.md", "table.tex", "table.json", "plot.png", "plot.pdf"):
        (out / name).unlink()
    assert sweeps.main([*args, "--report_only"]) == 0
    assert (out / "table.md").read_text() == md and (out / "plot.pdf").exists() and _stored(tmp_path) == stored

    # rows of other settings in the same folders (here the second seed) do not leak into a narrower table
    assert sweeps.main([*base_args, "--n_seeds", "1", "--report_only"]) == 0
    seed0 = [r for r in brightness if r["seed"] == 0]
    one = json.loads((out / "table.json").read_text())["curve"]["0.5"]
    assert one["n"] == 2 and one["mean"] == pytest.approx(sum(r["rewards"]["brightness"] for r in seed0) / 2)

    # rows that were never sampled are an error that says what to do, and nothing is sampled
    with pytest.raises(SystemExit, match=r"lacks rows this sweep asks for .* \(without --report_only\) to sample them"):
        sweeps.main([*base_args, "--n_seeds", "3", "--report_only"])
    assert _stored(tmp_path) == stored


@pytest.mark.parametrize("sweep", ["pareto", "kla"])
def test_sweep_finds_the_rows_of_baselines_that_guide_with_other_rewards(sweeps, sweep, tmp_path, monkeypatch):
    """A world whose baselines guide with other rewards than those scored (run_DB.py --guide_rewards, as the toy's
    training judge) names their configs by the guiding rewards; the sweep's tables must find those rows, and a step
    without a reward-using baseline (DB-KLA's) must not pass --guide_rewards (run_DB.py refuses it there)."""
    make = sweeps.tiny_world

    def guided(out, n_seeds, prompts):
        world = make(out, n_seeds, prompts)
        world.guide = {"brightness": "toy_smoothness", "colorfulness": "brightness"}
        return world

    monkeypatch.setattr(sweeps, "tiny_world", guided)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["a red circle"]))
    args = [sweep, "--world", "tiny", "--prompt_file", str(prompts), "--out", str(tmp_path), "--pareto_grid", "2"]
    assert sweeps.main(args) == 0
    if sweep == "pareto":
        rows = [json.loads(line) for line in (tmp_path / "pareto" / "run" / "results.jsonl").read_text().splitlines()]
        assert any(r["config"].startswith("code_") and "toy_smoothness" in r["config"] for r in rows)
        assert "CoDe" in (tmp_path / "pareto" / "table.md").read_text()
