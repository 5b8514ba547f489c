"""train_online_pg.py as users launch it: the original README command under `accelerate launch` on the
CPU, and two CPU processes under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffusion.bundle import save_bundle
from diffusion.tiny import make_tiny_sd
from dpok import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "train_online_pg.py")
README_COMMAND = ["--p_batch_size", "2", "--reward_weight", "1000", "--kl_weight", "0.1", "--learning_rate", "1e-5",
                  "--single_flag", "0", "--prompt_path", "./dataset/test_prompts.json",
                  "--gradient_accumulation_steps", "12", "--clip_norm", "0.1", "--g_batch_size", "6", "--multi_gpu",
                  "1", "--max_train_steps", "100000", "--v_flag", "1", "--cache_dir", ".cache/"]
# what makes it a seconds-long CPU run (later flags win); everything else keeps the README's value
SHRINK = ["--max_train_steps", "1", "--p_step", "1", "--num_inference_steps", "3", "--g_batch_size", "2",
          "--gradient_accumulation_steps", "2", "--v_batch_size", "8", "--v_step", "1", "--report_to", "none",
          "--progress", "false", "--seed", "0"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(save_bundle(make_tiny_sd(seed=0, latent_size=8), tmp_path_factory.mktemp("tiny8cli") / "model"))


def env():
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_readme_command_under_accelerate_launch(tmp_path, tiny_dir):
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "test_prompts.json").write_text(json.dumps(
        {"A red colored car.": {"category": "Colors"}, "A blue colored dog.": {"category": "Colors"}}))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", SCRIPT, *README_COMMAND,
           "--pretrained_model_name_or_path", tiny_dir, "--reward", "brightness", "--output_dir", "out", *SHRINK]
    proc = run(cmd, tmp_path)
    assert "needs a GPU" in proc.stderr  # DPOK's default fp16 falls back to float32 on the CPU
    last = ckpt.latest_checkpoint(tmp_path / "out")
    man = json.loads((last / "manifest.json").read_text())
    assert man["iteration"] == 1 and man["reward_weight"] == 1000 and man["kl_weight"] == 0.1
    assert man["config"]["single_flag"] == 0 and man["config"]["clip_norm"] == 0.1
    state = torch.load(last / "training_state.pt", weights_only=False)
    assert set(state["buffer"]["prompts"]) <= {"A red colored car.", "A blue colored dog."}


@pytest.mark.slow
def test_two_cpu_processes_train_and_save_one_checkpoint(tmp_path, tiny_dir):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517", SCRIPT,
           "--base_model", tiny_dir, "--reward", "brightness", "--output_dir", str(tmp_path / "out"),
           "--iterations", "1", "--num_inference_steps", "3", "--g_batch_size", "1", "--p_step", "1",
           "--gradient_accumulation_steps", "2", "--v_batch_size", "4", "--v_step", "1", "--report_to", "none",
           "--progress", "false", "--seed", "0"]
    run(cmd, tmp_path)
    found = ckpt.list_checkpoints(tmp_path / "out")
    assert [it for it, _ in found] == [1]
    last = found[0][1]
    man = json.loads((last / "manifest.json").read_text())
    assert man["num_processes"] == 2 and man["samples_seen"] == 2
    s0 = torch.load(last / "training_state.pt", weights_only=False)
    s1 = torch.load(last / "training_state_rank1.pt", weights_only=False)
    assert not torch.equal(s0["buffer"]["data"]["state"], s1["buffer"]["data"]["state"])  # own rollouts
    assert all(torch.equal(s0["lora"][k], s1["lora"][k]) for k in s0["lora"])  # gradients were all-reduced
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in s0["lora"].items() if "lora_B" in k)


def test_help_lists_original_flags_and_says_which_have_no_effect():
    from dpok.config import build_parser

    text = build_parser().format_help()
    for flag in ("--p_batch_size", "--single_flag", "--multi_gpu", "--v_flag", "--pretrained_model_name_or_path",
                 "--resume_from_checkpoint", "--reward_flag", "--use_ema"):
        assert flag in text
    assert "no effect" in text
