import math

import tvm

from torch_wm_backend.world_model import hardware


def test_a_cpus_features_say_how_many_of_its_cores_tvm_runs_on():
    """Schedules rank differently on 1 and 2 threads (a parallel loop pays only with cores to run
    it): the thread count is a hardware feature, 0 where every core is used, as records before
    the slot existed were read."""
    target = tvm.target.Target({"kind": "llvm", "num-cores": 2})
    full, half = hardware.hardware_features(target, 2), hardware.hardware_features(target, 1)
    assert full[6] == 0 and half[6] == -1.0
    assert (full != half).sum() == 1
    assert full[2] == math.log2(2)


def test_a_gpus_features_do_not_depend_on_the_cpu_thread_count():
    cuda = tvm.target.Target({"kind": "cuda", "arch": "sm_90"}, host={"kind": "llvm"})
    assert (hardware.hardware_features(cuda, 1) == hardware.hardware_features(cuda, 8)).all()
