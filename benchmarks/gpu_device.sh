#!/usr/bin/env bash
# The GPU checks in one command, for the device tool (a bare machine with Python 3.12 and torch, no
# TVM): unpack the TVM bundle (../shared/tools/device-tvm-bundle), install this package, run
# tests/cuda and benchmarks/gpu.py. Writes logs and results into $OUT.
#   run: bash benchmarks/gpu_device.sh [gpu.py options]   (carry .devtvm and .whl)
start=$(date +%s)
budget=${GPU_BUDGET_S:-500}
source benchmarks/device_env.sh || exit 1
timeout ${TEST_S:-260} python3 -m pytest -q -ra -p no:cacheprovider tests/cuda 2>&1 | tee "$OUT/cuda_tests.log"
left=$((budget - ($(date +%s) - start)))
echo "benchmark: $left s left"
python3 benchmarks/gpu.py run --out "$OUT" --deadline "$left" "$@" 2>&1 | tee "$OUT/gpu_run.log" | cut -c1-400
echo "done in $(($(date +%s) - start)) s"
