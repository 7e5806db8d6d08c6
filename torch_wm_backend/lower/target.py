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


def cuda_target(arch: str = "sm_80", registers_per_block: int = 65536) -> tvm.target.Target:
    """CUDA for compute capability ``arch`` (e.g. "sm_90"); needs no GPU, so data and weights for a
    GPU can be prepared on any machine."""
    return tvm.target.Target(
        {
            "kind": "cuda",
            "arch": arch,
            "max_threads_per_block": 1024,
            "max_shared_memory_per_block": 49152,
            "thread_warp_size": 32,
            "max_num_threads": 1024,
            "registers_per_block": registers_per_block,
        },
        host={"kind": "llvm"},
    )


@functools.lru_cache(maxsize=None)
def target_for(device: torch.device) -> tvm.target.Target:
    if device.type == "cpu":
        return cpu_target()
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        props = torch.cuda.get_device_properties(device)
        return cuda_target(f"sm_{major}{minor}", getattr(props, "regs_per_multiprocessor", 65536))
    from ..errors import TvmWmError

    raise TvmWmError(f"tvm_wm compiles for cpu and cuda tensors, not {device.type}")


def parse_target(spec: str) -> tvm.target.Target:
    """Command-line targets: "cpu", "cpu:CORES", "cuda" (this machine's GPU) or "cuda:sm_90"."""
    from ..errors import TvmWmError

    kind, _, arg = spec.partition(":")
    if kind == "cpu" and (not arg or arg.isdigit()):
        return cpu_target(int(arg) if arg else None)
    if kind == "cuda" and (not arg or arg.startswith("sm_")):
        if not arg and not torch.cuda.is_available():
            raise TvmWmError("target 'cuda' means this machine's GPU and there is none: name the "
                             "architecture instead, e.g. cuda:sm_90")
        return cuda_target(arg) if arg else target_for(torch.device("cuda"))
    raise TvmWmError(f"unknown target {spec!r}: use cpu, cpu:CORES, cuda or cuda:sm_XY")


def tvm_device(device: torch.device):
    if device.type == "cuda":
        return tvm.cuda(device.index if device.index is not None else torch.cuda.current_device())
    return tvm.cpu(0)
