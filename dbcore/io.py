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

    A crash can at worst leave a truncated last line, which :func:`read_jsonl` keeps aside.
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


def read_jsonl(path: str | os.PathLike, corrupt_to: str | os.PathLike | None = None) -> list[dict]:
    """The rows (JSON objects) of a JSON-lines file (a byte-order mark is ignored).

    A line that is not a JSON object is never dropped silently: it is copied to ``corrupt_to`` (default
    ``<name>.corrupt.jsonl`` next to the file; once per file and line) as ``{"file", "line", "text"}`` and a
    warning names the file and the line numbers. A last line without its newline is an interrupted (or
    in-progress) append: kept aside the same way, with a milder message.
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    rows, bad = [], []
    lines = raw.decode("utf-8-sig", errors="replace").split("\n")
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append((i, line))
    if bad:
        _keep_aside(path, bad, torn=raw and not raw.endswith(b"\n") and bad[-1][0] == len(lines),
                    corrupt_to=Path(corrupt_to) if corrupt_to else path.with_name(path.stem + ".corrupt.jsonl"))
    return rows


def _keep_aside(path: Path, bad: list[tuple[int, str]], torn: bool, corrupt_to: Path) -> None:
    """Append the unparsable lines ``bad`` [(line number, text)] of ``path`` to ``corrupt_to`` (each once)."""
    from dbcore.logging import get_logger

    seen = set()
    if corrupt_to.exists():
        for line in corrupt_to.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                rec = json.loads(line)
                seen.add((rec["file"], rec["line"], rec["text"]))
    new = [{"file": str(path), "line": i, "text": text} for i, text in bad if (str(path), i, text) not in seen]
    if new:
        append_jsonl(corrupt_to, new)
    if not new:  # reported when they were kept aside
        return
    numbers = ", ".join(str(i) for i, _ in bad[:20]) + (", …" if len(bad) > 20 else "")
    middle = len(bad) - (1 if torn else 0)
    logger = get_logger("io")
    if middle:
        logger.warning("%s: %d corrupt line(s) (line %s) are not JSON rows; they are left out and kept in %s",
                       path, len(bad), numbers, corrupt_to)
    else:
        logger.info("%s: its last line %d is unfinished (an interrupted or in-progress write); left out and kept "
                    "in %s", path, bad[-1][0], corrupt_to)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class LockTimeout(TimeoutError):
    pass


def _holder_text(holder: Path) -> str:
    try:
        info = json.loads(holder.read_text())
        return f"pid {info['pid']} on {info['host']} since {time.strftime('%H:%M:%S', time.localtime(info['time']))}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that did not say which"


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float = 300.0, poll: float = 0.05,
              log_every: float = 30.0) -> Iterator[Path]:
    """Hold the exclusive lock ``path`` for the block (across processes).

    An OS-level lock (``filelock``: ``flock`` on POSIX) on the file ``path``: the kernel drops it when the holder's
    process ends, however it ends (kill -9, a full disk), so a lock is never stale and what the file holds does not
    matter (an empty or half-written file left by the earlier hand-written lock does not block). The holder writes
    who it is to ``path.holder``; a waiter logs it every ``log_every`` s and raises :class:`LockTimeout` naming it
    after ``timeout`` s. On a filesystem without ``flock`` filelock falls back to an exclusive-create lock file.
    """
    from filelock import FileLock, Timeout

    from dbcore.logging import get_logger

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = path.with_name(path.name + ".holder")
    lock = FileLock(str(path), is_singleton=False, thread_local=False)
    start = time.monotonic()
    next_log = 0.0
    while True:
        waited = time.monotonic() - start
        try:
            lock.acquire(timeout=min(max(timeout - waited, 0.0), log_every), poll_interval=poll)
            break
        except Timeout:
            waited = time.monotonic() - start
            if waited >= timeout:
                raise LockTimeout(f"could not take the lock {path} within {timeout:g} s: it is held by "
                                  f"{_holder_text(holder)} (a running command on this directory; the lock is "
                                  f"released when it ends); wait for it, or stop it") from None
            if waited >= next_log:
                get_logger("io").warning("waiting for the lock %s, held by %s (%.0f s of %g s)", path,
                                         _holder_text(holder), waited, timeout)
                next_log = waited + log_every
    token = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
                        "id": os.urandom(8).hex()})
    with contextlib.suppress(OSError):  # who holds it, for waiters' messages only
        write_text_atomic(holder, token)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if holder.read_text() == token:
                holder.unlink()
        lock.release()
