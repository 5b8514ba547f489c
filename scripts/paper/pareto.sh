#!/usr/bin/env bash
# Figs. 2 / 5: Pareto fronts over a grid of w on [0, 1] (11 values; --pareto_grid N) and each method's hypervolume.
#   bash scripts/paper/pareto.sh                 # the toy world on a CPU (docs/results.md: --n_seeds 2)
#   WORLD=sd bash scripts/paper/pareto.sh --lora t2i=ckpt/ir --lora vila=ckpt/vila --rewards image_reward,vila \
#       --launcher "accelerate launch"
# WORLD=sd needs --lora NAME=PATH per basis adapter and --rewards (one per adapter, same order).
# Any other scripts/paper_sweeps.py flag may follow (--n_seeds, --out, --report_only, --pareto_grid).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
require_flags pareto.sh "$*" --lora --rewards
exec "$PYTHON" "$ROOT/scripts/paper_sweeps.py" pareto --world "$WORLD" "$@"
