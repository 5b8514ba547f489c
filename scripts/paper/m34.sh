#!/usr/bin/env bash
# Fig. 7 / Table 6: m = 3 and m = 4 rewards, uniform weights, Δr per reward against the base model.
#   bash scripts/paper/m34.sh                    # the toy world on a CPU (docs/results.md: --n_seeds 2)
#   WORLD=sd bash scripts/paper/m34.sh --lora a=ckpt/a --lora b=ckpt/b --lora c=ckpt/c --lora d=ckpt/d \
#       --rewards image_reward,vila,jpeg_compressibility,colorfulness --launcher "accelerate launch"
# WORLD=sd needs four --lora NAME=PATH (one per reward) and --rewards with the four rewards in the same order.
# Any other scripts/paper_sweeps.py flag may follow (--n_seeds, --out, --report_only).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
require_flags m34.sh "$*" --lora --rewards
exec "$PYTHON" "$ROOT/scripts/paper_sweeps.py" m34 --world "$WORLD" "$@"
