"""The results store of a ``run_DB.py`` output directory: keyed, append-only rows; ``results.jsonl`` is an export.

Every row is keyed by everything that determines its numbers:

* its **sample key** (the image): base model, method, adapters by name and content hash, weights, λ, prompt
  text, seed and the sampler settings (steps, guidance, η, batched, dtype);
* its **row key**: the sample key plus, for each score, the reward name and its options, and the reward
  scales of the weighted reward.

Each writing process appends its rows to its own file ``parts/rows.<host>.<pid>.<random>.jsonl`` (one
fsync'd write per unit). Part files are never rewritten or deleted, so any set of commands into one
directory (subsets, supersets, new weights, rewards or seeds, in any order, concurrently or from several
processes or hosts) keeps every row of every command. A line that is not a JSON row (a torn write, a corrupted
disk block) is never dropped silently: it is copied to ``results.corrupt.jsonl`` with a warning naming the file
and line (:func:`dbcore.io.read_jsonl`). ``results.jsonl`` is rebuilt from all parts under a lock
(:func:`dbcore.io.file_lock`, an OS-level lock that ends with its holder) and written atomically; it
holds every row of the directory, rows of earlier code (without keys) included. Non-finite numbers are stored as ``null`` with a
``nonfinite`` entry naming them, so every file stays strict JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
from pathlib import Path
from typing import Any

from dbcore.io import append_jsonl, atomic_path, file_lock, read_jsonl

RESULTS = "results.jsonl"
PARTS_DIR = "parts"
LOCK = ".results.lock"
CORRUPT = "results.corrupt.jsonl"  # unparsable lines of results.jsonl and the parts, kept aside


def digest(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no whitespace); ``obj`` must be finite."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def finite_or_none(value: float) -> tuple[float | None, str | None]:
    """(value, None) for a finite float; (None, "nan" | "inf" | "-inf") otherwise."""
    value = float(value)
    if math.isfinite(value):
        return value, None
    return None, "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def reward_key(name: str, options: dict[str, Any]) -> str:
    """How one score is identified: the reward's name and its loader options."""
    return digest({"reward": name, "options": options})


class ResultStore:
    """The rows of one output directory (see the module docstring)."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out_dir = Path(out_dir)
        tag = f"{socket.gethostname()}.{os.getpid()}.{os.urandom(4).hex()}"
        self.part = self.out_dir / PARTS_DIR / f"rows.{tag}.jsonl"

    def part_files(self) -> list[Path]:
        return sorted((self.out_dir / PARTS_DIR).glob("*.jsonl"))

    def load(self) -> tuple[dict[str, dict], list[dict]]:
        """({row_key: row} of every keyed row, [rows of earlier code without a key]).

        ``results.jsonl`` is read too, so rows survive even if a part file is removed by hand.
        """
        keyed: dict[str, dict] = {}
        legacy: list[dict] = []
        seen_legacy: set[str] = set()
        for path in [self.out_dir / RESULTS, *self.part_files()]:
            for row in read_jsonl(path, corrupt_to=self.out_dir / CORRUPT):
                if "row_key" in row:
                    keyed.setdefault(row["row_key"], row)
                else:
                    ident = json.dumps([row.get("config"), row.get("prompt_index"), row.get("seed")])
                    if ident not in seen_legacy:
                        seen_legacy.add(ident)
                        legacy.append(row)
        return keyed, legacy

    def append(self, rows: list[dict]) -> None:
        """Append rows to this process's own part file (strict JSON: non-finite values must be None)."""
        append_jsonl(self.part, rows, strict=True)

    def export(self) -> int:
        """Rewrite ``results.jsonl`` from every stored row (under the lock, atomically). Returns the row count."""
        with file_lock(self.out_dir / LOCK):
            keyed, legacy = self.load()
            rows = sorted(keyed.values(), key=lambda r: (r["config"], r["prompt"], r["seed"], r["row_key"]))
            with atomic_path(self.out_dir / RESULTS) as tmp:
                tmp.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in [*legacy, *rows]))
        return len(rows) + len(legacy)
