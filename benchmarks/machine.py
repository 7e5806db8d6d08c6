"""What the benchmark ran on: written beside every result."""
import datetime
import os
import platform
import statistics
import time


def describe() -> dict:
    import torch
    import tvm
    from tvm.target import codegen

    from torch_wm_backend import threads

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu,
        # what LLVM calls this CPU (the tuning target's mcpu): tuning records are this host's
        "llvm_cpu": codegen.llvm_get_system_cpu(),
        "cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "tvm": tvm.__version__,
        "python": platform.python_version(),
        # the threads each side computed with: TVM's pool follows PyTorch's (torch_wm_backend.threads)
        "torch_threads": torch.get_num_threads(),
        "tvm_threads": threads.sync(),
    }


def heading(title: str, m: dict) -> list:
    """A result's markdown title and the line every result starts with: versions and both sides'
    thread counts."""
    cpu = m["cpu"] + (f" ({m['llvm_cpu']})" if m.get("llvm_cpu") else "")
    return [f"# {title} — {cpu}, {m['cores']} cores, {m['date']}", "",
            f"torch {m['torch']}, tvm {m['tvm']}; TVM on {m['tvm_threads']} threads, PyTorch on "
            f"{m['torch_threads']}."]


def save_markdown(path: str, lines: list) -> None:
    """A result's markdown next to its JSON (``path`` without the suffix), also printed."""
    with open(path + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def timed(fn, samples: int, calls: int = 1, warmup: int = 1, sync=None) -> list:
    """Seconds per call of ``fn()``: ``warmup`` untimed calls first — the first call after another
    side ran pays for that side's thread pool still spinning, which a program running one model
    never does (select/race.py) — then ``samples`` readings, each the mean of ``calls`` calls.
    ``sync`` (``torch.cuda.synchronize``) waits for the device before each clock reading."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(samples):
        if sync is not None:
            sync()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if sync is not None:
            sync()
        out.append((time.perf_counter() - start) / calls)
    return out


def interleaved(fns: dict, rounds: int, samples: int = 1, calls: int = 1, warmup: int = 1,
                sync=None) -> dict:
    """Readings (``timed``) of each of ``fns`` (name: callable), from ``rounds`` rounds that take
    ``samples`` of each in turn: drift on a shared host hits every side alike."""
    readings = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            readings[name] += timed(fn, samples, calls, warmup, sync)
    return readings


def median(readings: dict, scale: float = 1.0) -> dict:
    """Each side's median reading, times ``scale`` (1e3: milliseconds)."""
    return {name: statistics.median(r) * scale for name, r in readings.items()}
