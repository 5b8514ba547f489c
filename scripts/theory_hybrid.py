#!/usr/bin/env python
"""Hybrid schedules in the theory lab: reward against UNet evaluations per sample (exact ε's, d = 2).

DB-MPA on a window of the trajectory, DB-MPA-LS elsewhere (``theory.hybrid``), in the square world of
the theory lab at several KL strengths α, all runs from the same noise. Prints one row per (α, window)
and, last, a JSON object of the rows.

    python scripts/theory_hybrid.py            # 4000 samples, 50 steps
    python scripts/theory_hybrid.py --smoke    # seconds
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from theory.experiments import LabConfig  # noqa: E402
from theory.hybrid import hybrid_sweep  # noqa: E402
from theory.mixture import square_world  # noqa: E402

WINDOWS = ((0.0, 0.0), (0.0, 1.0), (0.0, 0.5), (0.25, 0.75), (0.5, 1.0), (0.0, 0.3), (0.2, 0.5))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--alphas", default="1,0.5,0.25")
    p.add_argument("--separation", type=float, default=1.5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = LabConfig.smoke() if args.smoke else LabConfig()
    cfg = replace(cfg, n_projections=max(cfg.n_projections, 64))
    alphas = [float(a) for a in args.alphas.split(",")]
    rows = hybrid_sweep(cfg, square_world(args.separation, cfg.sigma), alphas, WINDOWS)
    print(f"\nsquare world s = {args.separation:g}, w = 0.5, {cfg.n_samples} samples, {cfg.steps} DDIM steps, η = {cfg.eta}"
          "\n\n| α | DB-MPA window | evals / base | weighted reward | gap to target | sliced W2 (floor) | kept |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        win = "none (LS)" if r["start"] == r["stop"] else f"[{r['start']:g}, {r['stop']:g})"
        print(f"| {r['alpha']:g} | {win} | {r['evals_per_step']:.2f} | {r['rw']:.3f} ± {r['rw_se']:.3f} | "
              f"{r['gap']:+.3f} | {r['sw2']:.3f} ({r['floor_sw2']:.3f}) | {r['kept']:.2f} |")
    if args.out:
        from dbcore.io import write_json_atomic

        write_json_atomic(args.out, rows)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
