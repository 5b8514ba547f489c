"""Load a model bundle from anywhere: ``builtin:NAME``, a local directory or a hub id.

* ``builtin:tiny`` / ``builtin:toy`` — see ``diffusion.builtin``;
* a local directory in the Stable Diffusion (diffusers) layout (``diffusion.families.load_local_dir``);
* a hub id such as ``stable-diffusion-v1-5/stable-diffusion-v1-5`` (downloaded into ``cache_dir`` when online).

Hub ids that were deleted are read as their maintained copies (:data:`HUB_ALIASES`), with a log line:
``runwayml/stable-diffusion-v1-5`` (the paper's base, removed from the hub in 2024) is
``stable-diffusion-v1-5/stable-diffusion-v1-5``. ``diffusion.sources.canonical_base_model`` gives the one
spelling of a source that this reading implies (used by the base-model checks of checkpoints).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from dbcore.logging import get_logger
from diffusion.builtin import BUILTIN_MODELS, BUILTIN_PREFIX, load_builtin
from diffusion.bundle import ModelBundle, check_tokenizer
from diffusion.families import load_local_dir
from diffusion.sources import HUB_ALIASES, SD15, canonical_base_model

log = get_logger("diffusion")

__all__ = ["HUB_ALIASES", "HUB_PARTS", "SD15", "canonical_base_model", "load_bundle", "resolve_hub_alias"]


def resolve_hub_alias(source: str) -> str:
    """``source`` itself, or the maintained copy of a deleted hub id (with a log line); local paths are kept."""
    new = HUB_ALIASES.get(source)
    if new is None or Path(source).expanduser().exists():
        return source
    log.warning("%s was deleted from the Hugging Face hub; loading its maintained copy %s", source, new)
    return new

HUB_PARTS = tuple(f"{part}/*" for part in ("unet", "transformer", "text_encoder", "tokenizer", "text_encoder_2",
                                           "tokenizer_2", "text_encoder_3", "tokenizer_3"))
"""The folders of an SD, SDXL or SD3 hub repository that a bundle needs (``diffusion.families``)."""


def _load_hub(repo_id: str, cache_dir, device, dtype) -> ModelBundle:
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        local = snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=offline,
                                  allow_patterns=["model_index.json", "scheduler/*", "vae/*", *HUB_PARTS],
                                  ignore_patterns=["*.bin", "*.ckpt", "*fp16*", "*.onnx*", "*.msgpack"])
    except Exception as exc:  # noqa: BLE001 - re-raised with the fix
        raise FileNotFoundError(
            f"cannot load base model {repo_id!r}: it is not a local directory and the hub gave: "
            f"{type(exc).__name__}: {exc}. Download it on a machine with internet "
            f"(`hf download {repo_id}{f' --cache-dir {cache_dir}' if cache_dir else ''}`, the installed hub's command; "
            f"without --cache-dir it fills the default cache that is read here) or pass "
            f"--base_model /path/to/local/model") from exc
    return load_local_dir(Path(local), device, dtype)


def load_bundle(source: str = "builtin:tiny", *, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32, cache_dir: str | None = None) -> ModelBundle:
    """Load the model named by ``source`` (see the module docstring) in eval mode with frozen weights."""
    if source.startswith(BUILTIN_PREFIX):
        bundle = load_builtin(source[len(BUILTIN_PREFIX):], device=device, dtype=dtype)
    elif Path(source).expanduser().exists():
        bundle = load_local_dir(Path(source).expanduser(), device, dtype)
    elif source.count("/") == 1 and not source.startswith((".", "/", "~")):
        bundle = _load_hub(resolve_hub_alias(source), cache_dir, device, dtype)
    else:
        raise FileNotFoundError(f"base model {source!r} is neither a directory, a hub id (owner/name) nor one of "
                                f"the built-in models ({', '.join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)})")
    check_tokenizer(bundle)
    for module in (bundle.unet, bundle.text_encoder, bundle.vae):
        if module is not None:
            module.eval().requires_grad_(False)
    log.info("loaded base model %s (%.2f M UNet parameters, sample %s, %s)", bundle.source,
             sum(p.numel() for p in bundle.unet.parameters()) / 1e6, bundle.sample_shape,
             "latent + VAE" if bundle.vae is not None else "pixel space")
    return bundle
