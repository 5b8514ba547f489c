"""The DPOK-trained toy adapters (issue 13): each matches its manifest, says what made it, and loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toy.manifest import check_manifest

D = Path(__file__).resolve().parent.parent / "toy" / "weights" / "dpok"
SIGMA = json.loads((D / "reward_stats.json").read_text())  # the statistics the DPOK set (toy world v1) used
# adapter -> the reward it was trained on: each basis reward alone, the oracle on ½ r_align/σ_align + ½ r_jpeg/σ_jpeg
SETS = {
    "alignment": {"toy_alignment": 1.0},
    "compressibility": {"jpeg_compressibility": 1.0},
    "oracle_w0.5": {"toy_alignment": 0.5 / SIGMA["toy_alignment"]["std"],
                    "jpeg_compressibility": 0.5 / SIGMA["jpeg_compressibility"]["std"]},
}


@pytest.mark.parametrize("name", sorted(SETS))
def test_dpok_adapter_matches_its_manifest(name):
    assert check_manifest(D / name) == []
    m = json.loads((D / name / "manifest.json").read_text())
    assert m["algorithm"] == "dpok" and m["rewards"].keys() == SETS[name].keys()
    assert all(abs(m["rewards"][r] - w) < 1e-4 * w for r, w in SETS[name].items()), m["rewards"]
    assert m["config"]["train_min_std"] == 0.05 and m["config"]["advantage_norm"] == "prompt_running"
    assert m["lora"]["rank"] == 8 and not m["interrupted_mid_iteration"]


@pytest.mark.parametrize("name", sorted(SETS))
def test_dpok_adapter_loads(name):
    from diffusion.loading import load_bundle
    from diffusion.lora import adapter_names, load_adapter

    bundle = load_bundle("builtin:toy")
    label = "dpok_" + name.replace(".", "p")  # adapter names take letters, digits, '_' and '-'
    lw = load_adapter(bundle.unet, label, D / name)
    assert lw.rank(lw.modules[0]) == 8 and adapter_names(bundle.unet) == [label]
