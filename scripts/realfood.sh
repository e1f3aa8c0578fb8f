#!/usr/bin/env bash
# Prove the pipeline on real photos: StackGAN stage I vs the DCGAN baseline on ../shared/realfood
# (1,863 photos of 28 dishes), 64 px, same budget, 20% of each dish's photos held out by photo.
# The budget is time (the quality issue's protocol): 60 minutes of training per model; STEPS=N
# budgets by steps instead (the README's earlier rows: 6,000).
#
#   bash scripts/realfood.sh                 # CPU: 60 min per model, then the comparison
#   MINUTES=30 bash scripts/realfood.sh
#   STEPS=6000 bash scripts/realfood.sh
#   DATA=/path/to/photos bash scripts/realfood.sh
#
# That set is for research only: its runs stay in runs/ (ignored by git); never commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DATA=${DATA:-../shared/realfood}
STEPS=${STEPS:-0}
MINUTES=${MINUTES:-60}
if [ "$STEPS" != 0 ]; then MINUTES=0; fi
RUNS=${RUNS:-runs}
DEVICE=${DEVICE:-auto}
if [ ! -f "$DATA/names.tsv" ]; then
  echo "realfood.sh: no photo set at $DATA (give DATA=folder with names.tsv)" >&2
  exit 2
fi

"$BIN/stackgan" data check "$DATA"
"$BIN/stackgan" train --stage 1 --data "$DATA" --held-out 0.2 --split-seed 0 --seed 0 \
  --out "$RUNS/realfood-s1" --ngf 32 --ndf 32 --batch-size 32 --max-steps "$STEPS" --max-minutes "$MINUTES" \
  --sample-every 500 --ckpt-every 500 --keep-ckpts 12 --device "$DEVICE" --no-progress
# the DCGAN gets the StackGAN run's data, split, size, widths, seed and budget; one report for both
"$BIN/stackgan" compare --stackgan "$RUNS/realfood-s1" --models stackgan dcgan --out "$RUNS/realfood-compare" \
  --device "$DEVICE" --no-progress
