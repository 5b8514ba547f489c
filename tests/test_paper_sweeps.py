"""Every paper sweep (scripts/paper_sweeps.py) runs end to end on the tiny model with two prompts and writes its
markdown table, LaTeX table and plot; the hypervolume is exact on small fronts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("paper_sweeps", ROOT / "scripts" / "paper_sweeps.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["paper_sweeps"] = mod  # dataclasses look their module up while the script is executed
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def sweeps():
    return load_script()


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
    # resumable: a second call computes nothing new and writes the same table
    assert sweeps.main(args) == 0
    assert (out / "table.md").read_text() == md


def test_hypervolume_and_front(sweeps):
    pts = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.2, 0.2)]
    assert sweeps.pareto_front(pts) == [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
    assert sweeps.hypervolume(pts, (0.0, 0.0)) == pytest.approx(0.25)  # points on the reference axes add nothing
    assert sweeps.hypervolume([(1.0, 1.0)], (0.0, 0.0)) == pytest.approx(1.0)
    assert sweeps.hypervolume([(2.0, 1.0), (1.0, 2.0)], (0.0, 0.0)) == pytest.approx(3.0)
