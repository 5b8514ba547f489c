"""run_DB.py and its results store under bad input, crashes and damaged files (issue #24, #23 item 2).

No flag is silently replaced or ignored; every user error is one ``error:`` line naming the flag or file, refused
before torch is imported; the results lock never hangs on a dead holder; a corrupt results line or image is kept
aside or re-sampled, never lost silently; a full disk loses no stored row."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import blend.experiment as experiment
import diffusion.loading
from blend.cli import _explicit_flags, build_parser, main
from blend.run_plan import plan_from_args
from blend.store import CORRUPT, LOCK, ResultStore
from dbcore.io import LockTimeout, file_lock, read_jsonl
from dbcore.prompts import PromptFileError, load_prompts

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
TINY = ["--base_model", "builtin:tiny", "--steps", "2", "--n_seeds", "2", "--batch_size", "2", "--no_grids"]
SMALL = [*TINY, "--prompts", "a red circle|a blue square"]


@pytest.fixture
def no_model_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the flags were checked")
    monkeypatch.setattr(diffusion.loading, "load_bundle", refuse)


@pytest.fixture
def caplog_all(caplog):
    """caplog that also sees the project logger (it does not propagate to the root logger)."""
    logger = logging.getLogger("diffusion_blend")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="diffusion_blend")
    yield caplog
    logger.removeHandler(caplog.handler)


def plan(tmp_path: Path, *argv: str):
    args = build_parser().parse_args(["--out_dir", str(tmp_path), *argv])
    return plan_from_args(args, _explicit_flags(build_parser(), ["--out_dir", str(tmp_path), *argv]))


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def numbers(rows: list[dict]) -> list[tuple]:
    return sorted((r["row_key"], r["image"], json.dumps(r["rewards"], sort_keys=True)) for r in rows)


# ---------------------------------------------------------------------- silent mixes and replacements

@pytest.mark.parametrize("argv, match", [
    (["--methods", ""], r"^error: --methods is empty"),
    (["--weights", ""], r"^error: --weights is empty"),
    (["--weights", ";"], r"^error: --weights ';' is empty"),
    (["--methods", " , "], r"^error: --methods ' , ' names no method"),
    (["--device", " "], r"^error: --device is empty"),
    (["--scheduler", "ddim", "--guidance_scale", "inf"], r"^error: --guidance_scale must be a finite number"),
    (["--eta", "nan"], r"^error: --eta must be a finite number"),
    (["--eta", "2"], r"^error: --eta must be in \[0, 1\]"),
    (["--eta", "-0.5"], r"^error: --eta must be in \[0, 1\]"),
    (["--ir_weight", "nan"], r"^error: --ir_weight must be a finite number"),
    (["--prompt_file", str(ROOT / "dataset" / "toy_test_prompts.json")], "--prompt_file and --prompts both"),
    (["--methods", "mpa", "--weights", "0.7,0.7"], r"--weights 0.7,0.7 sums to 1.4; .*normalised: --weights 0.5,0.5"),
    (["--methods", "mpa", "--weights", "0.5,0.5", "--weights_end", "1,1"], "--weights_end 1,1 sums to 2"),
    (["--methods", "base", "--guidance_surrogate", "colorfulness=brightness"], "rgg, smc.*--methods runs none"),
    (["--methods", "rgg", "--weights", "0.5,0.5", "--rewards", "colorfulness,jpeg_compressibility",
      "--guidance_surrogate", "vila=brightness"], "'vila' is not in --rewards"),
    (["--methods", "rgg", "--weights", "0.5,0.5", "--rewards", "colorfulness,jpeg_compressibility",
      "--guidance_surrogate", "jpeg_compressibility=unknown"], "'unknown' is not a known reward; differentiable "
                                                              "rewards: aesthetic, brightness"),
    (["--methods", "rgg", "--weights", "0.5,0.5", "--rewards", "colorfulness,jpeg_compressibility",
      "--guidance_surrogate", "jpeg_compressibility=vila"], "'vila' is not differentiable"),
])
def test_flags_that_would_be_ignored_or_replaced_are_errors(tmp_path, no_model_loading, argv, match):
    with pytest.raises(SystemExit, match=match):
        main(["--out_dir", str(tmp_path), *SMALL, *argv])
    assert "error:" in (tmp_path / "run.log").read_text()


def test_a_valid_surrogate_is_kept(tmp_path):
    p = plan(tmp_path, *SMALL, "--methods", "rgg", "--weights", "0.5,0.5", "--rewards",
             "colorfulness,jpeg_compressibility", "--guidance_surrogate", "jpeg_compressibility=brightness")
    assert [s.option("surrogate") for s in p.specs] == ["jpeg_compressibility=brightness"]


def test_eta_out_of_range_in_the_python_api():
    from blend.sampler import SamplerConfig

    for eta in (2.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="eta must be in"):
            SamplerConfig(eta=eta)
    with pytest.raises(ValueError, match="guidance must be a finite number"):
        SamplerConfig(guidance=float("inf"))
    assert SamplerConfig(eta=0.0).eta == 0 and SamplerConfig(eta=1.0).eta == 1


def test_weight_vectors_are_checked_by_one_function():
    """The command line and every method's spec check a weight vector with blend.methods.registry's
    check_weight_vector (one tolerance, one message), not with copies of their own."""
    from blend import run_plan
    from blend.methods.registry import check_weight_vector
    from blend.spec import BlendSpec

    assert not hasattr(run_plan, "WEIGHT_TOL")
    with pytest.raises(run_plan.PlanError) as cli:
        run_plan.check_weight_sums([(0.5, 0.6)], "--weights")
    with pytest.raises(ValueError) as direct:
        check_weight_vector((0.5, 0.6), "--weights 0.5,0.6", fix="--weights ")
    assert str(cli.value) == str(direct.value) == ("--weights 0.5,0.6 sums to 1.1; a weight vector must sum to 1 "
                                                   "(within 1e-06); normalised: --weights 0.454545,0.545455")
    with pytest.raises(ValueError, match=r"^DB-MPA weights \[0.5, 0.6\] sums to 1.1; a weight vector must sum to 1"):
        BlendSpec(method="mpa", adapters=("a", "b"), weights=(0.5, 0.6))
    with pytest.raises(ValueError, match=r"weights \[nan, 0.5\]: weights must be finite numbers"):
        BlendSpec(method="mpa", adapters=("a", "b"), weights=(float("nan"), 0.5))


def test_prompts_alone_replace_the_toy_defaults_prompt_file(tmp_path):
    """--prompts without a model flag used to be overridden by the toy default's --prompt_file."""
    p = plan(tmp_path, "--prompts", "a red circle")
    assert p.toy_default and p.prompts == ["a red circle"]


def test_repeated_prompts_are_used_once(tmp_path, caplog_all):
    p = plan(tmp_path, *TINY, "--methods", "base", "--prompts", "a cat|a dog|a cat|a cat")
    assert p.prompts == ["a cat", "a dog"]
    lines = [r.getMessage() for r in caplog_all.records if "repeated prompt" in r.getMessage()]
    assert len(lines) == 1 and "--prompts: 2 repeated prompt(s) used once each (2 prompts, not 4): 'a cat'" in lines[0]
    (tmp_path / "p.txt").write_text("a cat\na dog\na cat\n")
    assert plan(tmp_path, *TINY, "--methods", "base", "--prompt_file", str(tmp_path / "p.txt")).prompts == \
        ["a cat", "a dog"]


def test_byte_order_marks_are_not_text(tmp_path):
    (tmp_path / "p.txt").write_bytes("\ufeffa cat\na dog\n".encode())
    (tmp_path / "p.json").write_bytes("\ufeff".encode() + json.dumps(["a cat", "a dog"]).encode())
    assert load_prompts(tmp_path / "p.txt") == load_prompts(tmp_path / "p.json") == ["a cat", "a dog"]


def test_single_image_tables_print_no_nan(tmp_path):
    out = tmp_path / "run"
    assert main(["--out_dir", str(out), *TINY, "--n_seeds", "1", "--prompts", "a red circle",
                 "--methods", "base,mpa,soup"]) == 0
    table = (out / "summary.md").read_text()
    assert "nan" not in table.lower() and "± – (no s.e.)" in table
    assert "nan" not in (out / "summary.tex").read_text().lower()


# ---------------------------------------------------------------------- hangs and loss: the lock

HOLD = """
import sys, time
from dbcore.io import file_lock
with file_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("content", [b"", b'{"host": "x", "pi', b'{"host": "elsewhere", "pid": 1, "time": 0}'])
def test_old_empty_or_torn_lock_files_do_not_block(tmp_path, content):
    (tmp_path / LOCK).write_bytes(content)
    start = time.monotonic()
    with file_lock(tmp_path / LOCK, timeout=2):
        pass
    assert time.monotonic() - start < 1


def test_empty_lock_file_does_not_stall_a_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_bytes(b"")
    start = time.monotonic()
    assert main(["--out_dir", str(out), *SMALL, "--methods", "base"]) == 0
    assert time.monotonic() - start < 60 and len(rows_of(out)) == 4


def test_lock_of_a_killed_holder_is_free(tmp_path):
    proc = _holder(tmp_path / LOCK)
    with pytest.raises(LockTimeout, match=rf"held by pid {proc.pid} on "):
        with file_lock(tmp_path / LOCK, timeout=0.3):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    start = time.monotonic()
    with file_lock(tmp_path / LOCK, timeout=5):
        pass
    assert time.monotonic() - start < 1


def test_waiting_for_a_lock_says_for_whom(tmp_path, caplog_all):
    proc = _holder(tmp_path / LOCK)
    try:
        with pytest.raises(LockTimeout, match="within 0.6 s: it is held by pid"):
            with file_lock(tmp_path / LOCK, timeout=0.6, log_every=0.2):
                pass
    finally:
        proc.kill()
        proc.wait()
    assert any(f"held by pid {proc.pid}" in r.getMessage() and "waiting for the lock" in r.getMessage()
               for r in caplog_all.records)


# ---------------------------------------------------------------------- hangs and loss: rows and images

def test_corrupt_middle_line_is_kept_aside_with_a_warning(tmp_path, caplog_all):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "b\n{"a": 3}\n[1, 2]\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 3}]
    kept = [json.loads(line) for line in (tmp_path / "rows.corrupt.jsonl").read_text().splitlines()]
    assert [(k["line"], k["text"]) for k in kept] == [(2, '{"a": 2, "b'), (4, "[1, 2]")]
    assert any(str(path) in r.getMessage() and "line 2, 4" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog_all.records)
    read_jsonl(path)  # read again: kept once
    assert len((tmp_path / "rows.corrupt.jsonl").read_text().splitlines()) == 2


def test_torn_last_line_is_kept_aside(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "b')
    assert read_jsonl(path) == [{"a": 1}]
    assert json.loads((tmp_path / "rows.corrupt.jsonl").read_text())["text"] == '{"a": 2, "b'


def test_a_corrupt_results_line_is_never_deleted_silently(tmp_path, caplog_all):
    out = tmp_path / "run"
    assert main(["--out_dir", str(out), *SMALL, "--methods", "base,single"]) == 0
    want = numbers(rows_of(out))
    lines = (out / "results.jsonl").read_text().splitlines()
    damaged = lines[3][: len(lines[3]) // 2]
    lines[3] = damaged
    (out / "results.jsonl").write_text("\n".join(lines) + "\n")
    part = ResultStore(out).part_files()[0]
    assert main(["--out_dir", str(out), *SMALL, "--methods", "base"]) == 0
    assert numbers(rows_of(out)) == want  # the parts still hold the row
    kept = [json.loads(line) for line in (out / CORRUPT).read_text().splitlines()]
    assert kept == [{"file": str(out / "results.jsonl"), "line": 4, "text": damaged}]
    assert any("results.jsonl: 1 corrupt line(s) (line 4)" in r.getMessage() for r in caplog_all.records)
    assert part.exists()


def test_empty_or_truncated_images_are_sampled_again(tmp_path, caplog_all):
    out = tmp_path / "run"
    assert main(["--out_dir", str(out), *SMALL, "--methods", "base,mpa", "--rewards", "colorfulness"]) == 0
    before = {r["image"]: (out / r["image"]).read_bytes() for r in rows_of(out)}
    empty, cut = sorted(before)[:2]
    (out / empty).write_bytes(b"")
    (out / cut).write_bytes(before[cut][: len(before[cut]) // 2])
    # adding a reward scores from the saved images: used to end in PIL.UnidentifiedImageError
    assert main(["--out_dir", str(out), *SMALL, "--methods", "base,mpa", "--rewards",
                 "colorfulness,brightness"]) == 0
    assert {rel: (out / rel).read_bytes() for rel in before} == before  # re-sampled bit for bit
    assert any(f"image {out / empty} is empty or truncated" in r.getMessage() for r in caplog_all.records)
    rows = [r for r in rows_of(out) if "brightness" in r["rewards"]]
    assert len(rows) == 8 and all(r["rewards"]["brightness"] is not None for r in rows)


def test_a_damaged_image_body_is_sampled_again(tmp_path, caplog_all):
    out = tmp_path / "run"
    assert main(["--out_dir", str(out), *SMALL, "--methods", "base", "--rewards", "colorfulness"]) == 0
    rel = rows_of(out)[0]["image"]
    good = (out / rel).read_bytes()
    (out / rel).write_bytes(good[:8] + b"\0" * (len(good) - 16) + good[-8:])  # signature and end intact
    assert main(["--out_dir", str(out), *SMALL, "--methods", "base", "--rewards", "colorfulness,brightness"]) == 0
    assert (out / rel).read_bytes() == good
    assert any("cannot be read" in r.getMessage() for r in caplog_all.records)


# ---------------------------------------------------------------------- tracebacks become one error line

def test_files_that_cannot_be_used_are_one_error_line(tmp_path, no_model_loading):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit, match=r"^error: --out_dir .*file is a file, not a directory"):
        main(["--out_dir", str(tmp_path / "file"), *SMALL])
    with pytest.raises(SystemExit, match=r"^error: --out_dir .*cannot be created"):
        main(["--out_dir", str(tmp_path / "file" / "sub"), *SMALL])
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"^error: --prompt_file .* is a directory"):
        main(["--out_dir", str(out), *TINY, "--prompt_file", str(tmp_path)])
    (tmp_path / "latin1.txt").write_bytes("a café\n".encode("latin-1"))
    with pytest.raises(SystemExit, match=r"^error: prompt file .*latin1.txt is not UTF-8 text"):
        main(["--out_dir", str(out), *TINY, "--prompt_file", str(tmp_path / "latin1.txt")])
    with pytest.raises(PromptFileError):
        load_prompts(tmp_path / "latin1.txt")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "manifest.json").write_text('{"base_model": ')
    with pytest.raises(SystemExit, match=rf"^error: --lora {adapter}: cannot read its manifest "
                                         rf"{adapter / 'manifest.json'}"):
        main(["--out_dir", str(out), *SMALL, "--lora", f"a={adapter}"])


def _disk_full(after: int):
    """A writer that works ``after`` times, then raises ENOSPC like a full disk."""
    calls = {"n": 0}

    def writer(real):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] > after:
                path = next(a for a in args if isinstance(a, (str, Path)))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return real(*args, **kwargs)
        return wrapped
    return writer


def test_a_full_disk_while_sampling_keeps_every_stored_row(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    assert main(["--out_dir", str(ref), *SMALL, "--methods", "base,single"]) == 0
    out = tmp_path / "run"
    monkeypatch.setattr(experiment, "atomic_path", _disk_full(after=4)(experiment.atomic_path))
    with pytest.raises(SystemExit, match=r"^error: the disk is full \(no space left writing .*\.png\); every "
                                         r"result row written before it is kept \(4 rows in") as info:
        main(["--out_dir", str(out), *SMALL, "--methods", "base,single"])
    assert "\n" not in str(info.value.code)
    assert len(read_jsonl(ResultStore(out).part_files()[0])) == 4
    monkeypatch.undo()
    assert main(["--out_dir", str(out), *SMALL, "--methods", "base,single"]) == 0
    assert numbers(rows_of(out)) == numbers(rows_of(ref))  # the same rows, images and numbers


def test_a_full_disk_while_plotting_is_one_line(tmp_path, monkeypatch):
    from dbcore import figures  # the ground floor draws every figure

    out = tmp_path / "run"
    monkeypatch.setattr(figures, "save", _disk_full(after=0)(figures.save))
    with pytest.raises(SystemExit, match=r"^error: the disk is full .*pareto.png.*\(4 rows in"):
        main(["--out_dir", str(out), *SMALL, "--methods", "base"])
    assert len(rows_of(out)) == 4  # results.jsonl was written before the plot


def test_a_huge_plan_needs_yes_and_is_refused_fast(tmp_path, no_model_loading):
    start = time.monotonic()
    with pytest.raises(SystemExit, match=r"asks for 200,000 images \(2 configs × 1 prompts × 100,000 seeds\).* h at "
                                         r"an assumed .*; pass --yes"):
        main(["--out_dir", str(tmp_path), *TINY, "--prompts", "a cat", "--methods", "base,mpa", "--n_seeds",
              "100000"])
    assert time.monotonic() - start < 10
    p = plan(tmp_path, *TINY, "--prompts", "a cat", "--methods", "base,mpa", "--n_seeds", "100000", "--yes")
    assert len(p.seeds) == 100000


# ---------------------------------------------------------------------- CLI speed (#23 item 2)

PROBE = """
import sys
from blend.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    print(exc.code)
    print("torch imported:", "torch" in sys.modules)
"""


def test_bad_weights_are_refused_before_torch_is_imported(tmp_path):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "run_DB.py"), "--out_dir", str(tmp_path), "--weights",
                           "0.7,0.7"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 3, "a flag error must not wait for torch"
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == ("error: --weights 0.7,0.7 sums to 1.4; a weight vector must sum "
                                                    "to 1 (within 1e-06); normalised: --weights 0.5,0.5")
    assert "soup" not in proc.stderr.lower()
    probe = subprocess.run([sys.executable, "-c", PROBE, "--out_dir", str(tmp_path), "--weights", "0.7,0.7"],
                           cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert "torch imported: False" in probe.stdout, probe.stdout + probe.stderr
    for argv in (["--methods", ""], ["--eta", "2"], ["--prompts", "a", "--prompt_file", "x.json"]):
        probe = subprocess.run([sys.executable, "-c", PROBE, "--out_dir", str(tmp_path), *argv], cwd=ROOT, env=ENV,
                               capture_output=True, text=True, timeout=60)
        assert "error:" in probe.stdout and "torch imported: False" in probe.stdout, (argv, probe.stdout)


def test_offline_hint_names_the_installed_hub_command(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"`hf download nobody/no-such-model`"):
        diffusion.loading._load_hub("nobody/no-such-model", None, "cpu", None)
