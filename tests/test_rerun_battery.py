"""A battery of re-runs into one results directory: subsets, supersets, new weights, rewards, scales and seeds,
deleted images, concurrent processes, kill -9 and stale locks. No row is ever lost, no setting is ever mixed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import blend.experiment as experiment
from blend.cli import main
from blend.store import LOCK

ROOT = Path(__file__).resolve().parents[1]
BASE = ["--base_model", "builtin:tiny", "--steps", "2", "--n_seeds", "2", "--batch_size", "2",
        "--prompts", "a red circle|a blue square", "--no_grids"]


def strict_rows(out: Path) -> list[dict]:
    """results.jsonl parsed as strict JSON (NaN / Infinity are rejected)."""
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return [json.loads(line, parse_constant=refuse) for line in (out / "results.jsonl").read_text().splitlines()]


def keyed(out: Path) -> dict[str, dict]:
    return {r["row_key"]: r for r in strict_rows(out)}


def numbers(row: dict) -> tuple:
    return row["config"], row["prompt"], row["seed"], tuple(sorted(row["rewards"].items()))


def run(out: Path, *extra: str) -> int:
    return main(["--out_dir", str(out), *BASE, *extra])


def test_subset_and_superset_reruns_keep_every_row(tmp_path):
    out = tmp_path / "run"
    assert run(out, "--methods", "base,single,mpa") == 0
    first = keyed(out)
    assert len(first) == 4 * 2 * 2  # base, two singles, mpa × 2 prompts × 2 seeds
    assert run(out, "--methods", "base") == 0  # a subset: used to rewrite results.jsonl with only these rows
    assert keyed(out) == first
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["base"] and summary["base"]["n"] == 4  # the summary is this command's rows
    assert "Built from the 4 rows this command asked for" in (out / "summary.md").read_text()
    assert run(out, "--methods", "base,single,mpa,soup") == 0  # a superset: only soup is new
    after = keyed(out)
    assert {k: after[k] for k in first} == first and len(after) == 5 * 4


def test_new_weight_vector_and_fewer_seeds(tmp_path):
    out = tmp_path / "run"
    assert run(out, "--methods", "base,mpa", "--weights", "0.5,0.5") == 0
    # a second weight vector into the same directory: the base rows are reused and get the new objective
    assert run(out, "--methods", "base,mpa", "--weights", "0.5,0.5", "--weights", "0.2,0.8") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["base"]["weighted_reward"]) == {"w=(0.5,0.5)", "w=(0.2,0.8)"}
    assert "w=(0.2,0.8)" in (out / "summary.md").read_text()
    assert len(strict_rows(out)) == 3 * 4
    assert run(out, "--methods", "base,mpa", "--weights", "0.5,0.5", "--n_seeds", "1") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["base"]["n"] == 2  # 2 prompts × the 1 seed asked for, not the stored 2
    assert len(strict_rows(out)) == 3 * 4


def test_changed_reward_scale_gives_separate_rows_never_a_mixed_mean(tmp_path):
    out = tmp_path / "run"
    assert run(out, "--methods", "base") == 0
    plain = strict_rows(out)
    assert run(out, "--methods", "base", "--reward_scale", "colorfulness=0.5") == 0
    rows = strict_rows(out)
    assert len(rows) == 2 * len(plain)
    scaled = [r for r in rows if r["reward_scales"]["colorfulness"] == 0.5]
    assert len(scaled) == len(plain)
    for r in scaled:
        assert r["weighted_reward"]["w=(0.5,0.5)"] == pytest.approx(
            0.5 * r["rewards"]["jpeg_compressibility"] + 0.5 * r["rewards"]["colorfulness"] / 0.5)
    mean = sum(r["weighted_reward"]["w=(0.5,0.5)"] for r in scaled) / len(scaled)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["base"]["weighted_reward"]["w=(0.5,0.5)"][0] == pytest.approx(mean)
    assert summary["base"]["n"] == 4


def test_changed_sampler_settings_give_separate_rows(tmp_path):
    out = tmp_path / "run"
    assert run(out, "--methods", "base") == 0
    assert run(out, "--methods", "base", "--eta", "0.5") == 0  # used to be refused; now kept apart
    rows = strict_rows(out)
    assert sorted(r["eta"] for r in rows) == [0.5] * 4 + [1.0] * 4
    assert len({r["image"] for r in rows}) == 8


def test_deleted_image_is_regenerated(tmp_path):
    out = tmp_path / "run"
    assert main(["--out_dir", str(out), *BASE[:-1], "--methods", "base"]) == 0  # with grids
    rows = strict_rows(out)
    victim = out / rows[1]["image"]
    original = victim.read_bytes()
    victim.unlink()
    assert main(["--out_dir", str(out), *BASE[:-1], "--methods", "base"]) == 0
    assert victim.read_bytes() == original
    assert [numbers(r) for r in strict_rows(out)] == [numbers(r) for r in rows]


def test_adding_a_reward_scores_existing_images_without_sampling(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert run(out, "--methods", "base") == 0
    before = strict_rows(out)

    def no_sampling(*args, **kwargs):
        raise AssertionError("a finished image was sampled again")

    monkeypatch.setattr(experiment, "sample", no_sampling)
    assert run(out, "--methods", "base", "--rewards", "jpeg_compressibility,colorfulness,brightness") == 0
    new = [r for r in strict_rows(out) if "brightness" in r["rewards"]]
    assert len(new) == len(before)
    old = {(r["prompt"], r["seed"]): r for r in before}
    for r in new:
        o = old[(r["prompt"], r["seed"])]
        assert r["image"] == o["image"]
        assert r["rewards"]["colorfulness"] == o["rewards"]["colorfulness"]
    assert len(strict_rows(out)) == 2 * len(before)  # the old rows are still there


def test_scores_of_saved_images_equal_scores_at_sampling_time(tmp_path):
    """The rows of a run that scored a reward while sampling equal those that added it later from the PNGs."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(a, "--methods", "base", "--rewards", "colorfulness,brightness") == 0
    assert run(b, "--methods", "base", "--rewards", "colorfulness") == 0
    assert run(b, "--methods", "base", "--rewards", "colorfulness,brightness") == 0
    want = sorted(numbers(r) for r in strict_rows(a))
    got = sorted(numbers(r) for r in strict_rows(b) if "brightness" in r["rewards"])
    assert got == want


def test_nonfinite_rewards_are_null_counted_and_warned(tmp_path, caplog):
    import torch

    from rewards.registry import REGISTRY, register

    class NanReward:
        name = "test_nan"

        def __call__(self, images, prompts):
            out = images.mean(dim=(1, 2, 3))
            out[0] = float("nan")
            out[1] = float("inf")
            return out

    register("test_nan", scale="test", description="NaN for the first image of a batch")(lambda **_: NanReward())
    try:
        out = tmp_path / "run"
        assert run(out, "--methods", "base", "--rewards", "colorfulness,test_nan") == 0
    finally:
        REGISTRY.pop("test_nan")
    rows = strict_rows(out)  # strict JSON despite the NaN
    bad = [r for r in rows if r.get("nonfinite")]
    assert len(bad) == 4 and all(r["rewards"]["test_nan"] is None for r in bad)
    assert {r["nonfinite"]["test_nan"] for r in bad} == {"nan", "inf"}
    assert all(r["weighted_reward"]["w=(0.5,0.5)"] is None for r in bad)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["base"]["nonfinite"] == 4 and summary["base"]["n"] == 4
    assert "Non-finite" in (out / "summary.md").read_text()
    assert "non-finite test_nan=nan for config base" in caplog.text
    assert torch.isfinite(torch.tensor(summary["base"]["rewards"]["colorfulness"])).all()


def test_stale_lock_of_a_dead_process_does_not_block(tmp_path):
    out = tmp_path / "run"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out.mkdir()
    import socket
    (out / LOCK).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "time": 0, "id": "x"}))
    assert run(out, "--methods", "base") == 0
    assert len(strict_rows(out)) == 4  # the OS-level lock ignores what the file holds (the file may stay)


def test_live_lock_waits_then_times_out():
    import tempfile

    from dbcore.io import LockTimeout, file_lock
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "lock"
        with file_lock(path), pytest.raises(LockTimeout, match="held by pid"):
            with file_lock(path, timeout=0.3):
                pass
        with file_lock(path, timeout=0.3):  # released
            pass


def _cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "run_DB.py"), "--out_dir", str(out), *BASE, *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def test_concurrent_processes_and_kill_keep_every_row(tmp_path):
    shared, ref = tmp_path / "shared", tmp_path / "ref"
    # reference rows, each method on its own
    for methods in ("base,single", "mpa,soup"):
        assert run(ref / methods.replace(",", "_"), "--methods", methods) == 0
    want = sorted(numbers(r) for d in ref.iterdir() for r in strict_rows(d))
    # a run killed with SIGKILL part-way, then two real processes with different methods at the same time
    victim = subprocess.Popen(_cli(shared, "--methods", "base,single", "--n_seeds", "2"), cwd=ROOT, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((shared / "parts").glob("*.jsonl")) and victim.poll() is None:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    procs = [subprocess.Popen(_cli(shared, "--methods", m), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for m in ("base,single", "mpa,soup")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    got = sorted(numbers(r) for r in strict_rows(shared))
    assert got == want
    assert len(list((shared / "parts").glob("*.jsonl"))) >= 2  # each writer has its own part file
