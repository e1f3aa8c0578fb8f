#!/usr/bin/env bash
# Reproduce the shipped model (models/default) from the embedded menu set.
#
#   bash scripts/train_default.sh            # CPU: slim widths, as shipped
#   DEVICE=cuda bash scripts/train_default.sh
#
# Stage I (64 px) and stage II are trained on 80% of each dish's photos (--held-out 0.2, split seed 0);
# `stackgan evaluate` scores the result against the other 20%, and the export copies only what
# inference needs (EMA generators, CA weights, names and their e5 vectors, metrics) into models/default.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DEVICE=${DEVICE:-auto}
S1_STEPS=${S1_STEPS:-3000}
S2_STEPS=${S2_STEPS:-600}
S2_SIZE=${S2_SIZE:-128}
RUNS=${RUNS:-runs}

"$BIN/stackgan" train --stage 1 --data data/menu --held-out 0.2 --split-seed 0 --seed 0 \
  --out "$RUNS/default-s1" --ngf 32 --ndf 32 --batch-size 32 --max-steps "$S1_STEPS" \
  --sample-every 250 --ckpt-every 250 --device "$DEVICE" --no-progress
"$BIN/stackgan" train --stage 2 --data data/menu --held-out 0.2 --split-seed 0 --seed 0 \
  --stage1 "$RUNS/default-s1" --stage2-size "$S2_SIZE" --out "$RUNS/default-s2" --ngf 16 --ndf 16 \
  --batch-size 16 --max-steps "$S2_STEPS" --sample-every 100 --ckpt-every 100 --device "$DEVICE" --no-progress
"$BIN/stackgan" evaluate "$RUNS/default-s2" --stage 1 --out "$RUNS/default-s2/eval-stage1" --write-run-metrics
"$BIN/python" scripts/export_model.py "$RUNS/default-s2" models/default --fp16
