"""What the benchmark ran on: written beside every result."""
import datetime
import os
import platform


def describe() -> dict:
    import torch
    import tvm

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
    return [f"# {title} — {m['cpu']}, {m['cores']} cores, {m['date']}", "",
            f"torch {m['torch']}, tvm {m['tvm']}; TVM on {m['tvm_threads']} threads, PyTorch on "
            f"{m['torch_threads']}."]
