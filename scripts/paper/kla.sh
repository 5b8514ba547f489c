#!/usr/bin/env bash
# Fig. 6: DB-KLA over λ against λ-specific models (adapter 0 retrained with the KL weight divided by λ).
#   bash scripts/paper/kla.sh                    # the toy world on a CPU (docs/results.md: --n_seeds 2)
#   WORLD=sd bash scripts/paper/kla.sh --lora t2i=ckpt/ir --lora vila=ckpt/vila --rewards image_reward,vila \
#       --kla_oracle 0.5=ckpt/ir_lam0.5 --kla_oracle 2=ckpt/ir_lam2 --launcher "accelerate launch"
# WORLD=sd needs --lora NAME=PATH per basis adapter, --rewards (same order) and --kla_oracle LAMBDA=PATH per λ.
# Any other scripts/paper_sweeps.py flag may follow (--n_seeds, --out, --report_only).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
require_flags kla.sh "$*" --lora --rewards --kla_oracle
exec "$PYTHON" "$ROOT/scripts/paper_sweeps.py" kla --world "$WORLD" "$@"
