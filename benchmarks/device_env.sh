# Sourced by the device scripts (a bare machine with Python 3.12 and torch, no TVM): unpack the TVM
# bundle (../shared/tools/device-tvm-bundle) carried in .devtvm, install the wheels carried in .whl,
# and register the backend's entry point without pip (no build dependencies there).
mkdir -p /tmp/site && tar -xJf .devtvm/tvm-py312.tar.xz -C /tmp/site || return 1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PATH=$PATH:/usr/local/cuda/bin
info=/tmp/site/torch_wm_backend-0.1.0.dist-info && mkdir -p $info
printf 'Metadata-Version: 2.1\nName: torch_wm_backend\nVersion: 0.1.0\n' >$info/METADATA
printf '[torch_dynamo_backends]\ntvm_wm = torch_wm_backend.backend:tvm_wm\n' >$info/entry_points.txt
cudart=$(python3 -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))" 2>/dev/null)
libdir=$(find "$cudart" /usr/local/cuda* -name 'libcudart.so.13*' 2>/dev/null | head -1 | xargs -r dirname)
export LD_LIBRARY_PATH=${libdir}:${LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nvcc --version | tail -1
python3 -c "import torch, tvm; print('torch', torch.__version__, 'tvm', tvm.__version__, 'cuda ok', tvm.cuda(0).exist)" || return 1
