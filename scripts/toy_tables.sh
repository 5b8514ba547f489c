#!/usr/bin/env bash
# The toy versions of the paper's Table 1, Pareto fronts and DB-KLA figure, from the committed toy
# weights (toy/weights/), all through run_DB.py. Markdown tables and PNG plots go to docs/toy/.
#
#   bash scripts/toy_tables.sh [--n_seeds 12] [--out outputs/toy_tables] [--docs docs/toy] [--only table1,pareto,kla]
#   bash scripts/toy_tables.sh --set dpok      # the DPOK-trained set (toy/weights/dpok/): table1 at w = 0.5
#
# --set draft (default): the DRaFT-K adapters (toy/weights/adapters/) and oracles; --set dpok: the adapters and the
# w = 0.5 MORL oracle trained by DPOK on the true rewards (build_toy.sh TOY_DPOK=1), Table 1 at w = 0.5 only (the
# only oracle of that set) and the Pareto sweep, into outputs/toy_tables_dpok and docs/toy_dpok (no DB-KLA: that set
# has no λ-specific oracles).
#
# 1 table1: held-out prompts × n_seeds, w ∈ {0.2, 0.5, 0.8}: base, both single adapters, rewarded soup
#           (ΔW and factors), DB-MPA, DB-MPA-LS, and the MORL oracle for each w.
# 2 pareto: w ∈ {0.1, 0.3, 0.4, 0.6, 0.7, 0.9} for DB-MPA, DB-MPA-LS and both soups (w = 0, 0.2, 0.5, 0.8, 1
#           come from table1), same prompts and seeds.
# 3 kla:    (n_seeds/2 seeds per prompt) DB-KLA on the alignment adapter, λ ∈ {0, 0.25, …, 2}, against
#           the λ-specific oracles (alignment retrained with kl_weight/λ, λ = 0.5 and 2; λ = 1 is the adapter itself).
# Re-running resumes (run_DB.py skips finished images). Noise: run_DB.py's default, x_T and step noise
# per (prompt, seed), DB-MPA-LS draws per image; errors cluster by prompt (blend.stats, scripts/toy_report.py).
# Each markdown table is also written as LaTeX, each plot as PNG and PDF; docs/toy/comparisons.md holds the paired
# differences the conclusions of docs/toy_world.md use (95% intervals, p-values, naive s.e. for comparison).
# Measured: 4,192 s on one thread with the 2 cores shared (docs/toy_world.md, "Build and run times"); ≈ 35 min on 2 free cores.
set -euo pipefail
cd "$(dirname "$0")/.."
N_SEEDS=12
OUT=outputs/toy_tables
DOCS=docs/toy
ONLY=
SET=draft
while [[ $# -gt 0 ]]; do
  case "$1" in
    --n_seeds) N_SEEDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --docs) DOCS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --set) SET=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python
export HF_HUB_OFFLINE=1
W=toy/weights
COMMON=(--base_model builtin:toy --rewards toy_alignment,jpeg_compressibility
        --prompt_file dataset/toy_test_prompts.json --steps 10 --guidance 5 --eta 1 --batch_size 48 --no_grids)
case "$SET" in
  draft)
    ADAPTERS=(--lora alignment=$W/adapters/alignment --lora compressibility=$W/adapters/compressibility)
    T1_WEIGHTS="0.2,0.8;0.5,0.5;0.8,0.2"; REPORT_W=0.2,0.5,0.8
    ORACLES=(--oracle 0.2,0.8=$W/oracles/w0.2 --oracle 0.5,0.5=$W/oracles/w0.5 --oracle 0.8,0.2=$W/oracles/w0.8)
    ONLY=${ONLY:-table1,pareto,kla} ;;
  dpok)
    for d in alignment compressibility oracle_w0.5; do
      [[ -d $W/dpok/$d ]] || { echo "no $W/dpok/$d: train the DPOK set first (TOY_DPOK=1 bash scripts/build_toy.sh)" >&2; exit 2; }
    done
    ADAPTERS=(--lora alignment=$W/dpok/alignment --lora compressibility=$W/dpok/compressibility)
    T1_WEIGHTS="0.5,0.5"; REPORT_W=0.5; ORACLES=(--oracle 0.5,0.5=$W/dpok/oracle_w0.5)
    ONLY=${ONLY:-table1,pareto}
    [[ $OUT == outputs/toy_tables ]] && OUT=outputs/toy_tables_dpok
    [[ $DOCS == docs/toy ]] && DOCS=docs/toy_dpok
    [[ ",$ONLY," == *",kla,"* ]] && { echo "--set dpok has no λ-specific oracles; drop kla from --only" >&2; exit 2; } ;;
  *) echo "--set must be draft or dpok, got $SET" >&2; exit 2 ;;
esac
T0=$(date +%s)

want() { [[ ",$ONLY," == *",$1,"* ]]; }
REPORT=(--stats $W/reward_stats.json --n_seeds "$N_SEEDS" --out "$DOCS" --weights "$REPORT_W")

if want table1; then
echo "== table1"
$PY run_DB.py "${COMMON[@]}" "${ADAPTERS[@]}" --n_seeds "$N_SEEDS" --out_dir "$OUT/table1" \
  --methods base,single,soup,soup_factors,mpa,mpa_ls,oracle \
  --weights "$T1_WEIGHTS" "${ORACLES[@]}" >/dev/null
REPORT+=(--table1 "$OUT/table1")
fi
if want pareto; then
echo "== pareto"
$PY run_DB.py "${COMMON[@]}" "${ADAPTERS[@]}" --n_seeds "$N_SEEDS" --out_dir "$OUT/pareto" \
  --methods soup,soup_factors,mpa,mpa_ls \
  --weights "0.1,0.9;0.3,0.7;0.4,0.6;0.6,0.4;0.7,0.3;0.9,0.1" >/dev/null
REPORT+=(--pareto "$OUT/pareto")
fi
if want kla; then
echo "== kla"
$PY run_DB.py "${COMMON[@]}" --lora alignment=$W/adapters/alignment --n_seeds $(( (N_SEEDS + 1) / 2 )) \
  --out_dir "$OUT/kla" --methods base,single,kla,oracle --lambdas 0.25,0.5,0.75,1.25,1.5,1.75,2 \
  --oracle 1=$W/oracles_kl/lam0.5 --oracle 1=$W/oracles_kl/lam2 >/dev/null
REPORT+=(--kla "$OUT/kla" --kla_oracles 0.5,2)
fi
$PY scripts/toy_report.py "${REPORT[@]}"
echo "toy tables done in $(( $(date +%s) - T0 )) s; tables and plots in $DOCS"
