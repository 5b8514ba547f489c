"""A base model's identity: the name two spellings of the same model share (no torch; cheap to import).

``diffusion.loading.load_bundle`` reads a ``source`` as, in this order: ``builtin:NAME``; a local directory
(``~`` expanded, relative paths from the current directory); a hub id, where a deleted id is read as its
maintained copy (:data:`HUB_ALIASES`). :func:`canonical_base_model` maps a source to the same thing in one
spelling: the resolved absolute path of a local directory, the maintained hub id of an alias, ``builtin:NAME``
as is. The trainer records it in its manifest, and the base-model checks (``run_DB.py``, ``--resume``)
compare these forms.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

BUILTIN_PREFIX = "builtin:"
# the built-in models (``diffusion.builtin`` loads them); here, without torch, for `run_DB.py --help`
BUILTIN_DESCRIPTIONS = {
    "tiny": "random tiny Stable-Diffusion weights, for code paths; with no adapter, two random demo LoRAs",
    "tiny-xl": "random tiny SDXL weights, for code paths",
    "tiny-sd3": "random tiny SD3 weights, for code paths",
    "toy": "the toy world's trained 32x32 model in toy/weights/base, see docs/toy_world.md",
}
BUILTIN_MODELS = tuple(BUILTIN_DESCRIPTIONS)
TOY_BASE_DIR = Path(__file__).resolve().parent.parent / "toy" / "weights" / "base"  # builtin:toy's weights
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
HUB_ALIASES = {"runwayml/stable-diffusion-v1-5": SD15}  # deleted id -> the maintained copy


def local_source(source: str, search: Sequence[str | os.PathLike] = ()) -> Path | None:
    """The existing local path ``source`` names (from the current directory, as the loader reads it; a relative
    path is then tried under each of ``search``), resolved; None when it names none."""
    if source.startswith(BUILTIN_PREFIX) or not source:
        return None
    path = Path(source).expanduser()
    candidates = [path] + ([Path(base) / path for base in search] if not path.is_absolute() else [])
    for cand in candidates:
        if cand.exists():
            return cand.resolve()
    return None


def canonical_base_model(source: str, search: Sequence[str | os.PathLike] = ()) -> str:
    """One spelling per base model: ``builtin:NAME`` as is; a local directory → its resolved absolute path
    (``search``: more directories a relative path may be relative to, for manifests written elsewhere); a deleted
    hub id → its maintained copy; any other hub id as is."""
    if source.startswith(BUILTIN_PREFIX):
        return source
    local = local_source(source, search)
    if local is not None:
        return str(local)
    return HUB_ALIASES.get(source, source)


def training_cwd(checkpoint_dir: str | os.PathLike, output_dir: str | None) -> Path | None:
    """The directory a trainer ran in, from where its checkpoint lies and the ``--output_dir`` it was given:
    ``<cwd>/<output_dir>/checkpoint-<N>``. None when ``output_dir`` is absolute or does not match the path."""
    if not output_dir or Path(output_dir).expanduser().is_absolute():
        return None
    parts = Path(os.path.normpath(output_dir)).parts
    if ".." in parts:
        return None
    run = Path(checkpoint_dir).resolve().parent
    if not parts:  # --output_dir .
        return run
    if run.parts[-len(parts):] != parts:
        return None
    return Path(*run.parts[:-len(parts)])


UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


def base_unet_sha256(source: str, search: Sequence[str | os.PathLike] = ()) -> str | None:
    """The SHA-256 of a base model's UNet weights as the base's own ``manifest.json`` records it (the toy bases
    write one, ``toy.train_base``), for ``builtin:toy`` or a local directory; None where there is no such record
    (hub ids, most local directories). Two bases at one path with different weights differ here."""
    d = TOY_BASE_DIR if source == f"{BUILTIN_PREFIX}toy" else local_source(source, search)
    if d is None or not (d / "manifest.json").is_file():
        return None
    try:
        files = json.loads((d / "manifest.json").read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return files.get(UNET_WEIGHTS) if isinstance(files, dict) else None
