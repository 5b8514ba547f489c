"""Performance levers change no result; hybrid schedules pick the right model per step; the benchmark
scripts run at a tiny size and print their JSON (they are not timed tests: no number is checked)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from blend.hybrid import HybridSchedule, sample_hybrid
from blend.sampler import SamplerConfig, sample
from blend.soup import ensure_soup_adapter
from blend.spec import BlendSpec
from diffusion.adapters import activate, adapters_in, lora_layers, routed
from diffusion.guidance import BASE
from diffusion.lora import add_lora, random_lora

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def two_adapters(tiny_bundle):
    clean = copy.deepcopy(tiny_bundle.unet)
    loras = {n: random_lora(tiny_bundle.unet, seed=i + 1) for i, n in enumerate(("a", "b"))}
    for n, lw in loras.items():
        add_lora(tiny_bundle.unet, n, lw)
    return tiny_bundle, clean, loras


def _eps(unet, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=g)
    emb = torch.randn(2, 16, 32, generator=g)
    with torch.no_grad():
        return unet(x, 501, encoder_hidden_states=emb).sample


def _peft_flags(unet, name):
    """The flags as PEFT's own per-layer API would leave them (the reference for the indexed switch)."""
    for layer in lora_layers(unet):
        if name == BASE:
            layer._disable_adapters = True
        else:
            layer._disable_adapters = False
            layer._active_adapter = [name] if name in layer.lora_A else []


def test_indexed_switch_is_bit_identical(two_adapters):
    bundle, clean, _ = two_adapters
    unet = bundle.unet
    ref = {}
    for name in ("a", "b", BASE):
        _peft_flags(unet, name)
        ref[name] = _eps(unet)
    assert torch.equal(ref[BASE], _eps(clean))  # adapters disabled = the pretrained UNet, bit for bit
    assert not torch.equal(ref["a"], ref["b"])
    for name in ("b", "a", "a", BASE, BASE, "b", None, "a"):  # switches and repeats, in any order
        activate(unet, name)
        assert torch.equal(_eps(unet), ref[BASE if name is None else name])


def test_switch_notices_changes_behind_its_back(two_adapters):
    bundle, _, loras = two_adapters
    unet = bundle.unet
    activate(unet, "a")
    eps_a = _eps(unet)
    for layer in lora_layers(unet):  # e.g. PEFT's enable/disable called directly
        layer._disable_adapters = True
    activate(unet, "a")  # the cached state no longer holds: the flags must be rewritten
    assert torch.equal(_eps(unet), eps_a)
    with routed(unet, ["b"] * 2):
        eps_routed_b = _eps(unet)
    activate(unet, "b")
    assert torch.equal(_eps(unet), eps_routed_b)
    add_lora(unet, "c", random_lora(unet, seed=9))  # the index is rebuilt after a new adapter
    assert adapters_in(unet) == ["a", "b", "c"]
    activate(unet, "c")
    assert not torch.equal(_eps(unet), eps_a)
    with pytest.raises(KeyError, match="no adapter named 'zz'"):
        activate(unet, "zz")


def test_hybrid_per_step_coefficients():
    h = HybridSchedule(("a", "b"), (0.25, 0.75), start=0.25, stop=0.75, other="soup")
    assert h.mpa_steps(8) == [False, False, True, True, True, True, False, False]
    soup = {BlendSpec("soup", ("a", "b"), (0.25, 0.75)).soup_adapter_name: 1.0}
    assert [h.coefficients_at(i, 8) for i in range(8)] == [soup, soup] + [{"a": 0.25, "b": 0.75}] * 4 + [soup, soup]
    assert h.unet_evals(8) == 12 and h.cost_ratio(8) == 1.5
    assert HybridSchedule(("a", "b"), (0.5, 0.5), 0.25, 0.75).mpa_steps(50).count(True) == 25  # halves round up
    ls = HybridSchedule(("a", "b"), (0.5, 0.5), start=0.5, stop=1.0, other="mpa_ls")
    assert [ls.coefficients_at(i, 4) for i in range(4)] == [None, None, {"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}]
    with pytest.raises(IndexError):
        ls.coefficients_at(4, 4)
    with pytest.raises(ValueError, match="start ≤ stop"):
        HybridSchedule(("a", "b"), (0.5, 0.5), start=0.6, stop=0.5)
    with pytest.raises(ValueError, match="other="):
        HybridSchedule(("a", "b"), (0.5, 0.5), other="kla")
    with pytest.raises(ValueError, match="sum to 1"):
        HybridSchedule(("a", "b"), (0.5, 0.6))


def test_hybrid_sampler_reduces_to_its_parts(two_adapters):
    bundle, _, loras = two_adapters
    names, w = ("a", "b"), (0.3, 0.7)
    prompts, seeds, cfg = ["a red circle", "a blue square", "x"], [0, 1, 2], SamplerConfig(steps=4)
    for other in ("soup", "mpa_ls"):
        ensure_soup_adapter(bundle.unet, BlendSpec("soup", names, w), loras)
        pure_other = sample(bundle, BlendSpec(other, names, w), prompts, seeds, cfg)
        none = sample_hybrid(bundle, HybridSchedule(names, w, 0.0, 0.0, other), prompts, seeds, cfg)
        assert torch.equal(none.images, pure_other.images) and none.unet_evals == [4, 4, 4]
    mpa = sample(bundle, BlendSpec("mpa", names, w), prompts, seeds, cfg)
    full = sample_hybrid(bundle, HybridSchedule(names, w, 0.0, 1.0, "soup"), prompts, seeds, cfg)
    assert torch.equal(full.images, mpa.images) and full.unet_evals == [8, 8, 8]
    half = sample_hybrid(bundle, HybridSchedule(names, w, 0.5, 1.0, "soup"), prompts, seeds, cfg)
    assert half.unet_evals == [6, 6, 6] and not torch.equal(half.images, mpa.images)


def _run(script: str, *args: str, timeout: int = 600) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_bench_blend_smoke():
    methods = ["single", "mpa2", "mpa4", "mpa2_batched", "mpa_ls", "kla", "kla_batched", "soup", "soup_factors",
               "hybrid_late", "bon", "code", "rgg", "smc"]
    out = _run("bench_blend.py", "--models", "tiny", "--steps", "4", "--batch", "2", "--repeats", "1",
               "--methods", ",".join(methods), "--memory", "mpa4", "--budget", "auto")
    assert set(out["time"]["tiny"]) == {"base", *methods} and out["time"]["tiny"]["base"] == 1.0
    assert set(out["memory"]["tiny"]) == {"base", "mpa4"}
    assert out["floor"]["mpa4"] == 4 and out["floor"]["kla"] == out["floor"]["kla_batched"] == 2
    assert out["floor"]["soup"] == 1
    assert out["floor"]["hybrid_late"] == 1.5
    # sized to DB-MPA m = 2's 2·T = 8 forward-equivalents: N = 2 samples, CoDe 1 + N·S/T = 1 + 4·1/4; RGG and SMC
    # (one particle) guided on G = 1 step: 1 + 2 rewards · 2 (a backward = 2 forwards) · 1/4
    assert (out["floor"]["bon"], out["floor"]["code"], out["floor"]["rgg"], out["floor"]["smc"]) == (2, 2, 2, 2)
    assert out["evals_per_step"]["tiny"] == out["floor"]  # what the samplers counted is the floor
    assert out["info"]["tiny"]["indexed_switch_us"] > 0 and out["info"]["tiny"]["soup_fold_s"] > 0
    mem = _run("bench_blend.py", "--models", "tiny", "--steps", "1", "--batch", "1", "--methods", "mpa4", "--memory",
               "mpa4", "--memory_only")
    assert set(mem["memory"]["tiny"]) == {"base", "mpa4"} and mem["time"] == {}


def test_bench_users_and_soup_paths_smoke():
    """K users with different w, one call vs K calls (the same images up to float rounding); the soup through
    diffusers' weighted set_adapters / fuse_lora and as a rank-Σr LoRA gives the fold's ε."""
    out = _run("bench_blend.py", "--models", "tiny", "--steps", "1", "--batch", "1", "--repeats", "1", "--methods",
               "base", "--memory", "none", "--users", "3")
    u = out["users"]["tiny"]
    assert u["k"] == 3 and u["throughput_ratio"] > 0 and u["max_abs_image_diff"] < 1e-4
    soup = _run("bench_soup_peft.py", "--model", "tiny", "--steps", "2", "--repeats", "1")
    assert set(soup) == {"folded", "diffusers_set_adapters", "diffusers_fuse", "lora_rank_sum"}
    assert all(v["max_eps_diff"] < 1e-4 and v["max_x0_diff"] < 1e-3 for v in soup.values())
    assert soup["folded"]["restore_err"] == 0.0  # the fold puts the very tensors back


def test_bench_train_smoke():
    out = _run("bench_train.py", "--model", "tiny", "--steps", "2", "--p_step", "1", "--repeats", "1")
    assert set(out["phase_seconds"]) == {"rollout", "reward", "buffer", "value_update", "policy_update"}
    assert set(out["ratio_to_floor"]) == {"rollout", "policy_update"}
    assert set(out["memory"]) == {"one_unet_mb", "two_unet_mb", "ratio", "measure"}


def test_hybrid_measurement_scripts_smoke():
    rows = _run("theory_hybrid.py", "--smoke", "--alphas", "0.5")
    assert {(r["start"], r["stop"]) for r in rows} >= {(0.0, 0.0), (0.0, 1.0), (0.25, 0.75)}
    assert all({"evals_per_step", "rw", "gap", "sw2", "kept"} <= set(r) for r in rows)
    toy = _run("toy_hybrid.py", "--n_seeds", "1", "--steps", "2", "--prompt_file",
               str(ROOT / "dataset" / "toy_test_prompts.json"))
    assert {r["method"] for r in toy["rows"]} >= {"soup", "mpa", "mpa_ls"}
    assert all({"cost", "wr", "kept", "qualifies"} <= set(r) for r in toy["rows"])
