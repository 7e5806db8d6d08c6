"""A compiled model served from several Python threads at once: every result right, no crash."""
import threading

import torch

import torch_wm_backend
import zoo
from conftest import untuned

THREADS, CALLS = 4, 20


def in_threads(work) -> list:
    """Runs ``work(i)`` in THREADS threads at once; what each raised, with its thread."""
    errors = []

    def guarded(i):
        try:
            work(i)
        except BaseException as err:  # reported by the caller, with the thread it happened in
            errors.append(f"thread {i}: {type(err).__name__}: {err}")

    workers = [threading.Thread(target=guarded, args=(i,)) for i in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return errors


def test_many_threads_call_one_compiled_model():
    model = zoo.bert(layers=2).eval()
    inputs = [zoo.tokens(batch=2, seq=16) for _ in range(THREADS)]
    with torch.no_grad():
        want = [model(x).last_hidden_state for x in inputs]
        compiled = torch.compile(model, backend="tvm_wm", options=untuned())
        compiled(inputs[0])  # compiled once here: the threads race the kernels, not the compiler
    before = torch_wm_backend.stats()["kernel_calls"]
    right = [0] * THREADS

    def serve(i):
        with torch.no_grad():
            for _ in range(CALLS):
                got = compiled(inputs[i]).last_hidden_state
                torch.testing.assert_close(got, want[i], atol=1e-4, rtol=1e-4)
                right[i] += 1

    errors = in_threads(serve)
    assert not errors, errors
    assert right == [CALLS] * THREADS
    stats = torch_wm_backend.stats()
    assert stats["subgraphs_failed"] == 0
    assert stats["kernel_calls"] - before >= THREADS * CALLS  # TVM ran, in every call


def test_first_calls_from_several_threads_build_each_kernel_once_per_graph():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4)).eval()
    x = torch.randn(2, 8)
    compiled = torch.compile(model, backend="tvm_wm", options=untuned())
    outs = [None] * THREADS

    def first(i):
        with torch.no_grad():
            outs[i] = compiled(x)

    errors = in_threads(first)
    assert not errors, errors
    with torch.no_grad():
        for out in outs:
            torch.testing.assert_close(out, model(x))
    stats = torch_wm_backend.stats()
    assert stats["subgraphs_compiled"] == 2 * stats["graphs_compiled"], stats  # once per graph
