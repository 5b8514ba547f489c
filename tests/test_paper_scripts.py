"""scripts/paper/<sweep>.sh: one short script per paper table (issue #22). Each exists, is executable, parses, names
what WORLD=sd needs and refuses to start without it (one error line), and runs its sweep on the tiny world."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ("table1", "table5", "m34", "kla", "pareto")


def _run(script: str, *args: str, world: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORLD": world, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(ROOT / "scripts" / "paper" / f"{script}.sh"), *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=170)


@pytest.mark.parametrize("sweep", SWEEPS)
def test_script_exists_is_executable_and_parses(sweep):
    path = ROOT / "scripts" / "paper" / f"{sweep}.sh"
    assert path.is_file() and os.access(path, os.X_OK)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    text = path.read_text(encoding="utf-8")
    assert f"scripts/paper_sweeps.py\" {sweep} --world \"$WORLD\" \"$@\"" in text and "WORLD=sd" in text


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sd_world_without_adapters_is_one_clear_error(sweep, tmp_path):
    proc = _run(sweep, world="sd", tmp_path=tmp_path)
    assert proc.returncode == 2 and not proc.stdout
    assert proc.stderr.strip() == (f"error: WORLD=sd bash scripts/paper/{sweep}.sh needs --lora (the comment at the "
                                   f"top of scripts/paper/{sweep}.sh lists what to pass)")


def test_kla_on_sd_also_needs_the_lambda_specific_models(tmp_path):
    proc = _run("kla", "--lora", "a=x", "--lora", "b=y", "--rewards", "r1,r2", world="sd", tmp_path=tmp_path)
    assert proc.returncode == 2 and "needs --kla_oracle" in proc.stderr


def test_table1_runs_on_the_tiny_world(tmp_path):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["a red circle", "a blue square"]))
    proc = _run("table1", "--prompt_file", str(prompts), "--out", str(tmp_path / "out"), "--n_seeds", "1",
                world="tiny", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "table1" / "table.md").read_text().startswith("### ")
