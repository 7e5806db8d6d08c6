#!/usr/bin/env bash
# The GPU checks in one command, for the device tool (a bare machine with Python 3.12 and torch, no
# TVM): unpack the TVM bundle (../shared/tools/device-tvm-bundle), install this package, run
# tests/cuda and benchmarks/gpu.py. Writes logs and results into $OUT.
#   run: bash benchmarks/gpu_device.sh   (carry .devtvm and .whl)
start=$(date +%s)
budget=${GPU_BUDGET_S:-500}
mkdir -p /tmp/site && tar -xJf .devtvm/tvm-py312.tar.xz -C /tmp/site || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PATH=$PATH:/usr/local/cuda/bin
# register the backend's entry point without pip (no build dependencies there)
info=/tmp/site/torch_wm_backend-0.1.0.dist-info && mkdir -p $info
printf 'Metadata-Version: 2.1\nName: torch_wm_backend\nVersion: 0.1.0\n' >$info/METADATA
printf '[torch_dynamo_backends]\ntvm_wm = torch_wm_backend.backend:tvm_wm\n' >$info/entry_points.txt
cudart=$(python3 -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))" 2>/dev/null)
libdir=$(find "$cudart" /usr/local/cuda* -name 'libcudart.so.13*' 2>/dev/null | head -1 | xargs -r dirname)
export LD_LIBRARY_PATH=${libdir}:${LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nvcc --version | tail -1
python3 -c "import torch, tvm; print('torch', torch.__version__, 'tvm', tvm.__version__, 'cuda ok', tvm.cuda(0).exist)" || exit 1
timeout 200 python3 -m pytest -q -ra -p no:cacheprovider tests/cuda 2>&1 | tee "$OUT/cuda_tests.log"
left=$((budget - ($(date +%s) - start)))
echo "benchmark: $left s left"
python3 benchmarks/gpu.py run --out "$OUT" --deadline "$left" 2>&1 | tee "$OUT/gpu_run.log" | cut -c1-400
echo "done in $(($(date +%s) - start)) s"
