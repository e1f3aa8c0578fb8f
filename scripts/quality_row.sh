#!/usr/bin/env bash
# One row of the quality table (README, "Pictures that follow the name"): stage I on a photo set with
# the quality issue's protocol (80/20 split by photo, split seed 0, 64 px, slim widths ngf = ndf = 32,
# batch 32, a fixed budget of training time), then `stackgan evaluate` on the held-out photos.
#
#   bash scripts/quality_row.sh NAME [stackgan train options ...]
#   bash scripts/quality_row.sh base                                    # today's recipe (--name-loss 0.2)
#   bash scripts/quality_row.sh no-names --name-loss 0                 # the recipe before the name term
#   bash scripts/quality_row.sh names1 --name-loss 1                   # one idea
#   MINUTES=15 THREADS=1 SEED=1 bash scripts/quality_row.sh names1 --name-loss 1   # a screening run
#   DATA=data/menu MINUTES=30 bash scripts/quality_row.sh menu-base --diffaugment translation --name-loss 0
#
# The run goes to runs/quality/NAME (ignored by git; a run on ../shared/realfood is for research
# only: never commit it), its scores to runs/quality/NAME/eval. THREADS=1 runs two rows side by side
# on 2 cores (each gets one; say so when you report them). An interrupted row resumes where it was.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: bash scripts/quality_row.sh NAME [stackgan train options ...]" >&2
  exit 2
fi
NAME=$1
shift
BIN=${BIN:-.venv/bin}
DATA=${DATA:-../shared/realfood}
MINUTES=${MINUTES:-60}
SEED=${SEED:-0}
DEVICE=${DEVICE:-auto}
RUNS=${RUNS:-runs/quality}
if [ -n "${THREADS:-}" ]; then export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS; fi
if [ ! -f "$DATA/names.tsv" ]; then
  echo "quality_row.sh: no photo set at $DATA (give DATA=folder with names.tsv)" >&2
  exit 2
fi
OUT="$RUNS/$NAME"
RESUME=()
if compgen -G "$OUT/ckpt-*.pt" > /dev/null; then RESUME=(--resume); fi
"$BIN/stackgan" train --stage 1 --data "$DATA" --held-out 0.2 --split-seed 0 --seed "$SEED" --out "$OUT" \
  --ngf 32 --ndf 32 --batch-size 32 --max-steps 0 --max-minutes "$MINUTES" --sample-every 1000 --ckpt-every 1000 \
  --keep-ckpts 2 --device "$DEVICE" --no-progress "${RESUME[@]}" "$@"
"$BIN/stackgan" evaluate "$OUT" --out "$OUT/eval" --device "$DEVICE" --no-progress --no-write-run-metrics --n-per-name 32
