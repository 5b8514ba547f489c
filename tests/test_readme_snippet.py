"""The README's diffusers snippet runs as written: offline, the hub mocked by a tiny model built in code, the two
LoRA paths it names written by the test (a kohya/A1111 file and a diffusers directory)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

from diffusion.lora import random_lora, save_lora
from diffusion.tiny import make_tiny_sd

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet() -> str:
    text = README.read_text()
    section = text[text.index("## Usage: from a diffusers pipeline"):]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


def test_readme_snippet_runs(tmp_path, monkeypatch):
    code = snippet()
    assert "from diffusion_blend import DiffusionBlendPipeline" in code
    b = make_tiny_sd(seed=0, latent_size=8)
    asked = []

    def from_pretrained(repo_id, **kwargs):
        asked.append(repo_id)
        return StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                       scheduler=b.scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)

    monkeypatch.setattr(StableDiffusionPipeline, "from_pretrained", staticmethod(from_pretrained))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loras").mkdir()
    kohya = {}
    for mod, lw in random_lora(b.unet, seed=3, rank=2).A.items():  # kohya key layout, alpha 1 ≠ rank 2
        key = "lora_unet_" + mod.replace(".", "_")
        out = b.unet.get_submodule(mod).out_features
        kohya[f"{key}.lora_down.weight"] = lw
        kohya[f"{key}.lora_up.weight"] = torch.randn(out, 2, generator=torch.Generator().manual_seed(4)) * 0.3
        kohya[f"{key}.alpha"] = torch.tensor(1.0)
    save_file(kohya, "loras/aesthetic.safetensors")
    save_lora(random_lora(b.unet, seed=5, std_b=0.3), tmp_path / "loras" / "imagereward")
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    image, pipe = namespace["image"], namespace["pipe"]
    assert asked == ["stable-diffusion-v1-5/stable-diffusion-v1-5"]
    assert image.size == (16, 16) and sorted(pipe.members) == ["aesthetic", "t2i"]
