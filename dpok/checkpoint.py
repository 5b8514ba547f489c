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

from dbcore.io import write_json_atomic

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


# The TrainConfig fields that do NOT change what is trained: where and how often things are written, how long
# the run is, what is shown, and execution choices that leave every number the same. Every other field (a new
# flag included) is a training setting: a resume with another value is refused unless --allow_changed_settings.
NOT_TRAINING_SETTINGS: dict[str, str] = {
    "output_dir": "where the run is written",
    "cache_dir": "where downloads are cached",
    "resume": "which checkpoint to continue",
    "overwrite_output_dir": "fresh starts only",
    "allow_changed_settings": "this guard's switch",
    "iterations": "run length",
    "max_train_steps": "run length (iterations = max_train_steps // p_step; --p_step is guarded)",
    "save_interval": "checkpoint frequency",
    "save_legacy_bin": "an extra file format of the same weights",
    "checkpoints_total_limit": "how many checkpoints are kept",
    "report_to": "trackers",
    "sample_grid_interval": "tracker images",
    "sample_grid_prompts": "tracker images",
    "logging_dir": "tracker directory",
    "log_interval": "log lines",
    "progress": "progress bar",
    "multi_gpu": "no effect (the launcher sets the processes; their number is checked separately)",
    "gradient_checkpointing": "memory only: the same gradients",
    "rollout_chunk": "memory only: the same noise and samples",
}
# Training settings that a checkpoint can never continue with another value: its tensors have their shape.
STRUCTURAL = ("lora_rank", "lora_alpha", "lora_targets", "num_inference_steps")
LORA_SHAPE = ("lora_rank", "lora_alpha", "lora_targets")


def training_settings(config_cls: type | None = None) -> tuple[str, ...]:
    """Every field of the config dataclass (default :class:`dpok.config.TrainConfig`) except
    :data:`NOT_TRAINING_SETTINGS`, in declaration order."""
    from dataclasses import fields

    if config_cls is None:
        from dpok.config import TrainConfig as config_cls
    return tuple(f.name for f in fields(config_cls) if f.name not in NOT_TRAINING_SETTINGS)


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


def _field_defaults(config_cls: type | None) -> dict[str, object]:
    from dataclasses import MISSING, fields

    if config_cls is None:
        from dpok.config import TrainConfig as config_cls
    out = {}
    for f in fields(config_cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def _normalise(key: str, value: object, config: dict, search: list[Path]) -> object:
    """The form in which two values of ``key`` are the same setting (``config``: the rest of that run's settings;
    ``search``: where that run's relative paths may be relative to)."""
    if key == "reward" and isinstance(value, str):
        from dpok.config import parse_reward_spec

        try:
            return parse_reward_spec(value)
        except ValueError:
            return value
    if key == "base_model" and isinstance(value, str):
        from diffusion.sources import canonical_base_model

        return canonical_base_model(value, search=search)
    if key == "prompt_path" and isinstance(value, str):
        from diffusion.sources import local_source

        local = local_source(value, search)
        return str(local) if local is not None else value
    if key == "lora_targets" and isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if key == "lora_alpha" and value is None:  # unset = the rank (scale 1)
        return float(config.get("lora_rank") or 0)
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def changed_settings(old: dict, new: dict, config_cls: type | None = None,
                     old_search: list[Path] | None = None) -> dict[str, dict]:
    """{setting: {"from": checkpoint's value, "to": this run's value}} over :func:`training_settings`.
    A setting the checkpoint's config lacks (a flag added since) counts with its default value; ``old_search``:
    directories the checkpoint's relative paths may be relative to (where its trainer ran)."""
    defaults = _field_defaults(config_cls)
    out = {}
    for key in training_settings(config_cls):
        was = old.get(key, defaults.get(key))
        now = new.get(key, defaults.get(key))
        if _normalise(key, was, old, old_search or []) != _normalise(key, now, new, []):
            out[key] = {"from": was, "to": now}
    return out


def describe_changes(changes: dict[str, dict]) -> str:
    return "; ".join(f"--{k} {v['from']!r} → {v['to']!r}" for k, v in changes.items())


def check_resume_settings(path: str | Path, changes: dict[str, dict], allow: bool) -> dict[str, dict]:
    """Raise ValueError for ``changes`` (from :func:`changed_settings`) unless ``allow``; changes of
    :data:`STRUCTURAL` settings always raise. → ``changes``."""
    if not changes:
        return changes
    text = describe_changes(changes)
    shape = [k for k in changes if k in STRUCTURAL]
    if shape:
        what = "the LoRA shape" if set(shape) <= set(LORA_SHAPE) else "settings that size its tensors"
        raise ValueError(f"--resume {path}: {what} changed ({text}); a checkpoint can only continue with its own "
                         f"--lora_rank/--lora_alpha/--lora_targets/--num_inference_steps (its LoRA, value function "
                         f"and replay buffer have their shape). Resume with the checkpoint's values, or use a new "
                         f"--output_dir to train another")
    if not allow:
        raise ValueError(f"--resume {path}: settings that change what is trained differ from the checkpoint's "
                         f"({text}). Resume with the checkpoint's values, use a new --output_dir, or pass "
                         f"--allow_changed_settings to continue with the new values (the manifest records the change)")
    return changes
