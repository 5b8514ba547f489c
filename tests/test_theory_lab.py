"""The theory lab script's smallest configuration, end to end (a few seconds)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "theory_lab.py"




def _load_script():
    spec = importlib.util.spec_from_file_location("theory_lab", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_smoke_run_writes_tables_plots_and_config(tmp_path):
    out = _load_script().main(["--smoke", "--out", str(tmp_path)])
    names = {p.name for p in out.iterdir()}
    for png in ("samples", "mpa_w", "mpa_separation", "kla", "ls", "jensen", "control"):
        assert f"{png}.png" in names
        assert (out / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "RESULTS.md").read_text()
    for heading in ("Control: single Gaussian", "DB-MPA against the exact MORL target", "DB-KLA over λ",
                    "DB-MPA-LS against DB-MPA", "Jensen gap"):
        assert heading in text
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["name"] == "smoke" and "torch" in cfg["versions"]
    res = json.loads((out / "results.json").read_text())
    # the control is exact: DB's ε equals the target's to rounding error
    assert max(r["max_eps_err"] for r in res["control"]) < 1e-12
    # w = 0 and w = 1 are single fine-tuned models: DB and the oracle coincide
    for r in res["mpa_w"]:
        if r["w"] in (0.0, 1.0):
            assert abs(r["db_gap"] - r["oracle_gap"]) < 1e-12
