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


def test_training_without_data_or_with_no_members_is_one_line(tmp_path):
    from torch_wm_backend.cli import main

    with pytest.raises(SystemExit, match="tvm-wm train: no data folder"):
        main(["train", "--data", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match="tvm-wm train: no measured tasks under"):
        main(["train", "--data", str(tmp_path)])
    with pytest.raises(SystemExit, match="tvm-wm train: --members must be at least 1"):
        main(["train", "--data", str(tmp_path), "--members", "0"])
