"""The project's one logger (``diffusion_blend``), to stderr and optionally to a file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

LOGGER_NAME = "diffusion_blend"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str | None = None) -> logging.Logger:
    """The project logger, or a child of it (``get_logger("blend")`` -> ``diffusion_blend.blend``)."""
    return logging.getLogger(LOGGER_NAME if not name else f"{LOGGER_NAME}.{name}")


def setup_logging(level: int | str = logging.INFO, log_file: str | os.PathLike | None = None) -> logging.Logger:
    root = get_logger()
    root.setLevel(level)
    if not any(getattr(h, "_db_console", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        handler._db_console = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    if log_file is not None:
        log_file = Path(log_file).resolve()
        if not any(getattr(h, "baseFilename", None) == str(log_file) for h in root.handlers):
            log_file.parent.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(log_file)
            fh.setFormatter(logging.Formatter(_FORMAT))
            root.addHandler(fh)
    root.propagate = False
    return root
