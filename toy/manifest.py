"""Manifests for the toy's committed weights: what produced them, and the sha256 of every file."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

MANIFEST = "manifest.json"


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hashes(directory: str | Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` except the manifest, by relative POSIX path."""
    directory = Path(directory)
    return {p.relative_to(directory).as_posix(): sha256(p) for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def versions() -> dict[str, str]:
    import diffusers
    import torch
    import transformers

    out = {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
           "transformers": transformers.__version__}
    try:
        import peft

        out["peft"] = peft.__version__
    except ImportError:
        pass
    return out


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_manifest(directory: str | Path, info: dict) -> Path:
    """Write ``directory/manifest.json``: ``info`` plus versions, git commit and file hashes."""
    directory = Path(directory)
    data = dict(info)
    data.setdefault("versions", versions())
    data.setdefault("git_commit", git_commit())
    data["files"] = file_hashes(directory)
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, directory / MANIFEST)
    return directory / MANIFEST


def check_manifest(directory: str | Path) -> list[str]:
    """Problems with ``directory`` against its manifest (empty list = files match their hashes)."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        return [f"{path} is missing"]
    recorded = json.loads(path.read_text()).get("files", {})
    actual = file_hashes(directory)
    problems = [f"{directory / k}: missing" for k in recorded if k not in actual]
    problems += [f"{directory / k}: not in the manifest" for k in actual if k not in recorded]
    problems += [f"{directory / k}: sha256 differs from the manifest" for k in recorded
                 if k in actual and actual[k] != recorded[k]]
    return problems
