#!/usr/bin/env python
"""One sweep per experiment of the paper (Table 1, Table 5, m = 3/4, DB-KLA, Pareto fronts); the logic is in
blend/sweeps.py (``python scripts/paper_sweeps.py --help``), the paper's settings per table in scripts/paper/*.sh."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blend.sweeps import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
