#!/usr/bin/env bash
# Put the ImageReward v1.0 checkpoint, its med_config.json and the bert-base-uncased vocab.txt into
# <cache_dir>/ImageReward/, where `get_reward("image_reward", cache_dir=...)` (and run_DB.py --cache_dir) looks.
#
#   bash install_image_reward.sh [--cache_dir DIR] [--mirror DIR] [--python PY]
#
# Sources, in order: a local mirror directory (files ImageReward.pt, med_config.json, vocab.txt directly in
# DIR or in DIR/ImageReward/; for clusters without internet), then the Hugging Face hub (zai-org/ImageReward, then
# its old name THUDM/ImageReward; google-bert/bert-base-uncased). vocab.txt falls back to the copy vendored in rewards/assets/.
# The fetched files are checked (ImageReward.pt loads with torch.load(weights_only=True) and has the BLIP,
# BERT and MLP keys; med_config.json has vocab_size 30524; vocab.txt has 30522 lines) before they are kept.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${DB_CACHE_DIR:-$HOME/.cache/diffusion_blend}"
MIRROR=""
PY="${PYTHON:-python}"
[ -x "$HERE/.venv/bin/python" ] && PY="$HERE/.venv/bin/python"

while [ $# -gt 0 ]; do
  case "$1" in
    --cache_dir) CACHE_DIR="$2"; shift 2 ;;
    --mirror) MIRROR="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

DEST="$CACHE_DIR/ImageReward"
mkdir -p "$DEST"
TMP="$(mktemp -d "$DEST/.install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

fetch() {  # fetch NAME HUB_REPO HUB_FILE  -> $TMP/NAME, or return 1
  local name="$1" repo="$2" file="$3"
  if [ -n "$MIRROR" ]; then
    for cand in "$MIRROR/$name" "$MIRROR/ImageReward/$name"; do
      if [ -f "$cand" ]; then cp "$cand" "$TMP/$name"; echo "  $name: from mirror $cand"; return 0; fi
    done
  fi
  if [ "${HF_HUB_OFFLINE:-0}" != "1" ]; then
    if "$PY" - "$repo" "$file" "$TMP/hub" >/dev/null 2>"$TMP/hub.err" <<'EOF'
import sys
from huggingface_hub import hf_hub_download
hf_hub_download(sys.argv[1], sys.argv[2], local_dir=sys.argv[3])
EOF
    then mv "$TMP/hub/$file" "$TMP/$name"; echo "  $name: from hub $repo"; return 0; fi
  fi
  return 1
}

echo "Installing ImageReward into $DEST"
missing=()
for f in ImageReward.pt med_config.json; do  # the THUDM organisation was renamed zai-org; the old name is the fallback
  fetch "$f" zai-org/ImageReward "$f" || fetch "$f" THUDM/ImageReward "$f" \
    || missing+=("$f (hub zai-org/ImageReward or THUDM/ImageReward)")
done
if ! fetch vocab.txt google-bert/bert-base-uncased vocab.txt; then
  cp "$HERE/rewards/assets/bert-base-uncased-vocab.txt" "$TMP/vocab.txt"; echo "  vocab.txt: vendored copy"
fi
if [ ${#missing[@]} -gt 0 ]; then
  {
    echo "ERROR: could not fetch: ${missing[*]}"
    echo "  mirror: ${MIRROR:-(none given; pass --mirror DIR holding ImageReward.pt and med_config.json)}"
    if [ "${HF_HUB_OFFLINE:-0}" = "1" ]; then echo "  hub: skipped (HF_HUB_OFFLINE=1)";
    else echo "  hub: unreachable ($(tail -n 1 "$TMP/hub.err" 2>/dev/null))"; fi
    echo "Copy the files from a machine with internet (https://huggingface.co/zai-org/ImageReward) and rerun with --mirror."
  } >&2
  exit 1
fi

"$PY" - "$TMP" <<'EOF'
import json, sys, torch
d = sys.argv[1]
sd = torch.load(f"{d}/ImageReward.pt", map_location="cpu", weights_only=True)
need = ["blip.visual_encoder.cls_token", "blip.text_encoder.embeddings.word_embeddings.weight", "mlp.layers.0.weight"]
bad = [k for k in need if k not in sd]
assert not bad, f"ImageReward.pt lacks {bad}: not the ImageReward v1.0 checkpoint"
assert sd["blip.text_encoder.embeddings.word_embeddings.weight"].shape[0] == 30524, "text vocab is not 30524"
cfg = json.load(open(f"{d}/med_config.json"))
assert cfg.get("vocab_size") == 30524, f"med_config.json vocab_size {cfg.get('vocab_size')} != 30524"
n = sum(1 for _ in open(f"{d}/vocab.txt", encoding="utf-8"))
assert n == 30522, f"vocab.txt has {n} lines, expected 30522 (bert-base-uncased)"
print(f"  checked: {len(sd)} tensors, med_config vocab 30524, vocab.txt 30522 lines")
EOF

mv -f "$TMP/ImageReward.pt" "$TMP/med_config.json" "$TMP/vocab.txt" "$DEST/"
echo "Done: $DEST/{ImageReward.pt,med_config.json,vocab.txt}"
