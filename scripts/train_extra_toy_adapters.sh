#!/usr/bin/env bash
# The two extra toy reward adapters of the m = 3 / m = 4 sweeps (scripts/paper_sweeps.py m34), trained with the
# project's trainer and the same DRaFT recipe as the toy's other adapters (scripts/build_toy.sh): 40 iterations,
# KL weight 30, reward weight 1/σ with σ the std of the reward over 32 toy base samples (training prompts, 10 steps,
# guidance 5): colourfulness σ = 0.0954, brightness σ = 0.0513. ≈ 11 min each on one loaded CPU core.
#
#   bash scripts/train_extra_toy_adapters.sh [--work /tmp/extra_adapters]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/extra_toy_adapters}
[[ ${1:-} == --work ]] && WORK=$2
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for spec in colorfulness:10.4785 brightness:19.4925; do
  name=${spec%%:*}
  dest=toy/weights/adapters/$name
  if [[ -f $dest/manifest.json ]]; then echo "$name: exists, skipped"; continue; fi
  $PY train_online_pg.py --base_model toy/weights/base --algorithm draft --single_flag 0 \
    --prompt_path dataset/toy_train_prompts.json --reward "$spec" --reward_norm none --reward_weight 1 \
    --kl_weight 30 --draft_k 2 --num_inference_steps 10 --guidance_scale 5 --eta 1 \
    --g_batch_size 16 --num_samples 1 --gradient_accumulation_steps 1 --p_step 1 --iterations 40 \
    --learning_rate 2e-3 --clip_norm 1 --lora_rank 8 --lora_alpha 8 --seed 0 --mixed_precision no \
    --gradient_checkpointing False --report_to none --save_interval 10 --checkpoints_total_limit 1 \
    --progress False --output_dir "$WORK/$name"
  mkdir -p "$dest"
  cp "$WORK/$name/checkpoint-40/pytorch_lora_weights.safetensors" "$WORK/$name/checkpoint-40/manifest.json" "$dest/"
  echo "$name -> $dest"
done
