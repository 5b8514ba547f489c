"""The live web page as a Hugging Face Space runs it: ``python app.py``.

With no settings it serves the built-in toy world (CPU; ``blend.ui``). Settings come from the environment:

* ``DB_UI_ARGS``: the flags of ``python run_DB.py --ui`` (e.g. ``--steps 20 --front none``), split like a shell;
* ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``: the address (default 0.0.0.0:7860, what a Space expects).

See docs/web_ui.md.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping


def argv_from_env(env: Mapping[str, str] = os.environ) -> list[str]:
    """The page's flags: the address from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, then DB_UI_ARGS."""
    return ["--host", env.get("GRADIO_SERVER_NAME", "0.0.0.0"), "--port", env.get("GRADIO_SERVER_PORT", "7860"),
            *shlex.split(env.get("DB_UI_ARGS", ""))]


def build(env: Mapping[str, str] = os.environ):
    """The page and its parsed flags, as ``python app.py`` serves them; → (demo, args)."""
    from blend.ui import prepare

    return prepare(argv_from_env(env))


if __name__ == "__main__":
    from blend.ui import main

    sys.exit(main(argv_from_env()))
