"""run_DB.py end to end on the built-in tiny model: outputs, resume, two processes, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import blend.experiment as experiment
from blend.cli import main
from dbcore.prompts import PromptFileError, load_prompts

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--base_model", "builtin:tiny", "--steps", "2", "--n_seeds", "2", "--batch_size", "2", "--prompts", "a red circle|a blue square",
         "--no_grids"]


def rows_without_timing(out: Path) -> list[dict]:
    """Result rows minus what legitimately differs between two output dirs: wall time, and the path and
    file hash of the demo adapters each run writes (safetensors headers are not byte-stable)."""
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("seconds")
        r["adapters"] = [{"name": a["name"], "fmt": a["fmt"]} for a in r["adapters"]]
    return rows


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("default")
    assert main(["--out_dir", str(out), *SMALL[:-1]]) == 0
    return out


def test_default_run_writes_everything(default_run):
    out = default_run
    for name in ("results.jsonl", "summary.json", "summary.md", "config.json", "pareto.png", "run.log"):
        assert (out / name).exists(), name
    rows = rows_without_timing(out)
    configs = {r["config"] for r in rows}
    assert {"base", "single_demo_a", "single_demo_b", "mpa_demo_a0.5_demo_b0.5", "mpa_ls_demo_a0.5_demo_b0.5",
            "soup_demo_a0.5_demo_b0.5", "soup_factors_demo_a0.5_demo_b0.5"} <= configs
    assert len(rows) == len(configs) * 2 * 2
    row = next(r for r in rows if r["method"] == "mpa")
    assert set(row["rewards"]) == {"jpeg_compressibility", "colorfulness"}
    assert row["weighted_reward"]["w=(0.5,0.5)"] == pytest.approx(
        0.5 * row["rewards"]["jpeg_compressibility"] + 0.5 * row["rewards"]["colorfulness"])
    assert row["unet_evals"] == 2 * 2 and len(row["adapters"]) == 2
    raw = json.loads((out / "results.jsonl").read_text().splitlines()[-1])
    assert all(len(a["sha256"]) == 64 and Path(a["path"]).exists() for a in raw["adapters"])
    assert (out / row["image"]).exists()
    assert (out / "grids" / "base.png").exists()
    assert (out / "grids" / "methods_seed0.png").exists()  # the methods side by side, one seed (paired images)
    assert (out / "summary_paired.png").exists() and (out / "summary_paired.pdf").exists()  # forest plot of Δ
    summary = json.loads((out / "summary.json").read_text())
    assert summary["base"]["n"] == 4 and len(summary["base"]["rewards"]["colorfulness"]) == 2
    assert "DB-MPA" in (out / "summary.md").read_text()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sampler"]["steps"] == 2 and cfg["versions"]["torch"]


def test_rerun_skips_finished_images(default_run, caplog):
    before = (default_run / "results.jsonl").read_text()
    assert main(["--out_dir", str(default_run), *SMALL[:-1]]) == 0
    assert (default_run / "results.jsonl").read_text() == before  # nothing recomputed, nothing rewritten


def test_resume_after_interruption_gives_the_same_results(tmp_path, monkeypatch, default_run):
    real_sample, calls = experiment.sample, {"n": 0}

    def crashing_sample(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(experiment, "sample", crashing_sample)
    assert main(["--out_dir", str(tmp_path), *SMALL[:-1]]) == 130  # "interrupted; re-run the same command"
    part = next((tmp_path / "parts").glob("*.jsonl"))
    with open(part, "a") as fh:
        fh.write('{"config": "base", "prompt_in')  # a torn last line, as a crash mid-write leaves it
    monkeypatch.setattr(experiment, "sample", real_sample)
    assert main(["--out_dir", str(tmp_path), *SMALL[:-1]]) == 0
    assert rows_without_timing(tmp_path) == rows_without_timing(default_run)


def test_two_processes_split_and_merge(tmp_path, default_run):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29517", str(ROOT / "run_DB.py"),
                           "--out_dir", str(tmp_path), *SMALL[:-1]], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "process 1/2" in proc.stderr
    assert rows_without_timing(tmp_path) == rows_without_timing(default_run)




@pytest.mark.parametrize("argv, match", [
    (["--weights", "0.5,0.6"], "sum to 1"),
    (["--weights", "0.5"], "1 entries but there are 2 adapters"),
    (["--methods", "mpa,fancy"], "unknown method"),
    (["--lambdas", "0.5,big"], "comma-separated numbers"),
    (["--oracle", "0.5,x=/tmp"], "not a comma-separated list of numbers"),
    (["--rewards", "nonsense"], "unknown reward 'nonsense'"),
    (["--lora", "x"], "NAME=PATH"),
    (["--base_model", "/no/such/dir"], "neither a directory"),
    (["--lora", "a=/no/such/adapter"], "adapter not found"),
    (["--prompt_file", "/no/such/prompts.json"], "prompt file not found"),
])
def test_bad_input_gives_clear_errors(tmp_path, argv, match):
    small = SMALL if "--prompt_file" not in argv else [a for i, a in enumerate(SMALL) if "--prompts" not in SMALL[i - 1:i + 1]]
    with pytest.raises((SystemExit, ValueError, KeyError, FileNotFoundError), match=match):
        main(["--out_dir", str(tmp_path / "x"), *small, *argv])


def test_prompt_file_formats(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps(["a cat", "a dog"]))
    (tmp_path / "dpok.json").write_text(json.dumps({"a cat": {"category": "animals"}, "a dog": {}}))
    (tmp_path / "bad.json").write_text(json.dumps({"prompts": 3}) + "]")
    (tmp_path / "nums.json").write_text(json.dumps([1, 2]))
    assert load_prompts(tmp_path / "list.json") == load_prompts(tmp_path / "dpok.json") == ["a cat", "a dog"]
    with pytest.raises(PromptFileError, match="not valid JSON"):
        load_prompts(tmp_path / "bad.json")
    with pytest.raises(PromptFileError, match="strings only"):
        load_prompts(tmp_path / "nums.json")


def test_help_lists_new_and_original_flags(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--lora", "--weights", "--lambdas", "--methods", "--ir_weight", "--t2i_path", "--vila_path",
                 "--prompt_file", "--cache_dir", "--batched", "--list_rewards"):
        assert flag in text


def test_list_rewards(capsys):
    assert main(["--list_rewards"]) == 0
    assert "jpeg_compressibility" in capsys.readouterr().out


def test_original_flags_keep_their_meaning(tmp_path):
    """--ir_weight w with --t2i_path/--vila_path runs DB-MPA with weights (w, 1-w) over (t2i, vila), 5 seeds."""
    from diffusion.lora import random_lora, save_lora
    from diffusion.tiny import make_tiny_sd

    unet = make_tiny_sd().unet
    save_lora(random_lora(unet, seed=1), tmp_path / "t2i", formats=("legacy",))
    save_lora(random_lora(unet, seed=2), tmp_path / "vila", formats=("legacy",))
    (tmp_path / "prompts.json").write_text(json.dumps({"a red car": {"category": "colors"}}))
    out = tmp_path / "out"
    assert main(["--base_model", "builtin:tiny", "--rewards", "jpeg_compressibility,colorfulness", "--steps", "2",
                 "--ir_weight", "0.2", "--prompt_file", str(tmp_path / "prompts.json"), "--cache_dir",
                 str(tmp_path / "cache"), "--t2i_path", str(tmp_path / "t2i" / "pytorch_lora_weights.bin"),
                 "--vila_path", str(tmp_path / "vila" / "pytorch_lora_weights.bin"), "--out_dir", str(out),
                 "--no_grids"]) == 0
    rows = rows_without_timing(out)
    assert {r["config"] for r in rows} == {"mpa_t2i0.2_vila0.8"}
    assert sorted(r["seed"] for r in rows) == [0, 1, 2, 3, 4]
    assert rows[0]["adapters"] == [{"name": "t2i", "fmt": "legacy-attn-procs"}, {"name": "vila", "fmt": "legacy-attn-procs"}]
    assert "w=(0.2,0.8)" in rows[0]["weighted_reward"]


def test_reward_scales_enter_the_weighted_reward(tmp_path):
    out = tmp_path / "scaled"
    assert main(["--out_dir", str(out), *SMALL, "--methods", "base", "--reward_scale", "colorfulness=0.5"]) == 0
    row = rows_without_timing(out)[0]
    assert row["weighted_reward"]["w=(0.5,0.5)"] == pytest.approx(
        0.5 * row["rewards"]["jpeg_compressibility"] + 0.5 * row["rewards"]["colorfulness"] / 0.5)
    with pytest.raises(SystemExit, match="not in --rewards"):
        main(["--out_dir", str(tmp_path / "x"), *SMALL, "--reward_scale", "nope=2"])


def test_no_model_flags_selects_the_toy_default():
    from blend.cli import TOY_DEFAULTS, _explicit_flags, apply_builtin_default, build_parser

    parser = build_parser()
    argv = ["--out_dir", "x", "--n_seeds", "3", "--guidance", "7.5"]
    args = parser.parse_args(argv)
    assert apply_builtin_default(args, _explicit_flags(parser, argv))
    assert args.base_model == "builtin:toy" and args.lora == TOY_DEFAULTS["lora"]
    assert args.n_seeds == 3 and args.guidance == 7.5  # what the user gave wins
    assert args.steps == 10 and "oracle" in args.methods
    for item in (*args.lora, *args.oracle):
        assert (Path(item.split("=", 1)[1]) / "pytorch_lora_weights.safetensors").exists()
    argv = ["--base_model", "builtin:tiny"]
    assert not apply_builtin_default(parser.parse_args(argv), _explicit_flags(parser, argv))
    argv = ["--lora", "a=/x"]
    assert not apply_builtin_default(parser.parse_args(argv), _explicit_flags(parser, argv))
