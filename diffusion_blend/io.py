"""Atomic writes: a reader never sees a half-written file, a crash never leaves one behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _create_temp(path: Path) -> Path:
    """An empty new file next to ``path``, created with mode 0o666 so that the umask applies (as for any file the
    user creates; ``tempfile.mkstemp`` would make it 0o600)."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The file gets the permissions the user's umask gives a new file (0o666 & ~umask), also when the block's writer
    replaced the temporary file by one of its own (the safetensors writer creates 0o600 files).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temp(path)
    mode = stat.S_IMODE(tmp_path.stat().st_mode)
    try:
        yield tmp_path
        if stat.S_IMODE(tmp_path.stat().st_mode) != mode:
            os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def append_jsonl(path: str | os.PathLike, rows: list[dict], strict: bool = False) -> None:
    """Append rows to a JSON-lines file with one write + fsync (``strict``: refuse NaN/inf, keeping strict JSON).

    A crash can at worst leave a truncated last line, which :func:`read_jsonl` drops.
    """
    if not rows:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, default=str, allow_nan=not strict) + "\n" for r in rows)
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":  # a torn line from a crash: start on a fresh line
                payload = "\n" + payload
    with open(path, "a") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a JSON-lines file; a truncated final line (interrupted append) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class LockTimeout(TimeoutError):
    pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _lock_is_stale(path: Path, stale_after: float) -> bool:
    """A lock is stale when its holder is a dead process on this host, or (any host) it is older than
    ``stale_after`` seconds: holders keep a lock for seconds, so an old one belongs to a process that died."""
    try:
        info = json.loads(path.read_text() or "{}")
        age = time.time() - path.stat().st_mtime
    except (OSError, ValueError):
        return False  # just released, or being written: look again
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        return not _pid_alive(info["pid"])
    return age > stale_after


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float = 600.0, stale_after: float = 600.0,
              poll: float = 0.05) -> Iterator[Path]:
    """Hold the exclusive lock ``path`` for the block (across processes and hosts).

    The lock is a file created with ``O_CREAT | O_EXCL`` (atomic on local and NFS filesystems) holding the
    owner's host and pid. A lock left by a dead process (same host: the pid is gone; other host: older than
    ``stale_after`` s) is broken, so it never blocks forever. Raises :class:`LockTimeout` after ``timeout`` s.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
                        "id": os.urandom(8).hex()})
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _lock_is_stale(path, stale_after):
                # move it aside first, so that two processes breaking the same stale lock cannot both win
                aside = path.with_name(f"{path.name}.stale.{os.getpid()}.{os.urandom(4).hex()}")
                with contextlib.suppress(OSError):
                    os.replace(path, aside)
                    if _lock_is_stale(aside, stale_after):
                        aside.unlink()
                    elif not path.exists():  # a live holder took the lock meanwhile: give it back
                        os.replace(aside, path)
                continue
            if time.monotonic() > deadline:
                raise LockTimeout(f"could not take the lock {path} within {timeout:g} s (held by "
                                  f"{path.read_text() if path.exists() else '?'}); if no run is using this "
                                  f"directory, delete {path}") from None
            time.sleep(poll)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
            fh.flush()
            os.fsync(fh.fileno())
        break
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if path.read_text() == token:
                path.unlink()
