"""Inputs that were silently replaced or produced nothing are errors, checked before any model loads; user
errors exit with one `error:` line (also in run.log); trainer checkpoints are accepted only when complete and
made for this base model; adapter hashes depend on the tensors only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import diffusion.loading
from blend.cli import main
from diffusion.lora import AdapterError, content_sha256, random_lora, read_lora, save_lora
from diffusion.tiny import make_tiny_sd

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--base_model", "builtin:tiny", "--steps", "2", "--n_seeds", "1", "--batch_size", "2", "--prompts",
         "a red circle", "--no_grids", "--methods", "base"]


def without_prompts(argv: list[str]) -> list[str]:
    """``argv`` without its ``--prompts X`` (to give --prompt_file instead: both at once are refused)."""
    i = argv.index("--prompts")
    return argv[:i] + argv[i + 2:]


@pytest.fixture
def no_model_loading(monkeypatch):
    """Every case below must fail before a model is loaded."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the flags were checked")
    monkeypatch.setattr(diffusion.loading, "load_bundle", refuse)


@pytest.mark.parametrize("argv, match", [
    (["--steps", "0"], "--steps must be ≥ 1"),
    (["--num_inference_steps", "0"], "--num_inference_steps must be ≥ 1"),
    (["--prompts", ""], "--prompts is empty"),
    (["--prompts", "a cat||a dog"], "prompt #1 is blank"),
    (["--rewards", ""], "--rewards is empty"),
    (["--lambdas", ""], "--lambdas is empty"),
    (["--batch_size", "0"], "--batch_size must be ≥ 1"),
    (["--methods", "base,oracle"], "needs --oracle"),
    (["--oracle", "0.3,0.3,0.4=/x"], "3 entries but there are 2 adapters"),
    (["--weights", "0.5,0.5", "--weights", "0.5000001,0.4999999", "--methods", "mpa"], "both print as"),
    (["--reward_option", "brightness.x=1"], "not in --rewards"),
    (["--reward_option", "jpeg_compressibility.min_sid=64"], "takes no option 'min_sid'.*min_side"),
    (["--reward_option", "jpeg_compressibility.min_side=big"], "min_side takes a int"),
    (["--rewards", "nonsense"], "unknown reward 'nonsense'"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "nonsense"], "--device"),
    (["--lora", "a=/no/such/adapter"], "adapter not found"),
])
def test_bad_flags_are_errors_before_loading(tmp_path, no_model_loading, argv, match):
    with pytest.raises(SystemExit, match=match):
        main(["--out_dir", str(tmp_path), *SMALL, *argv])
    assert "error:" in (tmp_path / "run.log").read_text()


def test_blank_prompt_in_a_file(tmp_path, no_model_loading):
    (tmp_path / "p.json").write_text(json.dumps(["a cat", " ", "a dog"]))
    with pytest.raises(SystemExit, match="prompt #1 is blank"):
        main(["--out_dir", str(tmp_path), *without_prompts(SMALL), "--prompt_file", str(tmp_path / "p.json")])


def test_bad_adapter_files_name_the_file(tmp_path):
    unet = make_tiny_sd().unet
    save_lora(random_lora(unet, seed=1), tmp_path / "ok")
    good = tmp_path / "ok" / "pytorch_lora_weights.safetensors"
    cut = tmp_path / "cut" / "pytorch_lora_weights.safetensors"
    cut.parent.mkdir()
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(SystemExit, match=f"error: cannot read adapter file {cut}.*truncated"):
        main(["--out_dir", str(tmp_path / "o1"), *SMALL, "--lora", f"a={cut}"])
    model = tmp_path / "model.bin"
    torch.save(torch.nn.Linear(2, 2), model)  # a pickled module, not a state dict
    with pytest.raises(AdapterError, match=str(model)) as info:
        read_lora(model)
    assert "weights_only" not in str(info.value)


def test_user_error_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "run_DB.py"), "--out_dir", str(tmp_path), *SMALL, "--steps",
                           "0"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "error: --steps must be ≥ 1, got 0"
    assert "Traceback" not in proc.stderr


def _checkpoint(root: Path, name: str, base: str, complete: bool) -> Path:
    d = root / name
    save_lora(random_lora(make_tiny_sd().unet, seed=3), d)
    (d / "manifest.json").write_text(json.dumps({"base_model": base}))
    if complete:
        (d / "COMPLETE").write_text("1\n")
    return d


def test_run_db_refuses_half_written_and_other_base_checkpoints(tmp_path):
    half = _checkpoint(tmp_path, ".tmp-checkpoint-3", "builtin:tiny", complete=False)
    with pytest.raises(SystemExit, match="no COMPLETE marker"):
        main(["--out_dir", str(tmp_path / "o"), *SMALL, "--lora", f"a={half}"])
    other = _checkpoint(tmp_path, "checkpoint-4", "some/other-model", complete=True)
    with pytest.raises(SystemExit, match="trained on base model 'some/other-model'.*--allow_other_base"):
        main(["--out_dir", str(tmp_path / "o"), *SMALL, "--lora", f"a={other}"])
    assert main(["--out_dir", str(tmp_path / "o"), *SMALL, "--lora", f"a={other}", "--allow_other_base"]) == 0


HASH = ("from diffusion.lora import random_lora, content_sha256, read_lora, save_lora; import sys;"
        "from diffusion.tiny import make_tiny_sd; lw = random_lora(make_tiny_sd().unet, seed=1);"
        "save_lora(lw, sys.argv[1]); print(content_sha256(lw), read_lora(sys.argv[1]).sha256)")


def test_identical_tensors_hash_alike_across_processes_and_formats(tmp_path):
    outs = []
    for i, seed in enumerate(("0", "12345")):
        proc = subprocess.run([sys.executable, "-c", HASH, str(tmp_path / f"a{i}")], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                                           "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(proc.stdout.split())
    assert outs[0][0] == outs[0][1] == outs[1][0] == outs[1][1]
    lw = read_lora(tmp_path / "a0")
    save_lora(lw, tmp_path / "peft", formats=("peft",))
    save_lora(lw, tmp_path / "legacy", formats=("legacy",))
    assert read_lora(tmp_path / "peft").sha256 == read_lora(tmp_path / "legacy" / "pytorch_lora_weights.bin").sha256
    assert read_lora(tmp_path / "peft").sha256 == outs[0][0]
    lw.B[lw.modules[0]] = lw.B[lw.modules[0]] + 1e-3  # any change of a tensor changes the hash
    assert content_sha256(lw) != outs[0][0]


def test_exported_adapter_with_manifest_is_not_a_half_written_checkpoint():
    """The committed toy adapters carry a manifest but no trainer state: they are accepted, and their manifest's
    base model (toy/weights/base) is recognised as builtin:toy."""
    from blend.cli import REPO, check_checkpoint

    for sub in ("adapters/alignment", "oracles/w0.5/seed0"):
        check_checkpoint(str(REPO / "toy" / "weights" / sub), "--lora", "builtin:toy", allow_other_base=False)
    with pytest.raises(SystemExit, match="trained on base model"):
        check_checkpoint(str(REPO / "toy" / "weights" / "adapters" / "alignment"), "--lora", "builtin:tiny",
                         allow_other_base=False)


def test_check_validates_the_plan_and_writes_nothing(tmp_path, no_model_loading, capsys):
    """``--check``: every flag and the plan checked, the plan's size printed, no model loaded, nothing written."""
    out = tmp_path / "run"
    assert main(["--out_dir", str(out), *SMALL, "--methods", "base,mpa", "--check"]) == 0
    assert "ok: 2 method configurations × 1 prompts × 1 seeds = 2 images" in capsys.readouterr().out
    assert not out.exists()
    with pytest.raises(SystemExit, match="--steps must be ≥ 1"):
        main(["--out_dir", str(out), *SMALL, "--steps", "0", "--check"])
    assert not out.exists()


def test_toy_tables_script_flags_are_accepted():
    """Every run_DB.py call of scripts/toy_tables.sh passes the flag and plan checks (``--check``: nothing runs)."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "toy_tables.sh"), "--check"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "every run_DB.py call of this script accepts its flags" in proc.stdout
