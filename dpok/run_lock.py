"""One trainer per ``--output_dir``: an exclusive lock on ``<output_dir>/.trainer.lock`` for the whole run.

The lock is an OS-level ``flock`` (the ``filelock`` package), so the kernel releases it when its holder exits in
any way, ``kill -9`` included: a stale lock never blocks a later run. The holder's PID, host and start time go to
``.trainer.lock.holder`` next to it, for the message the second trainer prints.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from dbcore.io import write_json_atomic

LOCK_NAME = ".trainer.lock"
HOLDER_NAME = ".trainer.lock.holder"


class OutputDirInUse(RuntimeError):
    """Another process holds the output directory's lock."""


class OutputDirLock:
    """``acquire()`` takes the lock of ``output_dir`` at once or raises :class:`OutputDirInUse`; ``release()``
    gives it back (also safe when not held)."""

    def __init__(self, output_dir: str | os.PathLike) -> None:
        self.root = Path(output_dir)
        self.path = self.root / LOCK_NAME
        self._lock: FileLock | None = None

    @property
    def held(self) -> bool:
        return self._lock is not None and self._lock.is_locked

    def holder(self) -> dict:
        """What the holder recorded ({} when nothing readable)."""
        try:
            return json.loads((self.root / HOLDER_NAME).read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            who = self.holder()
            desc = (f"PID {who.get('pid')} on {who.get('host')}, started {who.get('started')}"
                    if who.get("pid") else "its PID was not recorded")
            raise OutputDirInUse(f"--output_dir {self.root} is in use: another trainer ({desc}) holds its lock "
                                 f"{self.path}; wait for that run to end, or pass another --output_dir") from None
        self._lock = lock
        write_json_atomic(self.root / HOLDER_NAME, {"pid": os.getpid(), "host": socket.gethostname(),
                                                   "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    def release(self) -> None:
        if not self.held:
            return
        try:
            if self.holder().get("pid") == os.getpid():
                (self.root / HOLDER_NAME).unlink(missing_ok=True)
        finally:
            self._lock.release(force=True)
            self._lock = None
