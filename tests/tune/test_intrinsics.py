"""A tuning context imports its target's tensor intrinsics only, and leaves TVM's package importable."""
import subprocess
import sys

SCRIPT = r"""
import sys
import tvm
from tvm import te
from torch_wm_backend.tune.intrinsics import PACKAGE, modules_for, tune_context

a = te.placeholder((64, 64), name="a")
b = te.compute((64, 64), lambda i, j: a[i, j] * 2.0, name="b")
mod = tvm.IRModule({"main": te.create_prim_func([a, b])})
target = tvm.target.Target({"kind": "llvm", "num-cores": 2})
ctx = tune_context(mod=mod, target=target,
                   space_generator="post-order-apply", search_strategy="replay-trace", num_threads=1)
assert len(ctx.space_generator.generate_design_space(mod)) >= 1
loaded = sorted(m for m in sys.modules if m.startswith(PACKAGE))
assert loaded == [f"{PACKAGE}.{name}" for name in modules_for(target)], loaded  # CUDA's, ARM's... not
if len(sys.argv) > 1:  # the whole package still imports afterwards, nothing registered twice
    import tvm.s_tir.tensor_intrin
    assert PACKAGE + ".cuda" in sys.modules
    from tvm.s_tir import TensorIntrin
    TensorIntrin.get("dot_16x4_vnni")
"""


def test_a_cpu_tuning_context_imports_only_its_targets_intrinsics(tmp_path):
    (tmp_path / "ctx.py").write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(tmp_path / "ctx.py")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
