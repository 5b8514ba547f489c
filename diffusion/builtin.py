"""Built-in models, addressed as ``builtin:NAME`` wherever a base model is expected.

* ``builtin:tiny``, ``builtin:tiny-xl``, ``builtin:tiny-sd3`` — random weights built from configs (``diffusion.tiny``)
  in the SD, SDXL and SD3 families: they exercise code paths.
* ``builtin:toy`` — the toy world's trained 32×32 pixel-space model, committed in
  ``toy/weights/base`` in the Stable Diffusion directory layout and read by the ordinary local-
  directory loader (``toy/``; rebuilt by ``scripts/build_toy.sh``).
"""

from __future__ import annotations

import torch

from diffusion.bundle import ModelBundle
from diffusion.families import load_local_dir
from diffusion.sources import BUILTIN_MODELS, BUILTIN_PREFIX, TOY_BASE_DIR  # noqa: F401 - re-exported (one definition)


def load_builtin(name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> ModelBundle:
    if name == "tiny":
        from diffusion.tiny import make_tiny_sd

        return make_tiny_sd().to(device, dtype)
    if name == "tiny-xl":
        from diffusion.tiny import make_tiny_sdxl

        return make_tiny_sdxl().to(device, dtype)
    if name == "tiny-sd3":
        from diffusion.tiny import make_tiny_sd3

        return make_tiny_sd3().to(device, dtype)
    if name == "toy":
        if not (TOY_BASE_DIR / "unet").is_dir():
            raise FileNotFoundError(f"builtin:toy: the toy base model is missing from {TOY_BASE_DIR}; rebuild it with "
                                    f"`bash scripts/build_toy.sh` or pass --base_model DIR")
        bundle = load_local_dir(TOY_BASE_DIR, device, dtype)
        bundle.source = "builtin:toy"
        return bundle
    raise ValueError(f"unknown built-in model {name!r}; available: {', '.join('builtin:' + n for n in BUILTIN_MODELS)}")
