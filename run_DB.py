#!/usr/bin/env python
"""Diffusion Blend: sample with blended noise predictions and baselines, score, tabulate.

    python run_DB.py                       # the built-in default
    python run_DB.py --help                # every flag, new and original
    python run_DB.py --list_rewards

See README.md for the paper's commands.
"""

import sys

from blend.cli import main

if __name__ == "__main__":
    if "--ui" in sys.argv[1:]:  # the live web page (blend/ui.py), with the same model flags
        from blend.ui import main as ui_main

        sys.exit(ui_main())
    sys.exit(main())
