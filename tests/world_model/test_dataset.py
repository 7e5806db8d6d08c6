import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from torch_wm_backend.world_model import trainer
from torch_wm_backend.world_model.adapter import default_config
from torch_wm_backend.world_model.dataset import TaskGroup, Transition, ranking_metrics
from torch_wm_backend.world_model.network import WorldModel
from torch_wm_backend.world_model.tokenizer import NUM_FEATS, TokenizedTrace


def _group(costs):
    return TaskGroup("net", "k", 1, np.zeros(default_config().state_dim, np.float32), [], np.asarray(costs))


def test_tied_scores_count_half_so_database_order_cannot_leak():
    # JSONDatabase returns records sorted by run time: constant scores must not look perfect or awful.
    g = _group([1.0, 2.0, 3.0, 4.0])
    assert ranking_metrics([g], [np.zeros(4)])["pairwise_acc"] == 0.5
    assert ranking_metrics([g], [np.array([4.0, 3.0, 2.0, 1.0])])["pairwise_acc"] == 1.0
    assert ranking_metrics([g], [np.array([4.0, 3.0, 2.0, 1.0])])["top1"] == 1.0


def _tokens(rng, n):
    return TokenizedTrace(rng.integers(2, 40, n), rng.integers(0, 30, n),
                          rng.random((n, NUM_FEATS)).astype(np.float32), np.arange(n))


def _random_groups(rng, n_groups, n):
    """Tasks of n random traces with random costs."""
    groups = []
    for _ in range(n_groups):
        g = _group(rng.random(n) + 0.1)
        g.tokens = [_tokens(rng, int(rng.integers(3, 9))) for _ in range(n)]
        groups.append(g)
    return groups


def test_training_losses_backpropagate():
    rng = np.random.default_rng(0)
    cfg = default_config()
    net = WorldModel(cfg)
    g = _group(rng.random(6) + 0.1)
    g.tokens = [_tokens(rng, int(rng.integers(3, 9))) for _ in range(6)]
    tr = Transition(g.state, _tokens(rng, 8), np.array([0, 7]),
                    rng.random((2, cfg.dyn_dim)).astype(np.float32))
    hw = torch.zeros(1, cfg.hw_dim)
    loss = trainer._rank_batch(net, [g], hw) + trainer._dyn_batch(net, [tr])
    loss.backward()
    assert torch.isfinite(loss) and net.t_out.weight.grad.abs().sum() > 0


def test_training_is_seeded_apart_from_the_global_rngs():
    import random

    groups = _random_groups(np.random.default_rng(0), 3, 6)
    hw_np = np.zeros(default_config().hw_dim, np.float32)
    torch.manual_seed(7)
    random.seed(7)
    before = torch.random.get_rng_state(), random.getstate()
    nets = [trainer._train_one(groups, [], [], torch.from_numpy(hw_np)[None], hw_np, 4, 1e-3, 0.0, 3,
                               lambda net: None)[0] for _ in range(2)]
    assert torch.equal(torch.random.get_rng_state(), before[0]) and random.getstate() == before[1]
    a, b = (n.state_dict() for n in nets)
    assert all(torch.equal(a[k], b[k]) for k in a), "one seed, one network"


def test_without_validation_networks_the_last_state_is_kept():
    groups = _random_groups(np.random.default_rng(1), 2, 5)
    hw_np = np.zeros(default_config().hw_dim, np.float32)
    saved = []
    net, best, history = trainer._train_one(groups, [], [], torch.from_numpy(hw_np)[None], hw_np, 3,
                                            1e-3, 0.0, 0, lambda n: saved.append(
                                                {k: v.clone() for k, v in n.state_dict().items()}))
    assert [h["step"] for h in history] == [3] and "pairwise_acc" not in history[0]
    assert len(saved) == 1 and all(torch.equal(saved[0][k], v) for k, v in net.state_dict().items())
    assert best < 0   # nothing was validated


def test_a_network_of_other_sizes_trains_and_loads_as_it_was_saved(tmp_path):
    import dataclasses

    from torch_wm_backend.world_model.adapter import load_weights, save_weights

    cfg = dataclasses.replace(default_config(), d_z=8, d_hidden=16)
    groups = _random_groups(np.random.default_rng(2), 2, 5)
    hw_np = np.zeros(cfg.hw_dim, np.float32)
    net = trainer._train_one(groups, [], [], torch.from_numpy(hw_np)[None], hw_np, 2, 1e-3, 0.0, 0,
                             lambda n: None, cfg=cfg)[0]
    assert net.encoder[-1].out_features == 8 and net.head[0].out_features == 16
    save_weights(net, tmp_path / "w.pt")
    back = load_weights(tmp_path / "w.pt")
    assert back.cfg == cfg and all(torch.equal(v, back.state_dict()[k]) for k, v in net.state_dict().items())


def test_an_unknown_validation_network_is_a_clear_error(tmp_path):
    from torch_wm_backend import TvmWmError
    from torch_wm_backend.world_model import dataset

    for net in ("a", "b", "held"):
        (tmp_path / net).mkdir()
        (tmp_path / net / "database_workload.json").write_text("")
    dataset.record_eval_networks(tmp_path, ["held"])
    for val in (["c"], ["held"]):
        with pytest.raises(TvmWmError, match=f"--val {val[0]}: not training networks.*a, b.*held"):
            trainer.train(tmp_path, tmp_path / "w.pt", val_networks=val)


def test_records_say_their_thread_count_and_are_not_mixed(tmp_path):
    from torch_wm_backend import TvmWmError
    from torch_wm_backend.world_model import dataset

    for net, n in (("a", 2), ("b", 2)):
        dataset.record_threads(tmp_path / net, n)
    assert dataset.check_threads(tmp_path, ["a", "b"]) == 2
    (tmp_path / "old").mkdir()  # records from before thread counts were written: one thread
    with pytest.raises(TvmWmError, match="different thread counts"):
        dataset.check_threads(tmp_path, ["a", "old"])
    (tmp_path / "a" / "database_tuning_record.json").write_text("")
    with pytest.raises(TvmWmError, match="on 2 thread"):
        dataset.record_threads(tmp_path / "a", 1)  # adding to them at another count


def test_records_are_not_added_to_from_another_cpu(tmp_path):
    from torch_wm_backend import TvmWmError
    from torch_wm_backend.world_model import dataset

    dataset.record_threads(tmp_path / "a", 2, "znver4")
    (tmp_path / "a" / "database_tuning_record.json").write_text("")
    dataset.record_threads(tmp_path / "a", 2, "znver4")  # the same machine resumes
    assert dataset.cpu_of(tmp_path / "a") == "znver4"
    dataset.record_threads(tmp_path / "a", 2)  # a CPU not known this time: the known one stays
    assert dataset.cpu_of(tmp_path / "a") == "znver4"
    with pytest.raises(TvmWmError, match="znver4 CPU, not rocketlake"):
        dataset.record_threads(tmp_path / "a", 2, "rocketlake")


def test_the_held_out_networks_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    from torch_wm_backend.world_model import dataset

    monkeypatch.chdir(tmp_path)  # no benchmarks/ here
    assert {"resnet50", "mobilenet_v2", "bert_base"} <= dataset.eval_networks(tmp_path)
    dataset.record_eval_networks(tmp_path, ["net_x"])
    assert dataset.eval_networks(tmp_path) == {"net_x"}


def test_a_batch_is_what_one_collector_run_measured():
    from torch_wm_backend.world_model.dataset import batch_ids

    # lines 0-5 from before batches were recorded: task 0 topped up by a later run (lines 4-5);
    # lines 6-9 one recorded batch of tasks 2 and 0
    assert batch_ids([0, 0, 1, 1, 0, 0, 2, 2, 0, 0], [[6, 10]]) == [0, 0, 1, 1, 2, 2, 3, 3, 3, 3]
    assert batch_ids([0, 0, 0, 0], [[0, 2], [2, 4]]) == [0, 0, 1, 1]   # one task, two runs


def test_a_tasks_records_measured_in_two_runs_rank_apart(tmp_path, cpu_task):
    """This host's speed drifts between days: a task topped up by a later collector run gives two
    groups (labels min/cost within each), not one whose best is whichever day ran faster."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from torch_wm_backend.world_model import dataset

    ctx, cands = cpu_task
    (tmp_path / "net").mkdir()
    db = ms.database.JSONDatabase(work_dir=str(tmp_path / "net"))
    wl = db.commit_workload(ctx.mod)
    args = ms.arg_info.ArgInfo.from_prim_func(ctx.mod["main"])
    for run, scale in enumerate((1.0, 1.5)):   # the second run on a slower day
        first = dataset.record_count(tmp_path / "net")
        for i, c in enumerate(cands[8 * run:8 * run + 8]):
            db.commit_tuning_record(ms.database.TuningRecord(
                c.sch.trace, wl, [tvm.tirx.FloatImm("float64", scale * (1 + i) * 1e-4)], ctx.target, args))
        dataset.record_batch(tmp_path / "net", first, dataset.record_count(tmp_path / "net"))
    groups = dataset.load_groups(tmp_path, ["net"], ctx.target)
    assert sorted(g.batch for g in groups) == [0, 1] and len({g.key for g in groups}) == 1
    assert sorted(g.costs.min() for g in groups) == pytest.approx([1e-4, 1.5e-4])
    assert all(len(g.costs) == 8 for g in groups)
    read = ms.database.JSONDatabase(work_dir=str(tmp_path / "net")).get_all_tuning_records()
    assert sum(len(g.costs) for g in groups) == len(read) == 16   # the database's own reading
    (mod, recs), = dataset.records_by_task(tmp_path / "net").values()   # its batches together
    assert sorted(float(r.run_secs[0]) for r in recs) == sorted(float(r.run_secs[0]) for r in read)


def _data_folder(root, cpu_task, networks):
    """A data folder whose networks each hold one task's 8 measured candidates (made-up costs)."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from torch_wm_backend.world_model import dataset

    ctx, cands = cpu_task
    for k, net in enumerate(networks):
        (root / net).mkdir(parents=True)
        db = ms.database.JSONDatabase(work_dir=str(root / net))
        wl = db.commit_workload(ctx.mod)
        args = ms.arg_info.ArgInfo.from_prim_func(ctx.mod["main"])
        for i, c in enumerate(cands[8 * k:8 * k + 8]):
            db.commit_tuning_record(ms.database.TuningRecord(
                c.sch.trace, wl, [tvm.tirx.FloatImm("float64", (1 + (i * 5) % 8) * 1e-4)], ctx.target,
                args))
        dataset.record_batch(root / net, 0, dataset.record_count(root / net))


def test_members_trained_in_parallel_jobs_are_those_trained_one_after_the_other(tmp_path, cpu_task):
    from torch_wm_backend.world_model.adapter import load_weights

    _data_folder(tmp_path / "data", cpu_task, ["a", "b", "c"])
    kw = dict(val_networks=["c"], steps=3, members=3, target="cpu", batch=2)
    one = trainer.train(tmp_path / "data", tmp_path / "one.pt", **kw)
    two = trainer.train(tmp_path / "data", tmp_path / "two.pt", jobs=2, **kw)
    assert [r["seed"] for r in two["runs"]] == [0, 1, 2] and two["members"] == 3 and two["jobs"] == 2
    assert two["val"]["tasks"] == 1 and two["train_networks"] == one["train_networks"] == ["a", "b"]
    a, b = load_weights(tmp_path / "one.pt"), load_weights(tmp_path / "two.pt")
    for m, n in zip(a.members, b.members):   # one thread or two: the same up to float rounding
        assert all(torch.allclose(v, n.state_dict()[k], atol=1e-3) for k, v in m.state_dict().items()
                   if not k.startswith("dyn_head."))   # not shipped: made anew on loading
    assert sorted(p.name for p in tmp_path.glob("two*")) == ["two.json", "two.pt"]   # parts elsewhere
    assert not list(Path(tempfile.gettempdir()).glob("tvm-wm-train-two-*"))   # and removed


def test_joining_refuses_parts_of_other_ensembles(tmp_path, cpu_task):
    from torch_wm_backend import TvmWmError
    from torch_wm_backend.world_model import jobs

    _data_folder(tmp_path / "data", cpu_task, ["a", "b"])
    trainer.train(tmp_path / "data", tmp_path / "p0.pt", val_networks=[], steps=2, batch=2)
    trainer.train(tmp_path / "data", tmp_path / "p1.pt", val_networks=[], steps=3, batch=2, seed=1)
    with pytest.raises(TvmWmError, match="steps differ"):
        jobs.join(tmp_path / "out.pt", [tmp_path / "p0.pt", tmp_path / "p1.pt"])
    assert not (tmp_path / "out.pt").exists()
    assert jobs.shares(4, 0, 2) == [(0, 2), (2, 2)] and jobs.shares(3, 5, 2) == [(5, 2), (7, 1)]
    assert jobs.shares(2, 0, 8) == [(0, 1), (1, 1)]
