#!/usr/bin/env bash
# The CPU world model from this machine's records to its offline evaluation, one step after another;
# each step resumes where it stopped, or is skipped when its output exists. Hours on 2 cores, so:
#
#   nohup benchmarks/wm_pipeline.sh > benchmarks/work/logs/wm_pipeline.log 2>&1 &
#
# Nothing else should compute meanwhile: the collector times kernels. Steps: unpack the committed
# records (if absent), collect the rest (64 per task, the 48 heaviest tasks per network), train 4 networks
# (records only: no replayed-prefix transitions, so no dynamics loss), evaluate them offline
# against MetaSchedule's XGB and MLP on the held-out networks (benchmarks/wm_eval.py).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${WM_DATA:-benchmarks/work/wm_data_t2}
OUT=${WM_OUT:-benchmarks/work/wm_t2}
mkdir -p "$OUT" benchmarks/work/logs
if [ ! -d "$DATA" ]; then
  tar -xJf benchmarks/data/wm_data_cpu_t2.tar.xz -C "$(dirname "$DATA")"
fi
echo "$(date -Is) collect"
tvm-wm collect --out "$DATA" --trials 64 --max-tasks 48 --no-transitions
if [ ! -f "$OUT/wm.json" ]; then
  echo "$(date -Is) train"
  tvm-wm train --data "$DATA" --members 4 --out "$OUT/wm.pt"
fi
if [ ! -f "$OUT/wm_eval.json" ]; then
  echo "$(date -Is) wm_eval"
  python benchmarks/wm_eval.py --data "$DATA" --weights "$OUT/wm.pt" --out "$OUT" \
    --compare shipped=torch_wm_backend/world_model/weights/wm.pt
fi
echo "$(date -Is) done: $OUT"
