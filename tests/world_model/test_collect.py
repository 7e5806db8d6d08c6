import pytest
import tvm
from tvm.s_tir import meta_schedule as ms

from torch_wm_backend.world_model import dataset
from torch_wm_backend.world_model.collect import rebuild_transitions


def _records_only(root, ctx, cands):
    """A network's database as committed data ships it: measured records, no transitions/."""
    (root / "net").mkdir()
    db = ms.database.JSONDatabase(work_dir=str(root / "net"))
    wl = db.commit_workload(ctx.mod)
    for i, c in enumerate(cands):
        db.commit_tuning_record(ms.database.TuningRecord(
            c.sch.trace, wl, [tvm.tirx.FloatImm("float64", 1e-3 * (i + 1))], ctx.target, c.args_info))


def test_transitions_are_rebuilt_from_records_once(tmp_path, cpu_task):
    ctx, cands = cpu_task
    _records_only(tmp_path, ctx, cands[:4])
    assert dataset.load_transitions(tmp_path, ["net"], ctx.target) == []
    assert rebuild_transitions(tmp_path, ctx.target) == 1
    trans = dataset.load_transitions(tmp_path, ["net"], ctx.target)
    assert len(trans) == 4 and all(len(t.positions) == len(t.feats) > 0 for t in trans)
    assert rebuild_transitions(tmp_path, ctx.target) == 0   # a task that has them is left alone


def test_rebuilding_without_data_is_one_line(tmp_path):
    from torch_wm_backend.cli import main

    with pytest.raises(SystemExit, match="tvm-wm collect: no record databases under"):
        main(["collect", "--rebuild-transitions", "--out", str(tmp_path / "nowhere")])


def test_training_without_data_or_with_no_members_or_tasks_per_step_is_one_line(tmp_path):
    from torch_wm_backend.cli import main

    with pytest.raises(SystemExit, match="tvm-wm train: no data folder"):
        main(["train", "--data", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match="tvm-wm train: no measured tasks under"):
        main(["train", "--data", str(tmp_path)])
    with pytest.raises(SystemExit, match="tvm-wm train: --members must be at least 1"):
        main(["train", "--data", str(tmp_path), "--members", "0"])
    with pytest.raises(SystemExit, match="tvm-wm train: --batch and --steps must be at least 1"):
        main(["train", "--data", str(tmp_path), "--batch", "0"])
    with pytest.raises(SystemExit, match="tvm-wm train: --jobs must be at least 1"):
        main(["train", "--data", str(tmp_path), "--jobs", "0"])


def _cnn(name):
    """A one-conv zoo network: its build(name) -> (model, example inputs)."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()).eval()
    return net, (torch.randn(1, 3, 8, 8),)


def test_held_out_workloads_cover_every_layout_the_data_holds(tmp_path):
    """The collector measures a CNN channels-last, as the backend tunes it, while older records are
    NCHW: a training task is dropped if its workload occurs in an evaluation network in either."""
    import json
    import types

    from torch_wm_backend.lower.target import cpu_target
    from torch_wm_backend.world_model.collect import LAYOUTS, eval_hashes, network_tasks, task_hash

    zoo = types.SimpleNamespace(EVAL={"cnn": None}, build=_cnn)
    target = cpu_target()
    per_layout = [{task_hash(t) for t in network_tasks(zoo, "cnn", target, layout)} for layout in LAYOUTS]
    assert per_layout[0] != per_layout[1]  # NCHW and channels-last are other workloads
    assert eval_hashes(zoo, tmp_path, target) == per_layout[0] | per_layout[1]
    cached = json.loads((tmp_path / "eval_hashes.json").read_text())
    assert cached["layouts"] == list(LAYOUTS)
    # computed by another lowering (before batch norms were folded, say): computed again
    (tmp_path / "eval_hashes.json").write_text(json.dumps({**cached, "lowering": "older", "hashes": []}))
    assert eval_hashes(zoo, tmp_path, target) == per_layout[0] | per_layout[1]


def test_a_task_none_of_whose_candidates_ran_is_not_sampled_again(tmp_path, monkeypatch):
    """A task whose every candidate failed to build or run is written down as such and skipped by
    the next collector run instead of costing a full round of measurements each time."""
    import json
    import types

    from tqdm import tqdm

    from torch_wm_backend.lower.target import cpu_target
    from torch_wm_backend.world_model import collect

    measured = []

    def all_fail(cands, target, builder, runner):
        measured.append(len(cands))
        return [None] * len(cands)

    monkeypatch.setattr(collect, "measure", all_fail)
    zoo = types.SimpleNamespace(EVAL={}, build=_cnn)
    for _ in range(2):
        collect.collect_network(zoo, "cnn", tmp_path, cpu_target(), trials=4, max_tasks=1, skip=set(),
                                builder=None, runner=None, pbar=tqdm(disable=True), transitions=False)
    assert measured == [4]
    manifest = json.loads((tmp_path / "cnn" / "tasks.json").read_text())
    assert [m["failed"] for m in manifest.values()] == [4]
