"""train_online_pg.py's reliability: a checkpoint's base model is recognised in every spelling the loader accepts,
its files are readable as the umask allows, one trainer per --output_dir (a killed holder does not block), phase
times reach the log without a tracker, and bad flag values get one ``error:`` line before torch is imported."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest_dpok import tiny_train_config

from diffusion.bundle import save_bundle
from diffusion.sources import SD15, canonical_base_model, training_cwd
from diffusion.tiny import make_tiny_sd
from dpok.run_lock import OutputDirInUse, OutputDirLock
from dpok.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(save_bundle(make_tiny_sd(seed=0, latent_size=8), tmp_path_factory.mktemp("tiny8r") / "model"))


def small(out, base, **kw):
    return tiny_train_config(out, base, **{"v_flag": 0, **kw})


def env() -> dict:
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


# --- 1. the base model of a checkpoint, in the loader's spellings -------------------------------------------------

def _checkpoint_with_manifest(d: Path, manifest: dict) -> Path:
    from diffusion.lora import random_lora, save_lora

    save_lora(random_lora(make_tiny_sd().unet, seed=3), d)
    (d / "manifest.json").write_text(json.dumps(manifest))
    (d / "COMPLETE").write_text("1\n")
    return d


def test_canonical_base_model_reads_like_the_loader(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "sd").mkdir(parents=True)
    assert canonical_base_model("runwayml/stable-diffusion-v1-5") == SD15 == canonical_base_model(SD15)
    assert canonical_base_model("models/sd") == str(tmp_path / "models" / "sd")
    assert canonical_base_model("./models/sd/") == str(tmp_path / "models" / "sd")
    assert canonical_base_model("builtin:tiny") == "builtin:tiny"
    assert canonical_base_model("owner/other") == "owner/other"
    assert training_cwd(tmp_path / "runs" / "a" / "checkpoint-3", "runs/a") == tmp_path
    assert training_cwd(tmp_path / "runs" / "a" / "checkpoint-3", "./runs/a/") == tmp_path
    assert training_cwd(tmp_path / "runs" / "a" / "checkpoint-3", "elsewhere") is None


def test_run_db_accepts_the_aliased_hub_id_and_refuses_another_base(tmp_path):
    from blend.run_plan import PlanError, check_checkpoint

    # as the trainer writes it now (canonical + as typed), and as older trainers wrote it (as typed)
    new = _checkpoint_with_manifest(tmp_path / "new" / "checkpoint-1", {
        "base_model": canonical_base_model("runwayml/stable-diffusion-v1-5"),
        "base_model_given": "runwayml/stable-diffusion-v1-5"})
    old = _checkpoint_with_manifest(tmp_path / "old" / "checkpoint-1", {"base_model": "runwayml/stable-diffusion-v1-5"})
    for ck in (new, old):
        check_checkpoint(str(ck), "--lora", SD15, allow_other_base=False)
        check_checkpoint(str(ck), "--lora", "runwayml/stable-diffusion-v1-5", allow_other_base=False)
        with pytest.raises(PlanError, match="trained on base model '(runwayml|stable-diffusion-v1-5)/stable-diffusion"
                                            "-v1-5', not on --base_model 'stabilityai/stable-diffusion-2-1'"):
            check_checkpoint(str(ck), "--lora", "stabilityai/stable-diffusion-2-1", allow_other_base=False)


def test_trainer_stores_the_absolute_base_and_run_db_accepts_either_spelling(tmp_path, tiny_dir, monkeypatch):
    import shutil

    from blend.run_plan import PlanError, check_checkpoint

    work = tmp_path / "work"
    shutil.copytree(tiny_dir, work / "models" / "tiny")
    monkeypatch.chdir(work)
    last = Trainer(small("runs/a", "models/tiny")).train()
    man = json.loads((work / last / "manifest.json").read_text())
    assert man["base_model"] == str(work / "models" / "tiny") and man["base_model_given"] == "models/tiny"
    ck = str(work / last)
    check_checkpoint(ck, "--lora", str(work / "models" / "tiny"), allow_other_base=False)
    check_checkpoint(ck, "--lora", "models/tiny", allow_other_base=False)
    # an older manifest held the relative path as typed: read from where the trainer ran, from any directory
    man["base_model"] = "models/tiny"
    (work / last / "manifest.json").write_text(json.dumps(man))
    monkeypatch.chdir(tmp_path)
    check_checkpoint(ck, "--lora", str(work / "models" / "tiny"), allow_other_base=False)
    with pytest.raises(PlanError, match="trained on base model 'models/tiny'"):
        check_checkpoint(ck, "--lora", tiny_dir, allow_other_base=False)  # a copy elsewhere is another base


def test_resume_with_another_spelling_of_the_base_is_not_a_change(tmp_path, tiny_dir, monkeypatch):
    import shutil

    work = tmp_path / "work"
    shutil.copytree(tiny_dir, work / "m")
    monkeypatch.chdir(work)
    Trainer(small("run", "m")).train()
    last = Trainer(small("run", str(work / "m"), iterations=2, resume="latest")).train()
    assert json.loads((last / "manifest.json").read_text())["settings_changes"] == []


# --- 2. file modes ------------------------------------------------------------------------------------------------

@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_path_gives_umask_modes_even_when_the_writer_replaces_the_file(tmp_path, umask_022):
    import torch
    from safetensors.torch import save_file

    from dbcore.io import atomic_path, write_json_atomic

    with atomic_path(tmp_path / "w.safetensors") as tmp:
        save_file({"a": torch.zeros(2)}, str(tmp))  # safetensors writes a new 0600 file
    write_json_atomic(tmp_path / "m.json", {"a": 1})
    for name in ("w.safetensors", "m.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    os.umask(0o027)
    with atomic_path(tmp_path / "x.safetensors") as tmp:
        save_file({"a": torch.zeros(2)}, str(tmp))
    assert stat.S_IMODE((tmp_path / "x.safetensors").stat().st_mode) == 0o640
    assert not list(tmp_path.glob(".*.tmp"))


def test_every_file_the_trainer_writes_is_readable_as_the_umask_allows(tmp_path, tiny_dir, umask_022):
    out = tmp_path / "run"
    Trainer(small(out, tiny_dir, save_legacy_bin=True)).train()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin",
                                       "manifest.json", "training_state.pt", "COMPLETE"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    for p in [out, *[d for d in out.rglob("*") if d.is_dir()]]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o755, p


# --- 3. one trainer per output directory ------------------------------------------------------------------------

HOLD = ("import sys, time; from dpok.run_lock import OutputDirLock; lock = OutputDirLock(sys.argv[1]); lock.acquire(); "
        "print('held', flush=True); time.sleep(120)")


def _holder(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_trainer_is_refused_and_a_killed_holder_does_not_block(tmp_path, tiny_dir):
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        t0 = time.monotonic()
        with pytest.raises(OutputDirInUse, match=rf"--output_dir {out} is in use: another trainer \(PID {proc.pid} "):
            Trainer(small(out, tiny_dir))
        assert time.monotonic() - t0 < 30  # at once, no waiting
        assert not any(out.glob("*checkpoint-*"))
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the holder dies without releasing: the kernel drops its flock
        proc.wait()
    lock = OutputDirLock(out)
    lock.acquire()
    assert lock.held and lock.holder()["pid"] == os.getpid()
    lock.release()
    Trainer(small(out, tiny_dir)).train()  # and a trainer runs, then gives the lock back
    lock.acquire()
    lock.release()


def test_second_trainer_on_the_command_line_gets_one_error_line(tmp_path, tiny_dir):
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        cli = subprocess.run([sys.executable, str(ROOT / "train_online_pg.py"), "--base_model", tiny_dir,
                              "--output_dir", str(out), "--reward", "brightness", "--iterations", "1",
                              "--num_inference_steps", "3", "--report_to", "none"],
                             cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert cli.returncode == 2, cli.stderr[-2000:]
    errors = [ln for ln in cli.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and f"--output_dir {out} is in use" in errors[0] and str(proc.pid) in errors[0]
    assert "Traceback" not in cli.stderr


# --- 4. phase times in the log, with no tracker ------------------------------------------------------------------

def test_phase_times_are_logged_without_a_tracker(tmp_path, tiny_dir, caplog):
    project = logging.getLogger("diffusion_blend")
    own = not project.propagate  # after setup_logging the project logger does not reach the root's caplog handler
    if own:
        project.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="diffusion_blend"):
            Trainer(small(tmp_path / "run", tiny_dir, iterations=3, log_interval=2, report_to="none")).train()
    finally:
        if own:
            project.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("iteration ")]
    assert [ln.split(":")[0] for ln in lines] == ["iteration 2/3", "iteration 3/3"]  # every 2nd, and the last
    for ln in lines:
        for phase in ("rollout", "reward", "value", "policy", "total"):
            assert f"{phase} " in ln.split("seconds:")[1], ln


# --- 5. flag values --------------------------------------------------------------------------------------------------

BAD = [(["--eta", "2"], "--eta 2.0"), (["--eta", "nan"], "--eta nan"), (["--eta", "0"], "--eta 0.0"),
       (["--guidance_scale", "inf"], "--guidance_scale inf"), (["--learning_rate", "0"], "--learning_rate"),
       (["--reward", ""], "--reward is empty"), (["--reward", "brightness:inf"], "--reward 'brightness:inf'"),
       (["--base_model", ""], "--base_model is empty"), (["--adam_beta1", "1"], "--adam_beta1"),
       (["--kl_weight", "-1"], "--kl_weight"), (["--iterations", "0"], "--iterations"),
       (["--seed", "-1"], "--seed"), (["--checkpoints_total_limit", "0"], "--checkpoints_total_limit"),
       (["--v_lr", "nan"], "--v_lr nan"), (["--log_interval", "0"], "--log_interval")]

CHECK = ("import sys, json, train_online_pg as t; rc = [t.main(a) for a in json.loads(sys.argv[1])]; "
         "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}))")


def test_bad_flag_values_get_one_error_line_before_torch_is_imported(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CHECK, json.dumps([argv for argv, _ in BAD])], cwd=tmp_path,
                          env=env(), capture_output=True, text=True, timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"rc": [2] * len(BAD), "torch": False}, proc.stderr[-3000:]
    errors = [ln.split("error: ", 1)[1] for ln in proc.stderr.splitlines() if "error: " in ln]
    assert len(errors) == len(BAD) and "Traceback" not in proc.stderr
    for (argv, flag), err in zip(BAD, errors):
        assert err.startswith(flag), (argv, err)


def test_valid_edge_values_are_kept():
    from dpok.config import TrainConfig, check_values

    for ok in (dict(eta=1.0), dict(eta=1e-3), dict(guidance_scale=0.0), dict(clip_norm=float("inf")),
               dict(report_to=""), dict(kl_weight=0.0), dict(seed=0), dict(reward="a:0.5,b:0.5")):
        check_values(TrainConfig(**ok))
