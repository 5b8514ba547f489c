#!/usr/bin/env bash
# The two extra toy reward adapters of the m = 3 / m = 4 sweeps and the Table 5 analogue (scripts/paper_sweeps.py
# m34 / table5), trained with the toy MORL oracles' recipe (scripts/build_toy.sh): DRaFT-K through all 10 steps, guidance 2,
# lr 5e-3, KL weight 30, 40 iterations of 16 images, reward weight 1/σ. σ is the std of the reward over 128 toy base
# samples on the toy sampler, measured first by `python -m toy.stats` into toy/weights/adapters/extra_reward_stats.json
# (the sweeps divide the rewards by the same σ). ≈ 5 min per adapter on one free core.
#
#   bash scripts/train_extra_toy_adapters.sh [--work /tmp/extra_toy_adapters]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/extra_toy_adapters}
[[ ${1:-} == --work ]] && WORK=$2
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
STATS=toy/weights/adapters/extra_reward_stats.json
[[ -f $STATS ]] || $PY -m toy.stats --rewards colorfulness,brightness --other_steps "" --out "$STATS" >/dev/null
for name in colorfulness brightness; do
  dest=toy/weights/adapters/$name
  if [[ -f $dest/manifest.json ]]; then echo "$name: exists, skipped"; continue; fi
  weight=$($PY -c "import json; print(f'{1 / json.load(open(\"$STATS\"))[\"$name\"][\"std\"]:.6g}')")
  $PY train_online_pg.py --base_model toy/weights/base --algorithm draft --single_flag 0 \
    --prompt_path dataset/toy_train_prompts.json --reward "$name:$weight" --reward_norm none --reward_weight 1 \
    --kl_weight 30 --draft_k 10 --num_inference_steps 10 --guidance_scale 2 --eta 1 \
    --g_batch_size 16 --num_samples 1 --gradient_accumulation_steps 1 --p_step 1 --iterations 40 \
    --learning_rate 5e-3 --clip_norm 1 --lora_rank 8 --lora_alpha 8 --seed 0 --mixed_precision no \
    --gradient_checkpointing False --report_to none --save_interval 10 --checkpoints_total_limit 1 \
    --progress False --output_dir "$WORK/$name"
  mkdir -p "$dest"
  cp "$WORK/$name/checkpoint-40/pytorch_lora_weights.safetensors" "$WORK/$name/checkpoint-40/manifest.json" "$dest/"
  echo "$name -> $dest"
done
