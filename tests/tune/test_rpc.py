"""Measurement through TVM's RPC tracker: a tracker and two servers on 127.0.0.1, started here."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import torch_wm_backend
from torch_wm_backend import threads

pytestmark = pytest.mark.slow
KEY = "tvm-wm-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_servers(port: int, count: int, timeout: float = 60.0) -> None:
    from tvm import rpc

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            summary = rpc.connect_tracker("127.0.0.1", port).summary()
            free = sum(v.get("free", 0) for k, v in summary["queue_info"].items() if k == KEY)
            if free >= count:
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise TimeoutError("RPC servers did not register with the tracker")


def _server_env() -> dict:
    """The servers' TVM runs kernels on as many threads as this process's (threads.py)."""
    return {**os.environ, "TVM_NUM_THREADS": str(threads.sync())}


@pytest.fixture(scope="module")  # one tracker and two servers for the module
def tracker():
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                               "--port", str(port), "--port-end", str(port + 1)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    time.sleep(2)
    for _ in range(2):
        server_port = _free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1",
             "--port", str(server_port), "--port-end", str(server_port + 1),
             "--tracker", f"127.0.0.1:{port}", "--key", KEY],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env=_server_env()))
    try:
        _wait_for_servers(port, 2)
        yield f"127.0.0.1:{port}"
    finally:
        # each runs its server in a child worker process: kill the whole process group, or the
        # workers outlive the test
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_rpc_runner_measures_on_loopback_servers(tracker):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 16, 16)
    options = {"trials": 2, "cost_model": "random", "cache_dir": None, "eager_guard": False,
               "runner": {"rpc": {"tracker": tracker, "key": KEY}}}
    with torch.no_grad():
        got = torch.compile(model, backend="tvm_wm", options=options)(x)
    torch.testing.assert_close(got, model(x), atol=1e-4, rtol=1e-4)
    stats = torch_wm_backend.stats()
    assert stats["trials_measured"] > 0
    assert stats["trials_failed"] < stats["trials_measured"]  # real measurements came back


def test_rpc_servers_run_tvm_on_as_many_threads_as_pytorch(tracker):
    from tvm import rpc

    host, _, port = tracker.rpartition(":")
    remote = rpc.connect_tracker(host, int(port)).request(KEY, priority=1, session_timeout=60)
    assert int(remote.get_function("runtime.NumThreads")()) == threads.count()
