"""--mix_weights: several weight vectors of one method and adapter set in one UNet batch (per-image weights).

Off by default (units, hence stored results, as before); on, the rows keep their keys and their images equal those
of separate calls (up to float rounding of the batch size, which the 8-bit PNGs do not see here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import blend.experiment as experiment
from blend.cli import main
from blend.experiment import Experiment, mix_key
from blend.sampler import SamplerConfig, sample
from blend.spec import BlendSpec

W3 = [(0.2, 0.8), (0.5, 0.5), (0.8, 0.2)]


def _exp(specs, mix: bool, batch_size: int = 4) -> Experiment:
    return Experiment(base_model="builtin:tiny", specs=specs, prompts=["a", "b"], seeds=[0], sampler=SamplerConfig(),
                      rewards=["r"], batch_size=batch_size, mix_weights=mix)


def test_units_mix_only_epsilon_blends_of_one_method_and_adapter_set():
    mpa = [BlendSpec("mpa", ("a", "b"), w) for w in W3]
    soup = [BlendSpec("soup", ("a", "b"), w) for w in W3[:2]]
    specs = [BlendSpec("base", (), ()), *mpa, *soup]
    plain = _exp(specs, False).units()
    # off: one spec per unit, its pairs in batches (as before the flag existed)
    assert plain == [[(spec, (0, 0)), (spec, (1, 0))] for spec in specs]
    mixed = _exp(specs, True).units()
    cells = [(s, ps) for ps in [(0, 0), (1, 0)] for s in mpa]  # pair-major: the weights of a pair side by side
    assert mixed == [[(specs[0], (0, 0)), (specs[0], (1, 0))], cells[:4], cells[4:],
                     *[[(s, (0, 0)), (s, (1, 0))] for s in soup]]
    assert sorted((id(s), ps) for u in mixed for s, ps in u) == sorted((id(s), ps) for u in plain for s, ps in u)
    assert mix_key(soup[0]) is None and mix_key(mpa[0]) == mix_key(mpa[2]) != mix_key(BlendSpec("mpa_ls", ("a", "b"),
                                                                                                (0.5, 0.5)))


@pytest.mark.parametrize("method", ["mpa", "mpa_ls", "kla"])
def test_per_image_weights_equal_separate_calls(tiny_with_adapters, method):
    bundle, _ = tiny_with_adapters
    specs = ([BlendSpec("kla", ("a",), (1.0,), lam=lam) for lam in (0.5, 1.5)] if method == "kla"
             else [BlendSpec(method, ("a", "b"), w) for w in W3])
    prompts, seeds, cfg = ["x", "y"], [0, 1], SamplerConfig(steps=3)
    alone = torch.cat([sample(bundle, s, prompts, seeds, cfg).images for s in specs])
    together = sample(bundle, [s for s in specs for _ in prompts], prompts * len(specs), seeds * len(specs), cfg)
    torch.testing.assert_close(together.images, alone, rtol=0, atol=1e-5)  # batch-size rounding only


def _run(out: Path, extra: list[str], monkeypatch) -> int:
    calls = {"n": 0}
    real = experiment.sample

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment, "sample", counting)
    assert main(["--out_dir", str(out), "--base_model", "builtin:tiny", "--steps", "2", "--n_seeds", "1",
                 "--batch_size", "8", "--prompts", "a red circle|a blue square", "--no_grids", "--methods", "mpa,kla",
                 "--weights", ";".join(f"{a},{b}" for a, b in W3), "--lambdas", "0.5,1.5", *extra]) == 0
    return calls["n"]


def test_run_db_mix_weights_keeps_keys_and_images_with_fewer_calls(tmp_path, monkeypatch):
    n_plain = _run(tmp_path / "plain", [], monkeypatch)
    n_mixed = _run(tmp_path / "mixed", ["--mix_weights"], monkeypatch)
    rows = {name: {r["row_key"]: r for r in map(json.loads, (tmp_path / name / "results.jsonl").read_text()
                                                 .splitlines())} for name in ("plain", "mixed")}
    assert set(rows["plain"]) == set(rows["mixed"]) and len(rows["plain"]) == 3 * 2 + 2 * 3 * 2
    for key, r in rows["plain"].items():
        m = rows["mixed"][key]
        assert (m["config"], m["prompt"], m["seed"], m["image"]) == (r["config"], r["prompt"], r["seed"], r["image"])
        a, b = (np.asarray(Image.open(tmp_path / d / r["image"]), dtype=np.int16) for d in ("plain", "mixed"))
        assert np.abs(a - b).max() <= 1  # the same image (float rounding may move an 8-bit level, rarely)
    # 3 mpa weights and 2 × 3 kla (λ × w) configs over 2 pairs: one call per config, or per 8 cells of a group
    assert (n_plain, n_mixed) == (9, 1 + 2)
    cfg = json.loads((tmp_path / "mixed" / "config.json").read_text())
    assert "--mix_weights" in cfg["argv"]


def test_mix_weights_with_nothing_to_mix_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="^error: --mix_weights"):
        main(["--out_dir", str(tmp_path), "--base_model", "builtin:tiny", "--steps", "2", "--n_seeds", "1",
              "--prompts", "a", "--no_grids", "--methods", "mpa", "--weights", "0.5,0.5", "--mix_weights"])
