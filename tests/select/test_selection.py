"""The select stage: every decision path, driven by a fake timer (tests/select/fake_timer.py)."""
import functools

import pytest
import torch

import torch_wm_backend
from torch_wm_backend.backend import tvm_wm
from torch_wm_backend.select import MARGIN, Timing

from fake_timer import FakeTimer


def two_layers():
    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8)).eval()


def compile_with(model, timer, **options):
    # the graph's race alone: no race between TVM's products and PyTorch's before it
    options = {"trials": 0, "cache_dir": None, "matmul": "tvm", **options}
    return torch.compile(model, backend=functools.partial(tvm_wm, timer=timer), options=options)


def calls_twice(compiled, model, x):
    """First call (it decides), then a second; returns the kernel calls of the second."""
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
        before = torch_wm_backend.stats()["kernel_calls"]
        torch.testing.assert_close(compiled(x), model(x))
    return torch_wm_backend.stats()["kernel_calls"] - before


def test_the_margin_rule():
    assert Timing(1.0, 1.0).candidate_wins is False  # a tie keeps the reference
    assert Timing(1.0, 1.0 + MARGIN).candidate_wins is False
    assert Timing(1.0, 1.0 + 2 * MARGIN).candidate_wins is True


def test_the_whole_graph_as_one_module_is_raced_first():
    timer = FakeTimer(default_win=True)
    model, x = two_layers(), torch.randn(2, 8)
    ran = calls_twice(compile_with(model, timer), model, x)
    stats = torch_wm_backend.stats()
    assert ran == 1 and stats["subgraphs_failed"] == 0  # one kernel: the whole graph
    assert stats["graphs_kept_compiled"] == stats["graphs_one_module"] == 1
    assert stats["context_kept_tvm"] == 2
    assert timer.compared == [True, True]  # two races in a row, one decision
    assert stats["subgraphs_compiled"] == 1  # the partitioned form was never built


def test_where_the_whole_module_loses_the_subgraphs_race():
    timer = FakeTimer(wins=[False], default_win=True)
    model, x = two_layers(), torch.randn(2, 8)
    ran = calls_twice(compile_with(model, timer), model, x)
    stats = torch_wm_backend.stats()
    assert ran == 2 and stats["subgraphs_failed"] == 0  # both subgraphs ran in TVM
    assert stats["graphs_kept_compiled"] == 1 and stats["context_kept_tvm"] == 2
    assert stats["graphs_one_module"] == 0
    assert stats["subgraphs_compiled"] == 3  # the module, then the partitioned form's two
    assert timer.compared == [False, True, True]


def test_a_graph_that_loses_runs_dynamos_graph_and_no_kernel():
    timer = FakeTimer(default_win=False)
    model, x = two_layers(), torch.randn(2, 8)
    ran = calls_twice(compile_with(model, timer), model, x)
    stats = torch_wm_backend.stats()
    assert ran == 0 and stats["graphs_kept_eager"] == 1 and stats["context_kept_tvm"] == 0
    # the whole module, then all 2 winners, then the best 1: each lost its first race
    assert timer.compared == [False, False, False]


def test_a_subgraph_slower_in_place_is_left_to_pytorch():
    model, x = two_layers(), torch.randn(2, 8)
    timer = FakeTimer(gains=lambda position: 1e-3 if position == 0 else -1e-3, wins=[False],
                      default_win=True)
    ran = calls_twice(compile_with(model, timer), model, x)
    stats = torch_wm_backend.stats()
    assert len(timer.names) == 2
    assert ran == 1 and stats["context_kept_tvm"] == 1 and stats["context_kept_eager"] == 1


def test_halving_races_the_best_half_when_all_winners_lose():
    model = torch.nn.Sequential(*[m for _ in range(4) for m in (torch.nn.Linear(8, 8), torch.nn.ReLU())]).eval()
    x = torch.randn(2, 8)
    timer = FakeTimer(wins=[False, False, False, True, True])  # whole, 4, 2 lose; 1 wins twice
    ran = calls_twice(compile_with(model, timer), model, x)
    assert timer.compared == [False, False, False, True, True]
    assert ran == 1 and torch_wm_backend.stats()["context_kept_tvm"] == 1


def test_the_choice_is_cached_and_a_warm_start_counts_its_hit(tmp_path):
    model, x = two_layers(), torch.randn(2, 8)
    timer = FakeTimer(default_win=True)
    calls_twice(compile_with(model, timer, cache_dir=str(tmp_path)), model, x)
    cold = torch_wm_backend.stats()
    torch._dynamo.reset()
    torch_wm_backend.reset_stats()
    again = FakeTimer(default_win=False)  # would choose PyTorch if it were asked
    ran = calls_twice(compile_with(model, again, cache_dir=str(tmp_path)), model, x)
    warm = torch_wm_backend.stats()
    assert again.compared == [] and again.in_place_calls == 0  # applied without timing
    assert ran == 1 and warm["graphs_kept_compiled"] == 1  # the whole graph, as chosen
    assert cold["graphs_one_module"] == warm["graphs_one_module"] == 1
    # the choice and the one module it names: nothing traced, no subgraph loaded
    assert warm["cache_hits"] == 2 and warm["cache_misses"] == 0 and warm["graphs_compiled"] == 0


def test_a_warm_start_of_a_graph_that_lost_traces_nothing_and_counts_a_hit(tmp_path):
    model, x = two_layers(), torch.randn(2, 8)
    calls_twice(compile_with(model, FakeTimer(default_win=False), cache_dir=str(tmp_path)), model, x)
    torch._dynamo.reset()
    torch_wm_backend.reset_stats()
    ran = calls_twice(compile_with(model, FakeTimer(), cache_dir=str(tmp_path)), model, x)
    stats = torch_wm_backend.stats()
    assert ran == 0 and stats["graphs_compiled"] == 0  # nothing traced, partitioned or loaded
    assert stats["cache_hits"] == 1 and stats["cache_misses"] == 0
    assert stats["graphs_kept_eager"] == 1


def test_a_choice_made_on_a_busy_machine_is_not_cached(tmp_path):
    model, x = two_layers(), torch.randn(2, 8)
    calls_twice(compile_with(model, FakeTimer(default_win=True, busy=True), cache_dir=str(tmp_path)),
                model, x)
    torch._dynamo.reset()
    torch_wm_backend.reset_stats()
    timer = FakeTimer(default_win=True)
    calls_twice(compile_with(model, timer, cache_dir=str(tmp_path)), model, x)
    assert timer.compared == [True, True]  # decided again


def test_a_failure_while_timing_keeps_every_kernel(caplog):
    model, x = two_layers(), torch.randn(2, 8)
    ran = calls_twice(compile_with(model, FakeTimer(fail=True)), model, x)
    assert ran == 2
    assert any("timing the graph against eager PyTorch failed" in r.message for r in caplog.records)


def test_timing_leaves_the_random_state_alone():
    # deciding runs the graph many times, dropout included: it must draw as one call does
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.5)).train()
    x = torch.randn(2, 8)
    timer = FakeTimer(default_win=True)
    compiled = compile_with(model, timer)
    states = []
    for _ in range(2):  # the first call decides, the second does not
        torch.manual_seed(1)
        with torch.no_grad():
            compiled(x)
        states.append(torch.random.get_rng_state())
    assert timer.compared  # it did decide
    assert torch.equal(states[0], states[1])


class Counter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.linear(x).relu()


def test_a_graph_that_writes_its_inputs_runs_once_per_call():
    model, x = Counter().eval(), torch.randn(2, 8)
    timer = FakeTimer(default_win=True)
    compiled = compile_with(model, timer)
    with torch.no_grad():
        for _ in range(2):
            torch.testing.assert_close(compiled(x), model.linear(x).relu())
    assert model.calls.item() == 2 and timer.compared == []


@pytest.mark.parametrize("win", [True, False])
def test_training_graphs_race_the_aten_graph_then_give_way_to_dynamos(win):
    model, x = two_layers().train(), torch.randn(2, 8)
    timer = FakeTimer(default_win=win)
    compiled = compile_with(model, timer)
    for _ in range(2):  # the forward and the backward graph each decide on their first call
        compiled(x).sum().backward()
    stats = torch_wm_backend.stats()
    assert timer.compared  # forward and backward graphs each raced their ATen graph
    assert (stats["context_kept_tvm"] > 0) == win
    # where neither keeps a subgraph in TVM, Dynamo's graph runs with eager autograd
    assert stats["graphs_kept_compiled"] == int(win) and stats["graphs_kept_eager"] == int(not win)
    before = stats["kernel_calls"]
    compiled(x).sum().backward()
    assert (torch_wm_backend.stats()["kernel_calls"] > before) == win
    grads = [p.grad.clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    for _ in range(3):
        model(x).sum().backward()
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad)


@pytest.mark.parametrize("step_wins", [True, False])
def test_a_training_step_with_tvm_kernels_races_eager_autograd(step_wins):
    # forward and backward keep subgraphs in TVM (their races won); then a whole step races
    # Dynamo's graph with eager autograd. The race runs the steps several times: batch norm's
    # running statistics must end as two plain steps leave them, and no .grad may change.
    import copy

    import zoo

    model, x = zoo.cnn_bn().train(), torch.randn(4, 3, 16, 16)
    reference = copy.deepcopy(model)
    timer = FakeTimer(default_win=True)
    compiled = compile_with(model, timer)
    compiled(x).sum().backward()
    timer.default_win = step_wins
    raced = len(timer.compared)
    compiled(x).sum().backward()
    assert timer.compared[raced:] == [step_wins] * (2 if step_wins else 1)  # RACES in a row
    stats = torch_wm_backend.stats()
    assert stats["context_kept_tvm"] > 0
    assert stats["graphs_kept_compiled"] == int(step_wins)
    assert stats["graphs_kept_eager"] == int(not step_wins)
    for _ in range(2):
        reference(x).sum().backward()
    for (name, b), want in zip(model.named_buffers(), reference.buffers()):
        torch.testing.assert_close(b, want, atol=1e-5, rtol=1e-4, msg=name)
    for (name, p), want in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, want.grad, atol=1e-4, rtol=1e-3, msg=name)
