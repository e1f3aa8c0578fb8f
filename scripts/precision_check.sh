#!/usr/bin/env bash
# fp32 against bf16 (--precision auto) on the embedded menu: the quality check behind the README's
# "Speed" section. Stage I, 64 px, 80/20 split (seed 0), ngf = ndf = 32, batch 32, DiffAugment
# translation; each run on its own core with one thread, two runs at a time.
#
#   bash scripts/precision_check.sh            # about 75 min on 2 cores
#
# 1. equal steps: 1,500 steps, seeds 0 and 1, in each precision   -> $RUNS/eq-{fp32,bf16}-s{0,1}
# 2. equal time:  --max-steps 0 --max-minutes 30, seed 0           -> $RUNS/t30-{fp32,auto}
# 3. stackgan evaluate on every run (eval/eval.json in each folder)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUNS=${RUNS:-runs/precision}
STEPS=${STEPS:-1500}
MINUTES=${MINUTES:-30}
mkdir -p "$RUNS"

run() {  # core out precision seed budget...
  local core=$1 out=$2 prec=$3 seed=$4
  shift 4
  OMP_NUM_THREADS=1 taskset -c "$core" "$BIN/stackgan" train --stage 1 --data data/menu --held-out 0.2 --split-seed 0 \
    --seed "$seed" --out "$RUNS/$out" --ngf 32 --ndf 32 --batch-size 32 --diffaugment translation \
    --precision "$prec" --sample-every 500 --ckpt-every 500 --no-progress "$@" > "$RUNS/$out.log" 2>&1
}

run 0 eq-fp32-s0 fp32 0 --max-steps "$STEPS" & run 1 eq-fp32-s1 fp32 1 --max-steps "$STEPS" & wait
run 0 eq-bf16-s0 bf16 0 --max-steps "$STEPS" & run 1 eq-bf16-s1 bf16 1 --max-steps "$STEPS" & wait
run 0 t30-fp32 fp32 0 --max-steps 0 --max-minutes "$MINUTES" & run 1 t30-auto auto 0 --max-steps 0 --max-minutes "$MINUTES" & wait

for r in eq-fp32-s0 eq-fp32-s1 eq-bf16-s0 eq-bf16-s1 t30-fp32 t30-auto; do
  "$BIN/stackgan" evaluate "$RUNS/$r" --checkpoints 0 --dprobe-steps 0 --no-write-run-metrics --no-progress \
    > "$RUNS/$r.eval.log" 2>&1
  tail -n 1 "$RUNS/$r.eval.log"
done
