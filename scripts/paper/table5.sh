#!/usr/bin/env bash
# Table 5: JPEG compressibility against a second reward (w = the weight on compressibility), every method.
#   bash scripts/paper/table5.sh                 # the toy world on a CPU (docs/results.md: --n_seeds 2)
#   WORLD=sd bash scripts/paper/table5.sh --lora jpeg=ckpt/jpeg --lora t2i=ckpt/ir \
#       --rewards jpeg_compressibility,image_reward --launcher "accelerate launch"
# WORLD=sd needs --lora NAME=PATH per basis adapter and --rewards (one per adapter, same order, one of them
# jpeg_compressibility). Any other scripts/paper_sweeps.py flag may follow (--n_seeds, --out, --report_only).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
require_flags table5.sh "$*" --lora --rewards
exec "$PYTHON" "$ROOT/scripts/paper_sweeps.py" table5 --world "$WORLD" "$@"
