"""Tune one Relax module's kernels with MetaSchedule's own search, into a database.

Faults never reach the user: a candidate that fails to build or run is discarded by MetaSchedule; a
task whose search fails keeps its default schedule; Ctrl-C keeps the records measured so far.
A task counts as searched only once its search ended by itself (its trials measured, or its space
exhausted); one cut short by Ctrl-C, a crash or the time budget resumes on the next call with the
trials it still lacks.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading

from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.utils import fork_seed

from .. import counters, logs, threads
from ..lower.target import _cpu_cores
from ..settings import Settings
from . import cost_models, defaults, progress, search, tasks as task_lib
from .budget import Budget
from .builder import PersistentBuilder
from .intrinsics import tune_context

log = logging.getLogger("torch_wm_backend")

BUILD_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 10.0
COLD_REPEATS = 3  # calls per CPU measurement, each after a cache flush (make_runner)
POOL_CAP = 4  # a task of a shared search measures at most this many times its share


def _contexts(todo: list, weights: list, settings: Settings, num_cores: int,
              plan: search.SearchPlan = search.DEFAULT, cost_model=None):
    """One TuneContext per task. Built here rather than by extracted_tasks_to_tune_contexts, whose
    logging setup crashes when its logger has an unnamed handler (pytest's, a user's) and prints
    every trial; our progress bar and table say it shorter. MetaSchedule's warnings still show."""
    search_log = logging.getLogger("torch_wm_backend.metaschedule")
    if search_log.level == logging.NOTSET:
        search_log.setLevel(logging.WARNING)
    contexts = [
        tune_context(mod=task.dispatched[0], target=task.target, space_generator="post-order-apply",
                     search_strategy=search.make_search(settings.trials, plan, cost_model),
                     task_name=task.task_name, logger=search_log, rand_state=seed,
                     num_threads=num_cores).clone()
        for task, seed in zip(todo, fork_seed(settings.seed, n=len(todo)))
    ]
    return contexts, weights


def per_round(trials: int) -> int:
    """Candidates measured per search round: at least 4 rounds from 32 trials on, so the cost
    model learns from measurements before it picks again (one round of 64 would leave XGB, which
    starts untrained, picking at random)."""
    return max(1, min(64, trials, max(8, trials // 4)))


def make_builder(num_cores: int):
    return PersistentBuilder(max_workers=num_cores, timeout_sec=BUILD_TIMEOUT_S)


def worker_threads(n: int):
    """A pool initializer that makes its worker's TVM kernels run on ``n`` threads, as this
    process's do (threads.py): a worker inherits TVM_NUM_THREADS when it starts, but one started
    before the count changed would not agree. A closure, so cloudpickle sends it by value and the
    worker need not import this package."""
    def initialize():
        import os

        os.environ["TVM_NUM_THREADS"] = str(n)

    return initialize


def make_runner(settings: Settings, target):
    """Measures candidates. On a CPU, each of ``COLD_REPEATS`` calls starts with every argument but
    the first (the weights, the output) flushed from the caches (TVM's
    ``cache_flush_cpu_non_first_arg``): inside a model a kernel reads weights the other kernels
    evicted, and schedules chosen with them hot lost that race (BERT-base's matrix products, tuned
    hot, ran ×1.4–×1.6 their measured time inside the module, 2.4–9.4 MB of weights each)."""
    cpu = target.kind.name == "llvm"
    evaluator = ms.runner.EvaluatorConfig(number=1 if cpu else 3, repeat=COLD_REPEATS if cpu else 1,
                                          min_repeat_ms=0 if cpu else 50, enable_cpu_cache_flush=cpu)
    if settings.runner is None:
        return ms.runner.LocalRunner(timeout_sec=RUN_TIMEOUT_S, evaluator_config=evaluator,
                                     initializer=worker_threads(threads.count()))
    rpc = settings.runner["rpc"]
    host, _, port = rpc["tracker"].rpartition(":")
    config = ms.runner.RPCConfig(tracker_host=host, tracker_port=int(port), tracker_key=rpc["key"],
                                 session_priority=1, session_timeout_sec=int(rpc.get("timeout", 60)))
    return ms.runner.RPCRunner(rpc_config=config, evaluator_config=evaluator,
                               max_workers=int(rpc.get("workers", 2)))


def tune(mods: list, target, settings: Settings, database, budget: Budget | None = None,
         name: str = "", records_dir=None):
    """Measure up to ``settings.trials`` candidates per task of ``mods``, less those ``database``
    holds already, for the tasks whose search has not finished (``records_dir``: the on-disk
    database's folder, if any, where finished searches are marked for every process)."""
    threads.sync()  # before any builder or runner pool: their workers inherit the thread count
    budget = budget or Budget(settings.time_budget_s)
    if budget.spent():
        log.info("%s: tuning stopped (time budget spent, or Ctrl-C); default schedules for untuned "
                 "kernels", name)
        return database
    with logs.quiet_native():
        all_tasks, all_weights = task_lib.merged(mods, target)
    missing = task_lib.untuned(all_tasks, database, settings.trials, records_dir)
    if not missing:
        return database
    picked = list(missing)
    todo = [all_tasks[i] for i in picked]
    weights = [all_weights[i] for i in picked]
    num_cores = _cpu_cores()
    work_dir = tempfile.mkdtemp(prefix="tvm_wm_tune_")
    bar = progress.Progress(sum(missing.values()), [], budget.spent,
                            desc=f"tuning {name or 'subgraph'} ({len(todo)} tasks)")
    counters.bump("tasks_tuned", len(todo))
    builder, runner = make_builder(num_cores), make_runner(settings, target)
    finished = []  # tasks whose search ended by itself
    with logs.quiet_search(), _ctrl_c_stops(budget, name):  # MetaSchedule's tables: debug level
        try:
            cost_model = cost_models.create(settings.cost_model, target, num_cores)
            for trials, group in _by_missing([missing[i] for i in picked]):
                if budget.spent():
                    break
                _search([todo[j] for j in group], [weights[j] for j in group], trials, settings,
                        num_cores, work_dir, builder, runner, database, cost_model, bar, finished)
        except KeyboardInterrupt:
            budget.stop()  # the graph's other subgraphs are not tuned either
            log.warning("%s: tuning interrupted; keeping the %d trials measured so far", name, bar.measured)
        except Exception as err:  # the search failed: the kernels keep their default schedules
            counters.bump("tuning_failures")
            log.warning("%s: tuning failed (%s: %s); default schedules where no record exists", name,
                        type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            log.debug("%s: the failure in full", name, exc_info=True)
        finally:
            bar.close()
        try:
            _defaults(todo, database, name, builder, runner)
        finally:
            builder.shutdown()
            shutil.rmtree(work_dir, ignore_errors=True)
    task_lib.mark_finished(finished, settings.trials, database, records_dir)
    _log_table(todo, weights, database, bar)
    return database


@contextlib.contextmanager
def _ctrl_c_stops(budget: Budget, name: str):
    """Ctrl-C during a search spends ``budget``: the progress callback then ends every task after
    the round being measured, as at a time budget's end, so the search stops cleanly (an interrupt
    raised inside MetaSchedule's native loop surfaces as a bare RuntimeError, and a second one
    there crashed the process), the records measured so far are kept and resume on the next run,
    and the graph's other subgraphs are not tuned. A second Ctrl-C interrupts as usual. Only where
    Python delivers signals: the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # installed from C: nothing of Python's to hand back
        previous = signal.default_int_handler

    def stop(signum, frame):
        log.warning("%s: Ctrl-C: tuning stops after the round being measured (again: interrupt "
                    "now)", name)
        budget.stop()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _by_missing(missing: list) -> list:
    """(trials, positions) of the tasks missing as many trials, most first: MetaSchedule gives every
    task of one search the same budget, so tasks resuming with different counts are searched apart
    (a first search is one group)."""
    groups: dict = {}
    for j, n in enumerate(missing):
        groups.setdefault(n, []).append(j)
    return sorted(groups.items(), reverse=True)


def _search(tasks, weights, trials, settings, num_cores, work_dir, builder, runner, database,
            cost_model, bar, finished: list) -> None:
    """One MetaSchedule search of ``trials`` more candidates per task, pooled: the tasks share
    ``trials × tasks`` measurements, and MetaSchedule's gradient task scheduler gives each round to
    the task whose weighted latency fell most, up to ``POOL_CAP`` times a share — so a heavy
    convolution gets the trials a pooling kernel, whose space ends after a few, leaves. Adds to
    ``finished`` the tasks whose search ended by itself, not ended by the budget (``bar.stopped``)
    — nor, if it raises (Ctrl-C, a crash), still running then."""
    contexts, weights = _contexts(tasks, weights, settings, num_cores)
    scheduler = ms.TaskScheduler.create("gradient")
    bar.start([t.task_name for t in tasks])
    try:
        ms.tune_tasks(
            tasks=contexts,
            task_weights=weights,
            work_dir=work_dir,
            max_trials_global=trials * len(tasks),
            max_trials_per_task=trials * min(POOL_CAP, len(tasks)),
            num_trials_per_iter=per_round(settings.trials),
            builder=builder,
            runner=runner,
            database=database,
            cost_model=cost_model,
            measure_callbacks=[*ms.MeasureCallback.create("default"), bar],
            task_scheduler=scheduler,
        )
    finally:
        finished += [tasks[i] for i, record in enumerate(scheduler.tasks_)
                     if record.is_terminated and i not in bar.stopped]


def _defaults(tasks, database, name: str, builder, runner) -> None:
    """The default kernels compete too: a search that found nothing better keeps them."""
    try:
        defaults.measure_defaults(tasks, database, builder, runner)
    except KeyboardInterrupt:
        log.warning("%s: interrupted while measuring default kernels", name)
    except Exception as err:
        log.warning("%s: measuring the default kernels failed (%s); continuing", name, err)


def _log_table(todo, weights, database, bar) -> None:
    log.info("tuned %d kernels, %d trials:\n%s", len(todo), bar.measured,
             progress.table(progress.rows(todo, weights, database)))
