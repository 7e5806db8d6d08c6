"""The TVM target and device for the tensors' device."""
from __future__ import annotations

import functools
import os

import torch
import tvm


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_target(cores: int | None = None) -> tvm.target.Target:
    """LLVM for this host's CPU with ``cores`` threads (default: the cores this process may use)."""
    from tvm.target import codegen

    return tvm.target.Target(
        {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu(), "num-cores": cores or _cpu_cores()}
    )


@functools.lru_cache(maxsize=None)
def target_for(device: torch.device) -> tvm.target.Target:
    if device.type == "cpu":
        return cpu_target()
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        props = torch.cuda.get_device_properties(device)
        return tvm.target.Target(
            {
                "kind": "cuda",
                "arch": f"sm_{major}{minor}",
                "max_threads_per_block": 1024,
                "max_shared_memory_per_block": 49152,
                "thread_warp_size": 32,
                "max_num_threads": 1024,
                "registers_per_block": props.regs_per_multiprocessor
                if hasattr(props, "regs_per_multiprocessor") else 65536,
            },
            host={"kind": "llvm"},
        )
    from ..errors import TvmWmError

    raise TvmWmError(f"tvm_wm compiles for cpu and cuda tensors, not {device.type}")


def tvm_device(device: torch.device):
    if device.type == "cuda":
        return tvm.cuda(device.index if device.index is not None else torch.cuda.current_device())
    return tvm.cpu(0)
