"""Built-in models, addressed as ``builtin:NAME`` wherever a base model is expected."""

from __future__ import annotations

import torch

from diffusion.bundle import ModelBundle

BUILTIN_MODELS = ("tiny",)


def load_builtin(name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> ModelBundle:
    if name == "tiny":
        from diffusion.tiny import make_tiny_sd

        return make_tiny_sd().to(device, dtype)
    if name == "toy":
        raise FileNotFoundError("builtin:toy is not available yet (the toy world is built by a later issue); "
                                "use builtin:tiny or a model directory")
    raise ValueError(f"unknown built-in model {name!r}; available: {', '.join('builtin:' + n for n in BUILTIN_MODELS)}")
