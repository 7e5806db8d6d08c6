import pytest
import tvm
from tvm import te
from tvm.s_tir import meta_schedule as ms

CPU = {"kind": "llvm", "num-cores": 2}
CUDA = {"kind": "cuda", "arch": "sm_90", "max_threads_per_block": 1024,
        "max_shared_memory_per_block": 49152, "thread_warp_size": 32}


def _dense_relu(rows=64):
    a = te.placeholder((rows, 96), name="A")
    w = te.placeholder((128, 96), name="W")
    k = te.reduce_axis((0, 96), name="k")
    c = te.compute((rows, 128), lambda i, j: te.sum(a[i, k] * w[j, k], axis=k), name="dense")
    r = te.compute((rows, 128), lambda i, j: te.max(c[i, j], 0.0), name="relu")
    return tvm.IRModule({"main": te.create_prim_func([a, w, r])})


def _candidates(target, n, seed=0, rows=64):
    ctx = ms.TuneContext(mod=_dense_relu(rows), target=target, space_generator="post-order-apply",
                         search_strategy="replay-trace", num_threads=1, rand_state=seed)
    ctx.pre_tuning(max_trials=n, num_trials_per_iter=n)
    cands = ctx.generate_measure_candidates()
    return ctx, list(cands)


@pytest.fixture(scope="session")
def cpu_task():
    return _candidates(tvm.target.Target(CPU), 32)


@pytest.fixture
def cpu_workload():
    """A task's workload to tune (``_dense_relu``) and its target."""
    return _dense_relu(), tvm.target.Target(CPU)


@pytest.fixture(scope="session")
def other_cpu_task():
    """Another task (another workload) of the same kind."""
    return _candidates(tvm.target.Target(CPU), 16, rows=32)


@pytest.fixture(scope="session")
def cuda_task():
    return _candidates(tvm.target.Target(CUDA, host={"kind": "llvm"}), 16)
