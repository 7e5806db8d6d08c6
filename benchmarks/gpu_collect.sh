#!/usr/bin/env bash
# World-model data and weights for the GPU, in one device command: measure sampled schedules of the
# zoo's tasks on this GPU (`tvm-wm collect --target cuda`, measured records only), train GPU weights
# (`tvm-wm train --target cuda`), score them offline against MetaSchedule's XGB and MLP on the
# evaluation networks' records (benchmarks/wm_eval.py), and return data, weights and tables in $OUT.
#   run: bash benchmarks/gpu_collect.sh   (carry .devtvm, .whl, benchmarks/work/wm_data/eval_hashes.json)
start=$(date +%s)
source benchmarks/device_env.sh || exit 1
data=/tmp/wm_data_cuda && mkdir -p $data
cp benchmarks/work/wm_data/eval_hashes.json $data/ 2>/dev/null  # workload hashes: target-independent
set -o pipefail
python3 -m torch_wm_backend.cli collect --target cuda --out $data --trials 16 --max-tasks 12 \
  --eval-tasks 8 --no-transitions --deadline-s "${COLLECT_S:-240}" 2>&1 | tr '\r' '\n' | grep -v "measure:" \
  | tee "$OUT/collect.log" | tail -40
echo "collected in $(($(date +%s) - start)) s"
tar -cJf "$OUT/wm_data_cuda.tar.xz" -C /tmp wm_data_cuda
timeout "${TRAIN_S:-150}" python3 -m torch_wm_backend.cli train --target cuda --data $data \
  --out "$OUT/wm_cuda.pt" --steps "${STEPS:-400}" --batch 8 2>&1 | tee "$OUT/train.log" | tail -15
echo "trained by $(($(date +%s) - start)) s"
timeout 120 python3 benchmarks/wm_eval.py --target cuda --data $data --weights "$OUT/wm_cuda.pt" \
  --out "$OUT" 2>&1 | tail -15
echo "done in $(($(date +%s) - start)) s"
