"""Prompt embeddings computed once per batch of prompts and reused across methods and weights: the same images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import blend.experiment as experiment
from blend.cli import main
from blend.sampler import PromptEmbeddings, SamplerConfig, sample
from blend.soup import ensure_soup_adapter
from blend.spec import BlendSpec


def test_cached_embeddings_give_the_same_images(tiny_with_adapters):
    bundle, loras = tiny_with_adapters
    specs = [BlendSpec("base"), BlendSpec("single", ("a",)), BlendSpec("mpa", ("a", "b"), (0.3, 0.7)),
             BlendSpec("mpa_ls", ("a", "b"), (0.3, 0.7)), BlendSpec("hybrid_late", ("a", "b"), (0.3, 0.7))]
    ensure_soup_adapter(bundle.unet, specs[-1].soup_spec, loras)
    prompts, seeds, cfg = ["a red circle", "a red circle"], [0, 1], SamplerConfig(steps=2)
    cache = PromptEmbeddings()
    for spec in specs:
        plain = sample(bundle, spec, prompts, seeds, cfg)
        cached = sample(bundle, spec, prompts, seeds, cfg, prompt_cache=cache)
        assert torch.equal(plain.images, cached.images), spec.label
    assert (cache.misses, cache.hits) == (2, 2 * len(specs) - 2)  # the prompts and the empty prompt, once each
    sample(bundle, specs[0], ["a blue square"] * 2, seeds, cfg, prompt_cache=cache)
    assert (cache.misses, cache.hits) == (3, 2 * len(specs) - 1)  # a new batch of prompts is encoded
    small = PromptEmbeddings(size=1)
    for p in ("x", "y", "x"):
        small.encode(bundle, [p], [])
    assert (small.misses, small.hits) == (3, 0)
    with pytest.raises(ValueError, match="size must be"):
        PromptEmbeddings(size=0)


def _images(out, rows):
    return {(r["config"], r["prompt"], r["seed"]): np.asarray(Image.open(out / r["image"])) for r in rows}


def test_run_db_with_and_without_the_cache(tmp_path, monkeypatch):
    argv = ["--base_model", "builtin:tiny", "--steps", "2", "--n_seeds", "2", "--batch_size", "2", "--prompts",
            "a red circle|a blue square", "--no_grids", "--methods", "base,single,mpa,soup,hybrid_late"]
    real, uses = experiment.sample, []

    def counting(*args, **kwargs):
        uses.append(kwargs.get("prompt_cache"))
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment, "sample", counting)
    assert main([*argv, "--out_dir", str(tmp_path / "cached")]) == 0
    caches = {id(c): c for c in uses if c is not None}
    assert len(uses) == 12 and len(caches) == 1  # 6 configs × 2 batches, all through one cache
    cache = next(iter(caches.values()))
    assert (cache.misses, cache.hits) == (3, 21)  # 2 prompt batches + the empty prompt, encoded once each

    def uncached(*args, prompt_cache=None, **kwargs):
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment, "sample", uncached)
    assert main([*argv, "--out_dir", str(tmp_path / "plain")]) == 0
    rows = {name: [json.loads(line) for line in (tmp_path / name / "results.jsonl").read_text().splitlines()]
            for name in ("cached", "plain")}
    a, b = _images(tmp_path / "cached", rows["cached"]), _images(tmp_path / "plain", rows["plain"])
    assert len(a) == 24 and a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert [r["rewards"] for r in rows["cached"]] == [r["rewards"] for r in rows["plain"]]
