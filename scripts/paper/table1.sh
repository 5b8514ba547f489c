#!/usr/bin/env bash
# Table 1: two rewards, w = 0.2 / 0.5 / 0.8, every method at DB-MPA's cost, with seconds and costs per image.
#   bash scripts/paper/table1.sh                 # the toy world on a CPU (docs/results.md: --n_seeds 2)
#   WORLD=sd bash scripts/paper/table1.sh --lora t2i=ckpt/ir --lora vila=ckpt/vila --rewards image_reward,vila \
#       --oracle 0.5,0.5=ckpt/oracle_w0.5 --launcher "accelerate launch" --extra "--guidance_surrogate vila=aesthetic"
# WORLD=sd needs --lora NAME=PATH per basis adapter and --rewards (one per adapter, same order); --oracle W=PATH adds
# the MORL oracle. SD settings (blend/sweeps.py sd_world): 50 steps, guidance 7.5, db:short_drawbench_1k, 1 seed.
# Any other scripts/paper_sweeps.py flag may follow (--n_seeds, --out, --report_only).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
require_flags table1.sh "$*" --lora --rewards
exec "$PYTHON" "$ROOT/scripts/paper_sweeps.py" table1 --world "$WORLD" "$@"
