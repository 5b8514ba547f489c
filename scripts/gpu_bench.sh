#!/usr/bin/env bash
# The GPU benchmark, ready for the day a GPU is lent (under 10 minutes on one GPU):
#   SD-v1.5-sized UNet (real configuration, random weights) at 512² (latent 64) in fp16:
#   base vs DB-MPA m = 2, 3, 4 looped and batched, DB-MPA-LS, DB-KLA, the ΔW soup, the hybrid,
#   with the CUDA allocator's peak memory per configuration; then one DPOK iteration by phase
#   (fp16 autocast) and its peak memory against the two-UNet layout.
#
#   bash scripts/gpu_bench.sh                                   # on a GPU machine
#   GPU_BENCH_DEVICE=cpu GPU_BENCH_MODEL=tiny bash scripts/gpu_bench.sh   # the same code path at tiny size on a CPU
#
# Output: $GPU_BENCH_OUT (default outputs/gpu_bench/): blend.txt, train.txt (tables, last line JSON) and env.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEVICE=${GPU_BENCH_DEVICE:-cuda}
MODEL=${GPU_BENCH_MODEL:-sd15}
LATENT=${GPU_BENCH_LATENT:-64}
STEPS=${GPU_BENCH_STEPS:-20}
BATCH=${GPU_BENCH_BATCH:-4}
REPEATS=${GPU_BENCH_REPEATS:-3}
OUT=${GPU_BENCH_OUT:-outputs/gpu_bench}
if [ "$DEVICE" = cpu ]; then
  DTYPE=float32; MP=no; STEPS=${GPU_BENCH_STEPS:-1}; BATCH=${GPU_BENCH_BATCH:-1}; REPEATS=${GPU_BENCH_REPEATS:-1}
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  T_BLEND=1800; T_TRAIN=1800  # a loaded CPU is slow; the limits below are for the GPU run
else
  DTYPE=float16; MP=fp16
  T_BLEND=330; T_TRAIN=240    # together under 10 minutes
fi
mkdir -p "$OUT"
{
  date -u; "$PY" -c "import torch, diffusers, peft; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'peft', peft.__version__)"
  if [ "$DEVICE" != cpu ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; fi
} > "$OUT/env.txt" 2>&1
echo "== blending: $MODEL latent $LATENT $DTYPE on $DEVICE, $STEPS steps, batch $BATCH, $REPEATS repeats"
timeout "$T_BLEND" "$PY" scripts/bench_blend.py --models "$MODEL" --latent "$LATENT" --device "$DEVICE" --dtype "$DTYPE" \
  --steps "$STEPS" --batch "$BATCH" --repeats "$REPEATS" \
  --methods single,mpa2,mpa3,mpa4,mpa2_batched,mpa3_batched,mpa4_batched,mpa_ls,kla,kla_batched,soup,hybrid_late \
  --memory mpa4,mpa4_batched,mpa_ls | tee "$OUT/blend.txt"
echo "== training: one DPOK iteration on $MODEL latent $LATENT (mixed precision $MP)"
timeout "$T_TRAIN" "$PY" scripts/bench_train.py --model "$MODEL" --latent "$LATENT" --steps 4 --g_batch 2 --p_step 2 \
  --p_batch 2 --repeats 1 --mixed_precision "$MP" | tee "$OUT/train.txt"
echo "written: $OUT/{env,blend,train}.txt"
