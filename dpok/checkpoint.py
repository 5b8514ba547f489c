"""Atomic checkpoint directories: ``<output_dir>/checkpoint-<iteration>/``.

A checkpoint is written into ``.tmp-checkpoint-<iteration>/`` and renamed into place only once every
file, and last the ``COMPLETE`` marker, is on disk. Only directories with the marker count, so a
crash can never leave a half-written checkpoint that is taken as the latest.

Contents:

* ``pytorch_lora_weights.safetensors``: the LoRA in diffusers format (``run_DB.py --lora NAME=DIR``
  and ``diffusion.lora.load_adapter`` read it); optionally DPOK's legacy ``pytorch_lora_weights.bin``;
* ``manifest.json``: what the adapter is (base model, rewards, weights, LoRA config, iteration,
  samples seen, versions, git commit, the resolved config);
* ``training_state.pt`` (and ``training_state_rank<r>.pt`` for the other processes): optimizer,
  scheduler, value net and its optimizer, replay buffer, RNG states, counters — what ``--resume``
  needs to continue exactly.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch

from diffusion_blend.io import write_json_atomic

COMPLETE = "COMPLETE"
MANIFEST = "manifest.json"
PREFIX = "checkpoint-"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def state_file(rank: int) -> str:
    return "training_state.pt" if rank == 0 else f"training_state_rank{rank}.pt"


def checkpoint_dir(output_dir: str | Path, iteration: int) -> Path:
    return Path(output_dir) / f"{PREFIX}{iteration}"


def tmp_dir(output_dir: str | Path, iteration: int) -> Path:
    return Path(output_dir) / f".tmp-{PREFIX}{iteration}"


def is_complete(path: str | Path) -> bool:
    return (Path(path) / COMPLETE).is_file()


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    out = []
    root = Path(output_dir)
    if not root.is_dir():
        return out
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and is_complete(p):
            out.append((int(m[1]), p))
    return sorted(out)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def resolve_resume(resume: str, output_dir: str | Path) -> Path:
    """``latest`` → the newest complete checkpoint of ``output_dir``; a path → that checkpoint (checked)."""
    if resume == "latest":
        path = latest_checkpoint(output_dir)
        if path is None:
            raise FileNotFoundError(f"--resume latest: no complete checkpoint-<N>/ in {output_dir}; start without "
                                    f"--resume, or pass the checkpoint directory")
        return path
    path = Path(resume).expanduser()
    if not path.is_dir() or not is_complete(path):
        raise FileNotFoundError(f"--resume {resume}: not a complete checkpoint directory (it needs a {COMPLETE} "
                                f"marker); pass --resume latest or a checkpoint-<N>/ written by this trainer")
    return path


def begin(output_dir: str | Path, iteration: int) -> Path:
    """Create an empty temporary directory for the checkpoint (main process only)."""
    tmp = tmp_dir(output_dir, iteration)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def save_rank_state(tmp: Path, rank: int, state: dict) -> None:
    path = tmp / state_file(rank)
    part = path.with_suffix(".part")
    torch.save(state, part)
    os.replace(part, path)


def finish(output_dir: str | Path, iteration: int, manifest: dict, keep_last: int | None = None) -> Path:
    """Write the manifest and the marker, then rename the temporary directory into place (main process)."""
    tmp = tmp_dir(output_dir, iteration)
    write_json_atomic(tmp / MANIFEST, manifest)
    (tmp / COMPLETE).write_text(f"{iteration}\n")
    with open(tmp / COMPLETE) as fh:
        os.fsync(fh.fileno())
    final = checkpoint_dir(output_dir, iteration)
    if final.exists():  # an older run's checkpoint of the same number: replace it
        old = final.with_name(final.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    if keep_last:
        for _, p in list_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(p, ignore_errors=True)
    return final


def load_rank_state(path: str | Path, rank: int) -> dict:
    f = Path(path) / state_file(rank)
    if not f.is_file():
        raise FileNotFoundError(f"{f} is missing: the checkpoint was written by a run with fewer processes; "
                                f"resume with the same number of processes")
    return torch.load(f, map_location="cpu", weights_only=False)


# Settings that change what is trained: a resume with other values continues a different run.
TRAINING_SETTINGS = ("base_model", "algorithm", "reward", "reward_weight", "kl_weight", "lora_rank", "lora_alpha",
                     "lora_targets", "learning_rate")
LORA_SHAPE = ("lora_rank", "lora_alpha", "lora_targets")


def check_fresh_start(output_dir: str | Path, overwrite: bool) -> list[Path]:
    """Refuse a fresh (not ``--resume``) run into a directory that holds checkpoints, unless ``overwrite``;
    returns the checkpoint directories (complete or not) that an overwrite must remove."""
    root = Path(output_dir)
    found = sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir()) if root.is_dir() else []
    found += sorted(p for p in root.glob(f".tmp-{PREFIX}*") if p.is_dir()) if root.is_dir() else []
    if found and not overwrite:
        names = ", ".join(p.name for p in found[:3]) + (" …" if len(found) > 3 else "")
        raise FileExistsError(f"--output_dir {root} already holds checkpoints ({names}) of another run; a fresh "
                              f"run would overwrite them. Continue it with --resume latest, pick another "
                              f"--output_dir, or pass --overwrite_output_dir to delete them and start over")
    return found


def _normalise(key: str, value: object) -> object:
    if key == "reward" and isinstance(value, str):
        from dpok.config import parse_reward_spec

        return parse_reward_spec(value)
    if key == "base_model" and isinstance(value, str) and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    if key == "lora_targets" and isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    return value


def changed_settings(old: dict, new: dict) -> dict[str, dict]:
    """{setting: {"from": checkpoint's value, "to": this run's value}} over :data:`TRAINING_SETTINGS`."""
    out = {}
    for key in TRAINING_SETTINGS:
        if key in old and _normalise(key, old[key]) != _normalise(key, new.get(key)):
            out[key] = {"from": old[key], "to": new.get(key)}
    return out


def check_resume_settings(path: str | Path, old: dict, new: dict, allow: bool) -> dict[str, dict]:
    """The settings this resume changes; raises ValueError unless ``allow`` (LoRA shape changes always raise)."""
    changes = changed_settings(old, new)
    if not changes:
        return changes
    text = "; ".join(f"--{k} {v['from']!r} → {v['to']!r}" for k, v in changes.items())
    shape = [k for k in changes if k in LORA_SHAPE]
    if shape:
        raise ValueError(f"--resume {path}: the LoRA shape changed ({text}); a checkpoint can only continue with "
                         f"its own --lora_rank/--lora_alpha/--lora_targets. Use a new --output_dir to train another")
    if not allow:
        raise ValueError(f"--resume {path}: settings that change what is trained differ from the checkpoint's "
                         f"({text}). Resume with the checkpoint's values, use a new --output_dir, or pass "
                         f"--allow_changed_settings to continue with the new values (the manifest records the change)")
    return changes
