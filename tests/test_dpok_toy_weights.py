"""The DPOK-trained toy adapter (issue 13): it matches its manifest, says what made it, and loads."""

from __future__ import annotations

import json
from pathlib import Path

from toy.manifest import check_manifest

D = Path(__file__).resolve().parent.parent / "toy" / "weights" / "dpok" / "compressibility"


def test_dpok_compressibility_adapter_matches_its_manifest():
    assert check_manifest(D) == []
    m = json.loads((D / "manifest.json").read_text())
    assert m["algorithm"] == "dpok" and m["rewards"] == {"jpeg_compressibility": 1.0}
    assert m["config"]["train_min_std"] == 0.05 and m["config"]["advantage_norm"] == "prompt_running"
    assert m["lora"]["rank"] == 8 and not m["interrupted_mid_iteration"]


def test_dpok_compressibility_adapter_loads():
    from diffusion.loading import load_bundle
    from diffusion.lora import adapter_names, load_adapter

    bundle = load_bundle("builtin:toy")
    lw = load_adapter(bundle.unet, "dpok_compressibility", D)
    assert lw.rank(lw.modules[0]) == 8 and adapter_names(bundle.unet) == ["dpok_compressibility"]
