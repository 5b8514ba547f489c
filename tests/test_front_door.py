"""The front door: the deleted hub id as an alias (mocked hub), `run_DB.py --help` / `--list_rewards` without
torch, the reward catalogue read from source equal to the registry, and run_DB with the new flags (kohya --lora,
--model NAME=DIR, --weights_end/--schedule, --scheduler) recording them in its rows."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "peft", "transformers", "accelerate")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_deleted_hub_id_loads_the_maintained_copy(tmp_path, monkeypatch):
    import huggingface_hub

    from dbcore.logging import get_logger
    from diffusion.bundle import save_bundle
    from diffusion.loading import SD15, load_bundle
    from diffusion.tiny import make_tiny_sd

    save_bundle(make_tiny_sd(seed=0, latent_size=8), tmp_path / "snapshot")
    asked = []

    def fake_snapshot(repo_id, **kwargs):
        asked.append(repo_id)
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    records = _Records()
    get_logger("diffusion").addHandler(records)
    try:
        bundle = load_bundle("runwayml/stable-diffusion-v1-5")
        load_bundle(SD15)
    finally:
        get_logger("diffusion").removeHandler(records)
    assert asked == [SD15, SD15]
    assert any("runwayml/stable-diffusion-v1-5 was deleted" in m and SD15 in m for m in records.messages)
    assert bundle.unet.config.sample_size == 8


def test_paper_defaults_name_the_live_hub_id():
    from blend.cli import PAPER_BASE_MODEL
    from diffusion.loading import SD15
    from dpok.config import TrainConfig
    from rewards.image_reward import HUB_REPO, HUB_REPO_OLD

    assert PAPER_BASE_MODEL == TrainConfig().base_model == SD15 == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert (HUB_REPO, HUB_REPO_OLD) == ("zai-org/ImageReward", "THUDM/ImageReward")


def test_help_and_list_rewards_import_no_heavy_package():
    code = ("import sys, contextlib, io\n"
            "from blend.cli import main\n"
            "for argv in (['--help'], ['--list_rewards']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
            "        main(argv)\n"
            "    assert 'jpeg_compressibility' in out.getvalue() or argv == ['--help'], out.getvalue()\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
    shown = subprocess.run([sys.executable, "run_DB.py", "--list_rewards"], cwd=ROOT, capture_output=True, text=True)
    assert shown.returncode == 0 and "image_reward" in shown.stdout and "toy_alignment" in shown.stdout


def test_cli_constants_match_the_modules_they_mirror():
    from blend.cli import BASELINE_METHODS, METHODS, SCHEDULER_NAMES
    from blend.spec import BASELINE_METHODS as SPEC_BASELINES
    from blend.spec import METHODS as SPEC_METHODS
    from diffusion.schedulers import SCHEDULERS

    assert METHODS == SPEC_METHODS and SCHEDULER_NAMES == tuple(SCHEDULERS) and BASELINE_METHODS == SPEC_BASELINES


def test_reward_catalogue_equals_the_registry():
    from rewards import list_rewards
    from rewards.catalog import reward_catalog

    live = [(i.name, i.scale, i.description, i.differentiable, i.needs) for i in list_rewards()]
    assert live == [(e.name, e.scale, e.description, e.differentiable, e.needs) for e in reward_catalog()]


def test_run_db_with_kohya_full_unet_schedule_and_scheduler(tmp_path):
    from blend.cli import main
    from diffusion.tiny import make_tiny_sd

    tiny = make_tiny_sd()  # builtin:tiny
    g = torch.Generator().manual_seed(0)
    sd = {}
    for mod in ("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v", "down_blocks.0.resnets.0.conv1"):
        w = tiny.unet.get_submodule(mod).weight
        key = "lora_unet_" + mod.replace(".", "_")
        sd[f"{key}.lora_down.weight"] = torch.randn(2, *w.shape[1:], generator=g) * 0.3
        sd[f"{key}.lora_up.weight"] = torch.randn(w.shape[0], 2, *([1, 1] if w.ndim == 4 else []), generator=g) * 0.3
        sd[f"{key}.alpha"] = torch.tensor(1.0)
    save_file(sd, str(tmp_path / "style.safetensors"))
    for p in tiny.unet.parameters():
        p.data += 0.02 * torch.randn(p.shape, generator=g)
    tiny.unet.save_pretrained(tmp_path / "ft" / "unet")
    out = tmp_path / "run"
    argv = ["--base_model", "builtin:tiny", "--lora", f"style={tmp_path / 'style.safetensors'}",
            "--model", f"ft={tmp_path / 'ft'}", "--weights", "0.8,0.2", "--weights_end", "0.2,0.8",
            "--schedule", "cosine", "--scheduler", "euler_a", "--methods", "mpa,soup", "--steps", "2",
            "--n_seeds", "1", "--prompts", "a red circle", "--no_grids", "--out_dir", str(out)]
    import pytest

    with pytest.raises(SystemExit, match="soup"):
        main(argv)
    argv[argv.index("mpa,soup")] = "base,mpa"
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    mpa = [r for r in rows if r["method"] == "mpa"]
    assert len(mpa) == 1 and mpa[0]["schedule"] == {"kind": "cosine", "start": [0.8, 0.2], "end": [0.2, 0.8]}
    assert all(r["scheduler"] == "euler_a" for r in rows)
    assert [a["fmt"] for a in mpa[0]["adapters"]] == ["kohya", "full-unet"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["scheduler"] == "euler_a" and cfg["configs"][1]["schedule"]["kind"] == "cosine"
