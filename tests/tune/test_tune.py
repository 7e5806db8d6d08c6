"""Tuning: tuned kernels give correct outputs; faults and interrupts leave a working model."""
import os

import pytest
import torch

import torch_wm_backend
from torch_wm_backend.tune import tuner

USER_BIND = os.environ.get("TVM_BIND_THREADS")  # read at collection, before any compile
USER_SPIN = os.environ.get("TVM_THREAD_POOL_SPIN_COUNT")

TRIALS = 2


def small_cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, stride=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4),
    ).eval()


def one_conv():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()).eval()


def tuned(**extra):
    return {"trials": TRIALS, "cost_model": "random", "cache_dir": None, "eager_guard": False,
            **extra}


def _run(model, x, options):
    with torch.no_grad():
        return torch.compile(model, backend="tvm_wm", options=options)(x), model(x)


def test_tuned_conv_net_is_correct_and_counts_trials():
    got, want = _run(small_cnn(), torch.randn(1, 3, 16, 16), tuned())
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    stats = torch_wm_backend.stats()
    assert stats["tasks_tuned"] >= 2
    assert 0 < stats["trials_measured"] <= TRIALS * stats["tasks_tuned"]
    assert stats["tuning_failures"] == 0


def test_tuning_with_the_world_model_gives_a_correct_model():
    got, want = _run(one_conv(), torch.randn(1, 3, 16, 16), tuned(cost_model="wm"))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    stats = torch_wm_backend.stats()
    assert stats["trials_measured"] > 0 and stats["tuning_failures"] == 0


def test_the_world_model_with_xgb_beside_it_needs_xgboost_and_says_so(monkeypatch):
    import sys

    import tvm

    from torch_wm_backend.errors import TvmWmError
    from torch_wm_backend.tune import cost_models

    monkeypatch.setitem(sys.modules, "xgboost", None)   # as where it is not installed
    with pytest.raises(TvmWmError, match="pip install"):
        cost_models.create("wm+xgb", tvm.target.Target({"kind": "llvm", "num-cores": 2}), 2)


_BERT_LAYER = """
import torch, torch_wm_backend
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertLayer
torch.manual_seed(0)
cfg = BertConfig(hidden_size=64, num_attention_heads=4, intermediate_size=128,
                 attn_implementation="eager")
layer = BertLayer(cfg).eval()
x = torch.randn(1, 16, 64)
options = {"trials": 2, "cost_model": "random", "cache_dir": None, "eager_guard": False}
with torch.no_grad():
    got = torch.compile(layer, backend="tvm_wm", options=options)(x)
    want = layer(x)
got = got[0] if isinstance(got, tuple) else got
want = want[0] if isinstance(want, tuple) else want
torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
assert torch_wm_backend.stats()["trials_measured"] > 0
"""


@pytest.mark.slow
def test_tuned_bert_layer_is_correct():
    # This failed about one run in four before the value check became unconditional: MetaSchedule
    # sometimes picked a schedule of the layer-norm kernel (rfactor + compute_at of its two
    # reductions) that computes wrong values; which one wins depends on measured times. The check
    # now replaces such a kernel by default schedules. Run in a fresh process, as a user would.
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _BERT_LAYER], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_wrong_result_is_never_used(monkeypatch, caplog):
    from torch_wm_backend.runtime import kernel

    real_call = kernel.Kernel.__call__
    monkeypatch.setattr(kernel.Kernel, "__call__",
                        lambda self, tensors: [o + 1 for o in real_call(self, tensors)])
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
    x = torch.randn(2, 8)
    got, want = _run(model, x, {"trials": 0, "cache_dir": None, "eager_guard": False})
    torch.testing.assert_close(got, want)
    stats = torch_wm_backend.stats()
    assert stats["subgraphs_wrong"] == 1 and stats["subgraphs_compiled"] == 0
    assert any("differs from PyTorch" in r.message for r in caplog.records)


def test_a_wrong_tuned_kernel_is_replaced_by_default_schedules(monkeypatch):
    # MetaSchedule can choose a schedule that computes wrong values (seen on a BERT layer norm);
    # pretend every tuned build is one: the model must still be right, and still run in TVM
    from torch_wm_backend import pipeline
    from torch_wm_backend.runtime import kernel as kernel_mod

    tuned = []  # executables built from the tuning database (kept alive: compared by identity)
    real_build, real_init, real_call = pipeline.build, kernel_mod.Kernel.__init__, kernel_mod.Kernel.__call__

    def build(mod, target, database=None):
        exe = real_build(mod, target, database)
        if database is not None:
            tuned.append(exe)
        return exe

    def init(self, executable, device):
        real_init(self, executable, device)
        self.wrong = any(executable is e for e in tuned)

    monkeypatch.setattr("torch_wm_backend.tune.tune", lambda *a, **k: None)  # no search: fast
    monkeypatch.setattr(pipeline, "build", build)
    monkeypatch.setattr(kernel_mod.Kernel, "__init__", init)
    monkeypatch.setattr(kernel_mod.Kernel, "__call__",
                        lambda self, t: [o + 1 if getattr(self, "wrong", False) else o for o in real_call(self, t)])
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
    x = torch.randn(2, 8)
    got, want = _run(model, x, {"trials": 2, "cache_dir": None, "eager_guard": False})
    torch.testing.assert_close(got, want)
    stats = torch_wm_backend.stats()
    assert len(tuned) == 1 and stats["tuned_wrong"] == 1 and stats["subgraphs_compiled"] == 1


def test_builder_failures_leave_a_working_model(monkeypatch):
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.builder import BuilderResult

    @derived_object
    class FailingBuilder(ms.builder.PyBuilder):
        def build(self, build_inputs):
            return [BuilderResult(None, "injected build failure") for _ in build_inputs]

        def shutdown(self):
            pass

    monkeypatch.setattr(tuner, "make_builder", lambda num_cores: FailingBuilder())
    got, want = _run(one_conv(), torch.randn(1, 3, 16, 16), tuned())
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    stats = torch_wm_backend.stats()
    assert stats["trials_measured"] > 0 and stats["subgraphs_compiled"] >= 1


def test_failing_search_falls_back_to_default_schedules(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated search crash")

    monkeypatch.setattr(tuner.ms, "tune_tasks", broken)
    got, want = _run(small_cnn(), torch.randn(1, 3, 16, 16), tuned())
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert torch_wm_backend.stats()["tuning_failures"] >= 1


def _ctrl_c_once_measured(sent: list) -> None:
    """A real SIGINT to this process, as Ctrl-C sends, once a trial was measured (noted in ``sent``)."""
    import os
    import signal

    if _measured() and not sent:
        sent.append(os.kill(os.getpid(), signal.SIGINT))


def test_ctrl_c_keeps_records_and_returns_a_working_model(monkeypatch):
    # Ctrl-C once the first batch was measured, from the budget check the progress callback makes
    # after each batch (Progress is a TVM-derived object: its methods are bound when the class is
    # made, so they cannot be patched)
    from torch_wm_backend.tune import Budget

    real_spent = Budget.spent
    sent = []

    def spent(self):
        _ctrl_c_once_measured(sent)
        return real_spent(self)

    monkeypatch.setattr(Budget, "spent", spent)
    got, want = _run(one_conv(), torch.randn(1, 3, 16, 16), tuned(trials=4))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    stats = torch_wm_backend.stats()
    assert sent and 0 < stats["trials_measured"] < 4 * stats["tasks_tuned"]
    assert stats["tuning_failures"] == 0


def test_time_budget_stops_tuning_early():
    got, want = _run(one_conv(), torch.randn(1, 3, 16, 16), tuned(trials=8, time_budget_s=0.01))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    stats = torch_wm_backend.stats()
    assert stats["trials_measured"] < 8 * max(1, stats["tasks_tuned"])


def test_default_kernels_are_measured_beside_the_searched_ones(tmp_path):
    # a search that finds nothing better than the default kernel must not replace it: the
    # default is recorded (a trace that samples nothing) and competes like any candidate
    from torch_wm_backend.cache import store_for
    from torch_wm_backend.lower import target_for
    from torch_wm_backend.tune.defaults import is_default

    model, x = one_conv(), torch.randn(1, 3, 16, 16)
    got, want = _run(model, x, tuned(cache_dir=str(tmp_path)))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    database = store_for(str(tmp_path)).open_records(target_for(torch.device("cpu")))
    records = database.get_all_tuning_records()
    defaults = [r for r in records if is_default(r)]
    assert defaults and all(r.run_secs for r in defaults)
    assert all(len(r.trace.insts) > 0 for r in defaults)  # the parallel default, not the bare nest
    assert len(records) > len(defaults)  # the searched candidates are there too


def test_value_check_catches_a_slightly_wrong_kernel():
    # The layer-norm schedule that slipped through CI once was off by 1.5e-3 of the output's scale
    # (0.0048 at scale 3.2); float32 reordering differs by ~1e-7 of it (measured on a BERT layer).
    from torch_wm_backend.pipeline import mismatch

    want = torch.randn(16, 64) * 3
    assert mismatch([want + 1e-6], want) == ""
    off = want.clone()
    off[3, 5] += 0.0048
    assert mismatch([off], want) == "output 0: values differ"
    assert mismatch([want.half()], want).startswith("output 0: torch.float16")
    half = want.half()
    assert mismatch([half + 1e-3], half) == ""  # half precision is held to 1e-2


def test_progress_redraws_only_when_trials_were_measured(capsys):
    from torch_wm_backend.tune.progress import Progress

    bar = Progress(total=4, names=["fused_matmul_add"], spent=None, desc="tuning")
    capsys.readouterr()
    for _ in range(50):  # rounds where the scheduler measured nothing for a spent design space
        bar._inst.apply(None, 0, [], [], [])  # the Python method, as the scheduler calls it
    assert capsys.readouterr().err == ""
    assert bar.measured == 0
    bar.close()


def _relax_module(op: str, shapes: list):
    """A one-kernel Relax module: ``relax.op.<op>`` of float32 inputs of these shapes."""
    import operator

    from tvm import relax

    bb = relax.BlockBuilder()
    args = [relax.Var(f"x{i}", relax.TensorType(shape, "float32")) for i, shape in enumerate(shapes)]
    with bb.function("main", args):
        with bb.dataflow():
            out = bb.emit_output(operator.attrgetter(op)(relax.op)(*args))
        bb.emit_func_output(out)
    return bb.get()


def _matmul_search(monkeypatch, trials: int):
    """A 16x16 matrix product to search with the random cost model, one trial per round (a search
    of several rounds): settings, target, an empty database, the module and its task."""
    from tvm.s_tir import meta_schedule as ms

    from torch_wm_backend.lower import target_for
    from torch_wm_backend.settings import Settings
    from torch_wm_backend.tune import tasks

    monkeypatch.setattr(tuner, "per_round", lambda trials: 1)
    settings = Settings(trials=trials, time_budget_s=None, cost_model="random", cache_dir=None)
    target = target_for(torch.device("cpu"))
    mod = _relax_module("matmul", [(16, 16), (16, 16)])
    [task], _ = tasks.merged([mod], target)
    return settings, target, ms.database.MemoryDatabase(), mod, task


def _measured() -> int:
    return torch_wm_backend.stats()["trials_measured"]


def _cut_after_first_trial(how: str):
    """A time budget whose clock, once a trial was measured, says the budget is spent, or raises
    as Ctrl-C or a crashed search would."""
    from torch_wm_backend.tune import Budget

    def clock() -> float:
        if _measured() and how == "ctrl-c":
            raise KeyboardInterrupt
        if _measured() and how == "crash":
            raise RuntimeError("injected failure")
        return float(_measured())  # one second per measured trial: the budget is spent at the first

    return Budget(1.0, clock=clock)


@pytest.mark.parametrize("how", ["time budget", "ctrl-c", "crash"])
def test_a_search_cut_short_resumes_with_the_trials_it_lacks(monkeypatch, how):
    from torch_wm_backend.tune import tasks

    settings, target, database, mod, task = _matmul_search(monkeypatch, trials=3)

    tuner.tune([mod], target, settings, database, _cut_after_first_trial(how))
    assert _measured() == 1 and tasks.measured([task], database) == [1]
    tuner.tune([mod], target, settings, database)  # searched again: 2 more trials, not 3
    assert _measured() == 3 and tasks.measured([task], database) == [3]
    tuner.tune([mod], target, settings, database)  # finished: not searched again
    assert _measured() == 3 and torch_wm_backend.stats()["tasks_tuned"] == 2


def test_a_resumed_search_that_measures_the_default_kernel_again_counts_it_as_a_trial(monkeypatch):
    # MetaSchedule seeds a search with the database's best records and does not skip the measured
    # ones, so a resumed search may measure the default kernel (a trace that samples nothing) again:
    # that was a trial, and the resume that follows must not ask for it once more
    from tvm.s_tir import meta_schedule as ms

    from torch_wm_backend.tune import tasks
    from torch_wm_backend.tune.defaults import is_default

    settings, target, database, mod, task = _matmul_search(monkeypatch, trials=1)
    tuner.tune([mod], target, settings, database)
    [default] = [r for r in database.get_all_tuning_records() if is_default(r)]
    assert tasks.measured([task], database) == [1]
    database.commit_tuning_record(ms.database.TuningRecord(  # the search measured it again
        default.trace, default.workload, default.run_secs, default.target, default.args_info))
    assert tasks.measured([task], database) == [2]


def test_ctrl_c_stops_the_graphs_tuning_cleanly_and_it_resumes_later(monkeypatch):
    # a real SIGINT in the middle of a search: the search ends after the round being measured
    # (no failure), the graph's later tuning is skipped, the next run resumes the lacking trials
    import signal

    from torch_wm_backend.tune import Budget, tasks

    settings, target, database, mod, task = _matmul_search(monkeypatch, trials=4)
    sent = []

    def clock() -> float:  # read by the progress callback after each measured round
        _ctrl_c_once_measured(sent)
        return 0.0

    before = signal.getsignal(signal.SIGINT)
    budget = Budget(1e9, clock=clock)
    tuner.tune([mod], target, settings, database, budget)
    stopped_at = _measured()
    assert sent and 1 <= stopped_at < 4 and budget.spent()
    assert torch_wm_backend.stats()["tuning_failures"] == 0
    assert signal.getsignal(signal.SIGINT) is before  # the user's handler is back
    tuner.tune([mod], target, settings, database, budget)  # the same graph: no more tuning
    assert _measured() == stopped_at
    tuner.tune([mod], target, settings, database)  # the next run resumes
    assert tasks.measured([task], database) == [4]


def test_a_space_smaller_than_the_budget_is_searched_once(tmp_path):
    # relu of 4 values has one candidate: its search ends by itself after it, short of 8 trials,
    # and must not start again in every subgraph or process
    from torch_wm_backend.cache import records
    from torch_wm_backend.lower import target_for
    from torch_wm_backend.settings import Settings

    settings = Settings(trials=8, time_budget_s=None, cost_model="random", cache_dir=None)
    target = target_for(torch.device("cpu"))
    mod = _relax_module("nn.relu", [(4,)])
    folder = str(records.records_dir(tmp_path, target))
    tuner.tune([mod], target, settings, records.open_records(tmp_path, target), records_dir=folder)
    assert 0 < _measured() < 8
    assert len(records.read_finished(folder)) == 1
    first = _measured()
    tuner.tune([mod], target, settings, records.open_records(tmp_path, target), records_dir=folder)
    assert _measured() == first and torch_wm_backend.stats()["tasks_tuned"] == 1


def test_a_graphs_tasks_share_their_trials(monkeypatch):
    # relu of 4 values has one candidate: the matmul gets the trials it leaves (a pooled budget,
    # spent by MetaSchedule's gradient task scheduler), and neither is searched again
    from tvm.s_tir import meta_schedule as ms

    from torch_wm_backend.lower import target_for
    from torch_wm_backend.settings import Settings
    from torch_wm_backend.tune import tasks

    monkeypatch.setattr(tuner, "per_round", lambda trials: 1)
    settings = Settings(trials=3, time_budget_s=None, cost_model="random", cache_dir=None)
    target, database = target_for(torch.device("cpu")), ms.database.MemoryDatabase()
    mods = [_relax_module("nn.relu", [(4,)]), _relax_module("matmul", [(16, 16), (16, 16)])]
    found, _ = tasks.merged(mods, target)
    tuner.tune(mods, target, settings, database)
    counts = dict(zip((t.task_name for t in found), tasks.measured(found, database)))
    assert counts["matmul"] == 5 and _measured() == 6
    tuner.tune(mods, target, settings, database)
    assert _measured() == 6
    # a larger budget adds its difference to the pool, though the matmul holds more than 4 already
    more = Settings(trials=4, time_budget_s=None, cost_model="random", cache_dir=None)
    tuner.tune(mods, target, more, database)
    counts = dict(zip((t.task_name for t in found), tasks.measured(found, database)))
    assert counts["matmul"] > 5


def test_runner_workers_run_tvm_on_as_many_threads_as_pytorch(monkeypatch):
    # a worker that inherited a stale count (here 1) still agrees: the runner's initializer sets it
    from torch_wm_backend.settings import Settings

    monkeypatch.setenv("TVM_NUM_THREADS", "1")
    from torch_wm_backend.lower.target import cpu_target

    runner = tuner.make_runner(Settings(cache_dir=None), cpu_target())
    # each CPU measurement starts with the weights flushed from the caches, as inside a model
    assert runner.evaluator_config.enable_cpu_cache_flush and runner.evaluator_config.number == 1

    def tvm_threads():
        import tvm

        return int(tvm.get_global_func("runtime.NumThreads")())

    try:
        assert runner.pool.submit(tvm_threads).result() == torch.get_num_threads()
    finally:
        runner.pool.shutdown()


def test_tvm_threads_of_a_new_thread_follow_pytorch():
    # TVM sizes a thread's pool when that thread first runs a kernel: test in a fresh thread
    import threading

    from torch_wm_backend import threads
    from torch_wm_backend.settings import user_tvm_threads

    if user_tvm_threads():
        pytest.skip("TVM_NUM_THREADS was set by the user: TVM follows it, not PyTorch")
    threads.sync()
    seen = []
    worker = threading.Thread(target=lambda: seen.append(threads.tvm_pool_threads()))
    worker.start()
    worker.join()
    assert seen == [torch.get_num_threads()]
    # its idle workers neither bound to cores nor spinning, where they would take PyTorch's cores
    # (threads.py), unless the user chose
    assert os.environ[threads.BIND_ENV] == (USER_BIND or "0")
    assert os.environ[threads.SPIN_ENV] == (USER_SPIN or "0")
