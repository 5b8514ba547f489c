"""The named hybrid ``hybrid_late`` as a method of run_DB.py, the sampler and the pipeline.

* run_DB.py on builtin:tiny gives the images of ``blend.hybrid.sample_hybrid`` (an independent DDIM loop) bit for bit,
  with its UNet evaluations and costs per row, its own store key, config label and display name;
* through ``blend.sampler`` with any scheduler, an empty DB-MPA range is the soup and the full range DB-MPA,
  bit for bit;
* the pipeline's ``method="hybrid_late"`` is the sampler's hybrid.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from blend import spec as spec_module
from blend.cli import main
from blend.hybrid import NAMED, HybridSchedule, sample_hybrid
from blend.sampler import SamplerConfig, sample
from blend.soup import ensure_soup_adapter
from blend.spec import BlendSpec
from dbcore.images import to_pil
from diffusion.schedulers import make_scheduler

PROMPTS = ["a red circle", "a blue square"]
W = (0.3, 0.7)


@pytest.fixture(scope="module")
def hybrid_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hybrid")
    argv = ["--base_model", "builtin:tiny", "--steps", "4", "--n_seeds", "2", "--batch_size", "2", "--prompts",
            "|".join(PROMPTS), "--no_grids", "--methods", "hybrid_late,mpa,soup", "--weights", ",".join(map(str, W)),
            "--out_dir", str(out)]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return out, rows


def test_run_db_hybrid_is_sample_hybrid_bit_for_bit(hybrid_run):
    from diffusion.loading import load_bundle
    from diffusion.lora_formats import load_adapter_any

    out, rows = hybrid_run
    hyb = [r for r in rows if r["method"] == "hybrid_late"]
    assert len(hyb) == 4 and {r["config"] for r in hyb} == {"hybrid_late_demo_a0.3_demo_b0.7"}
    bundle = load_bundle("builtin:tiny")
    names = ("demo_a", "demo_b")
    loras = {n: load_adapter_any(bundle, n, out / "builtin_adapters" / n) for n in names}
    ensure_soup_adapter(bundle.unet, BlendSpec("soup", names, W), loras)
    schedule = HybridSchedule(names, W, **NAMED["hybrid_late"])
    for p, prompt in enumerate(PROMPTS):  # run_DB's units: prompt-major, batches of 2 (one prompt, seeds 0 and 1)
        ref = sample_hybrid(bundle, schedule, [prompt] * 2, [0, 1], SamplerConfig(steps=4))
        assert ref.unet_evals == [6, 6]
        for seed, img in zip((0, 1), to_pil(ref.images)):
            row = next(r for r in hyb if r["prompt_index"] == p and r["seed"] == seed)
            saved = np.asarray(Image.open(out / row["image"]).convert("RGB"))
            assert np.array_equal(saved, np.asarray(img)), (prompt, seed)


def test_run_db_hybrid_rows(hybrid_run):
    out, rows = hybrid_run
    by = {(r["method"], r["prompt_index"], r["seed"]): r for r in rows}
    h, mpa, soup = by[("hybrid_late", 0, 0)], by[("mpa", 0, 0)], by[("soup", 0, 0)]
    # 4 steps, m = 2: DB-MPA on steps 2, 3 (2 evaluations each), the soup on steps 0, 1: m·T/2 + T/2 = 6
    assert (h["unet_evals"], mpa["unet_evals"], soup["unet_evals"]) == (6, 8, 4)
    assert h["costs"] == {"unet_forwards": 6, "unet_backwards": 0, "vae_decodes": 1, "reward_evals": 0,
                          "reward_grads": 0}
    assert len({h["sample_key"], mpa["sample_key"], soup["sample_key"]}) == 3
    assert h["image"] not in (mpa["image"], soup["image"])
    pixels = [np.asarray(Image.open(out / r["image"])) for r in (h, mpa, soup)]
    assert not np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[0], pixels[2])
    assert h["display"] == "Hybrid (DB-MPA late half, ΔW soup early) w=(0.3, 0.7)"
    assert h["targets"] == "w=(0.3,0.7)"  # paired against DB-MPA in the summary
    summary = json.loads((out / "summary.json").read_text())
    assert summary[h["config"]]["unet_evals_per_image"] == 6
    assert "Hybrid (DB-MPA late half" in (out / "summary.md").read_text()
    assert summary[h["config"]]["paired_vs_mpa"]
    cfg = json.loads((out / "config.json").read_text())
    assert {"start": 0.5, "stop": 1.0, "other": "soup"} in [c.get("hybrid") for c in cfg["configs"]]
    # a second run resumes: nothing is sampled again
    before = (out / "results.jsonl").read_text()
    assert main(["--base_model", "builtin:tiny", "--steps", "4", "--n_seeds", "2", "--batch_size", "2", "--prompts",
                 "|".join(PROMPTS), "--no_grids", "--methods", "hybrid_late", "--weights", "0.3,0.7",
                 "--out_dir", str(out)]) == 0
    assert (out / "results.jsonl").read_text() == before


def test_hybrid_spec():
    s = BlendSpec("hybrid_late", ("a", "b", "c"), (0.2, 0.3, 0.5))
    assert s.label == "hybrid_late_a0.2_b0.3_c0.5" and s.hybrid_parts == (0.5, 1.0, "soup")
    assert s.soup_spec == BlendSpec("soup", ("a", "b", "c"), (0.2, 0.3, 0.5)) and not s.is_soup
    assert BlendSpec("soup", ("a", "b"), W).soup_spec == BlendSpec("soup", ("a", "b"), W)
    assert BlendSpec("mpa", ("a", "b"), W).soup_spec is None
    # m·T/2 + T/2 evaluations per image: T = 10, m = 3 → 20, i.e. 2 per step
    assert HybridSchedule(s.adapters, s.weights, **NAMED["hybrid_late"]).unet_evals(10) == 20
    assert s.unet_evals_per_step(10) == 2.0 and s.unet_evals_per_step(3) == 5 / 3  # 1 DB-MPA step of 3: 3 + 2
    # the spec's per-step coefficients are the schedule's, step by step
    h = HybridSchedule(("a", "b"), W, **NAMED["hybrid_late"])
    two = BlendSpec("hybrid_late", ("a", "b"), W)
    assert [two.coefficients_at(i, 5) for i in range(5)] == [h.coefficients_at(i, 5) for i in range(5)]
    assert BlendSpec("hybrid_late", ("a", "b"), W).unet_evals_per_step(50) == 1.5
    assert s.to_dict()["hybrid"] == {"start": 0.5, "stop": 1.0, "other": "soup"}
    with pytest.raises(ValueError, match="per step"):
        s.coefficients()
    with pytest.raises(ValueError, match="depend on the number of steps"):
        s.unet_evals_per_step()
    with pytest.raises(ValueError, match="sum to 1"):
        BlendSpec("hybrid_late", ("a", "b"), (0.5, 0.6))
    with pytest.raises(ValueError, match="at least one adapter"):
        BlendSpec("hybrid_late")
    with pytest.raises(ValueError, match="not a soup"):
        s.soup_adapter_name  # noqa: B018


def test_run_db_hybrid_needs_weights():
    from blend.run_plan import PlanError, build_specs

    with pytest.raises(PlanError, match=r"\['hybrid_late'\] need --weights"):
        build_specs("hybrid_late", ["x", "y"], [], [0.5], [], False)
    assert build_specs("hybrid_late", ["x"], [], [0.5], [], False) == [BlendSpec("hybrid_late", ("x",), (1.0,))]


@pytest.mark.parametrize("sched", ["ddim", "dpm++", "euler_a"])
def test_sampler_hybrid_any_scheduler(tiny_with_adapters, monkeypatch, sched):
    bundle, loras = tiny_with_adapters
    scheduler = make_scheduler(sched, bundle.scheduler.config)
    names, seeds, cfg = ("a", "b"), [0, 1], SamplerConfig(steps=4)
    spec = BlendSpec("hybrid_late", names, W)
    ensure_soup_adapter(bundle.unet, spec.soup_spec, loras)

    def run(s):
        return sample(bundle, s, PROMPTS, seeds, cfg, scheduler=scheduler)

    soup, mpa, hyb = run(BlendSpec("soup", names, W)), run(BlendSpec("mpa", names, W)), run(spec)
    assert hyb.unet_evals == [6, 6]
    assert not torch.equal(hyb.images, soup.images) and not torch.equal(hyb.images, mpa.images)
    monkeypatch.setitem(spec_module.HYBRIDS, "hybrid_late", (0.0, 0.0, "soup"))  # empty DB-MPA range
    none = run(BlendSpec("hybrid_late", names, W))
    assert torch.equal(none.images, soup.images) and none.unet_evals == [4, 4]
    monkeypatch.setitem(spec_module.HYBRIDS, "hybrid_late", (0.0, 1.0, "soup"))  # the whole trajectory
    full = run(BlendSpec("hybrid_late", names, W))
    assert torch.equal(full.images, mpa.images) and full.unet_evals == [8, 8]


def test_sampler_refuses_what_it_cannot_run(tiny_with_adapters, monkeypatch):
    from blend.schedule import WeightSchedule
    from diffusion.lora import LoraWeights

    bundle, loras = tiny_with_adapters
    ramp = BlendSpec("hybrid_late", ("a", "b"), W, extra={"schedule": WeightSchedule(W, (0.5, 0.5))})
    with pytest.raises(ValueError, match="already fixes its blend per step"):
        sample(bundle, ramp, PROMPTS[:1], [0], SamplerConfig(steps=2))
    monkeypatch.setitem(spec_module.HYBRIDS, "hybrid_late", (0.5, 1.0, "mpa_ls"))
    with pytest.raises(ValueError, match="sample_hybrid"):
        sample(bundle, BlendSpec("hybrid_late", ("a", "b"), W), PROMPTS[:1], [0], SamplerConfig(steps=2))
    member = LoraWeights(A={}, B={}, alpha={}, source="unet/", fmt="full-unet")
    with pytest.raises(ValueError, match=r"\['m'\] cannot be"):
        ensure_soup_adapter(bundle.unet, BlendSpec("soup", ("a", "m"), W), {**loras, "m": member})


def test_pipeline_hybrid_is_the_samplers(tiny_with_adapters):
    from blend.pipeline import DiffusionBlendPipeline

    bundle, loras = tiny_with_adapters
    pipe = DiffusionBlendPipeline(vae=bundle.vae, text_encoder=bundle.text_encoder, tokenizer=bundle.tokenizer,
                                  unet=bundle.unet, scheduler=bundle.scheduler)
    pipe.set_progress_bar_config(disable=True)
    lat = pipe(PROMPTS, weights=dict(zip("ab", W)), method="hybrid_late", seeds=[0, 1], num_inference_steps=4,
               guidance_scale=7.5, eta=1.0, output_type="latent").images  # the sampler's (paper's) η
    ref = sample_hybrid(bundle, HybridSchedule(("a", "b"), W, **NAMED["hybrid_late"]), PROMPTS, [0, 1],
                        SamplerConfig(steps=4))
    assert torch.equal(bundle.decode(lat).cpu(), ref.images)
