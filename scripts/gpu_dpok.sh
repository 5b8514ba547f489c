#!/usr/bin/env bash
# DPOK on a GPU, for the day one is available (not run yet: no GPU in the session that wrote it; its
# parts were run on the CPU at tiny size with GPU_DPOK_SMOKE=1).
#
#   bash scripts/gpu_dpok.sh [sd|jpeg|align|oracle|all]     (default: all; results under $OUT)
#
#   sd      one DPOK iteration of a Stable-Diffusion-v1.5-sized model with random weights, fp16, DPOK's
#           settings: time per part and peak GPU memory  → $OUT/sd_iteration.json
#   jpeg    toy DPOK on the true black-box jpeg_compressibility, at the paper's sample count
#   align   toy DPOK on toy_alignment
#   oracle  toy DPOK on the w = 0.5 MORL reward (0.5·alignment/σ + 0.5·jpeg/σ, σ from reward_stats.json)
#           (each toy run: --max_samples $SAMPLES, capped at $MINUTES minutes of training; curve.jsonl,
#            summary.json and the adapter in $OUT/toy_<name>/)
#
# The paper's sample count: DPOK's command (docs/method.md §4) runs 100000 // 5 = 20000 iterations of 6 prompts
# per GPU, 120 k samples. Budget (estimated, not measured): the toy UNet (1.4 M parameters, 32×32) does a
# 256-image rollout in well under a second on an H200, so 120 k samples take about 5 minutes per run.
# GPU_DPOK_SMOKE=1 runs everything at tiny size on the CPU in a few minutes (the code-path check).
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-all}
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python
OUT=${OUT:-outputs/gpu_dpok}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
SAMPLES=${SAMPLES:-120000}
MINUTES=${MINUTES:-9}
THREADS=${THREADS:-8}
# the toy recipe that learned JPEG size (dpok/README.md, run B2), scaled to GPU batches: 64 prompts × 4 samples
RECIPE=(--g_batch_size 64 --num_samples 4 --advantage_norm prompt_running --stat_min_count 4 --policy_epochs 1
        --ratio_clip 0.2 --train_min_std 0.05 --v_flag 0 --learning_rate 5e-3 --lr_scheduler linear --reward_weight 100
        --kl_weight 15
        --clip_norm 1 --p_batch_size 128 --gradient_accumulation_steps 2 --save_interval 100)
EVAL=(--eval_every 25 --eval_seeds 8 --final_seeds 16)
SD=()
if [[ ${GPU_DPOK_SMOKE:-0} == 1 ]]; then
  SAMPLES=64 MINUTES=2 THREADS=1
  RECIPE=(--g_batch_size 4 --num_samples 4 --advantage_norm prompt_running --stat_min_count 4 --policy_epochs 1
          --ratio_clip 0.2 --train_min_std 0.05 --v_flag 0 --learning_rate 5e-3 --lr_scheduler linear --reward_weight 100
          --kl_weight 15
          --clip_norm 1 --p_batch_size 16 --gradient_accumulation_steps 2)
  EVAL=(--eval_every 2 --eval_seeds 1 --final_seeds 1)
  SD=(--tiny)
fi
stamp() { echo "[gpu_dpok $(date -u +%H:%M:%S)] $*"; }
$PY -c "import torch; print('cuda:', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

toy() {  # toy NAME REWARD
  stamp "toy $1: reward $2, $SAMPLES samples, at most $MINUTES min"
  $PY scripts/dpok_toy.py --out "$OUT/toy_$1" --max_samples "$SAMPLES" --minutes "$MINUTES" --threads "$THREADS" \
    "${EVAL[@]}" -- --reward "$2" "${RECIPE[@]}" 2>&1 | tr "\r" "\n" | grep -v "^$" > "$OUT/toy_$1.log"
  tail -n 1 "$OUT/toy_$1.log"
}
SA=$($PY -c "import json;print(json.load(open('toy/weights/reward_stats.json'))['toy_alignment']['std'])")
SJ=$($PY -c "import json;print(json.load(open('toy/weights/reward_stats.json'))['jpeg_compressibility']['std'])")

case $WHAT in sd|all)
  stamp "SD-v1.5-sized DPOK iteration"
  $PY scripts/gpu_dpok.py sd_iteration "${SD[@]}" --json "$OUT/sd_iteration.json" 2>&1 | grep -v "^Loading" ;; esac
case $WHAT in jpeg|all) toy jpeg jpeg_compressibility ;; esac
case $WHAT in align|all) toy align toy_alignment ;; esac
case $WHAT in oracle|all)
  toy oracle_w0.5 "toy_alignment:$($PY -c "print(f'{0.5/$SA:.6g}')"),jpeg_compressibility:$($PY -c "print(f'{0.5/$SJ:.6g}')")" ;;
esac
stamp "done; results in $OUT"
