"""`tvm-wm cache` commands, moving a cache between machines, and the MetaSchedule record files."""
import argparse
import io
import tarfile

import pytest

from torch_wm_backend.cache import ArtifactStore, cli, records, records_dir, target_hash, versions
from torch_wm_backend.cache.records import TUNING_RECORDS, WORKLOADS, count_records, merge_records
from torch_wm_backend.cache.versions import weights_hash

PARTS = {"graph": "g0", "target": "llvm"}
TARGET = '{"kind":"llvm","tag":"","keys":["cpu"]}'


def run(root, *argv) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cache", "--cache-dir", str(root), *argv])
    return args.func(args)


def _fill(root):
    ArtifactStore(root).put(PARTS, {"kernel.so": b"\x7fELF"}, extra={"guard": "tvm"})
    d = records_dir(root, TARGET)
    (d / WORKLOADS).write_text('["1","wl-a"]\n["2","wl-b"]\n')
    (d / TUNING_RECORDS).write_text('[1,[[[],[]],[0.5],{"kind":"llvm"},null]]\n')
    (d / "target.txt").write_text(TARGET)


def test_ls_stats_clear(tmp_path, capsys):
    _fill(tmp_path)
    run(tmp_path, "ls")
    out = capsys.readouterr().out
    assert ArtifactStore.key_of(PARTS)[:16] in out and "guard=tvm" in out and "1 records" in out
    run(tmp_path, "stats")
    assert "entries: 1" in capsys.readouterr().out
    run(tmp_path, "clear")
    run(tmp_path, "stats")
    out = capsys.readouterr().out
    assert "entries: 0" in out and "targets: 0" in out


def test_export_then_import_into_an_empty_dir_hits(tmp_path):
    _fill(tmp_path / "a")
    archive = tmp_path / "cache.tar.gz"
    run(tmp_path / "a", "export", str(archive))
    run(tmp_path / "b", "import", str(archive))
    entry = ArtifactStore(tmp_path / "b").get(PARTS)
    assert entry.files["kernel.so"].read_bytes() == b"\x7fELF" and entry.extra == {"guard": "tvm"}
    assert count_records(records_dir(tmp_path / "b", TARGET)) == 1
    run(tmp_path / "b", "import", str(archive))  # importing twice adds nothing
    assert count_records(records_dir(tmp_path / "b", TARGET)) == 1


@pytest.mark.parametrize("member", ["../evil", "/abs/evil", "artifacts/k/link", "other/x/y"])
def test_import_refuses_unsafe_archives(tmp_path, member):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        if member.endswith("link"):
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(SystemExit, match="refusing"):
        run(tmp_path / "c", "import", str(archive))
    assert not (tmp_path / "evil").exists()
    assert list((tmp_path / "c" / "artifacts").iterdir()) == []


def test_merge_remaps_workload_indices(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / WORKLOADS).write_text('["1","wl-a"]\n["2","wl-b"]\n')
    (src / TUNING_RECORDS).write_text("[1,[b-rec]]\n[0,[a-rec]]\n")
    dst.mkdir()
    (dst / WORKLOADS).write_text('["2","wl-b"]\n')
    (dst / TUNING_RECORDS).write_text("[0,[b-rec]]")  # no trailing newline
    assert merge_records(src, dst) == 1
    assert (dst / WORKLOADS).read_text().splitlines() == ['["2","wl-b"]', '["1","wl-a"]']
    assert (dst / TUNING_RECORDS).read_text().splitlines() == ["[0,[b-rec]]", "[1,[a-rec]]"]


def _database(root, run_secs=(1e-3,)):
    """A MetaSchedule database under ``root`` with one workload and a record per ``run_secs``."""
    tvm = pytest.importorskip("tvm")
    from tvm import s_tir, te
    from tvm.s_tir import meta_schedule as ms

    from torch_wm_backend.cache import open_records

    target = tvm.target.Target("llvm")
    a = te.placeholder((4,), name="a")
    mod = tvm.IRModule({"main": te.create_prim_func([a, te.compute((4,), lambda i: a[i] + 1.0)])})
    db = open_records(root, target)
    wl = db.commit_workload(mod)
    for secs in run_secs:
        db.commit_tuning_record(ms.database.TuningRecord(s_tir.Schedule(mod).trace, wl, [secs], target))
    return target, mod, db


def test_records_are_a_metaschedule_database_that_survives_a_merge(tmp_path):
    from tvm.s_tir import meta_schedule as ms

    from torch_wm_backend.cache import open_records

    target, mod, db = _database(tmp_path / "a")
    assert isinstance(db, ms.database.JSONDatabase)
    src = tmp_path / "a" / "records" / target_hash(target)
    assert merge_records(src, records_dir(tmp_path / "b", target)) == 1
    again = open_records(tmp_path / "b", target)
    assert len(again) == 1 and again.has_workload(mod)
    assert isinstance(ArtifactStore(None).open_records(target), ms.database.MemoryDatabase)


def test_versions_name_everything_that_changes_a_build(tmp_path):
    assert set(versions()) == {"torch", "tvm", "tvm_ffi", "torch_wm_backend", "world_model"}
    assert weights_hash(tmp_path / "absent") == "none"
    (tmp_path / "w.pt").write_bytes(b"1")
    first = weights_hash(tmp_path)
    (tmp_path / "w.pt").write_bytes(b"2")
    assert weights_hash(tmp_path) != first != "none"


def test_top_level_cli(tmp_path, capsys):
    pytest.importorskip("torch_wm_backend.world_model.cli")
    from torch_wm_backend.cli import main

    assert main(["cache", "--cache-dir", str(tmp_path), "stats"]) == 0
    assert "entries: 0" in capsys.readouterr().out


def test_a_record_cut_short_by_a_killed_run_is_dropped_and_the_rest_kept(tmp_path, caplog):
    # MetaSchedule refuses to open a database whose last line was cut short (checked: "Unexpected
    # token"); a tuning run killed while appending leaves one
    from torch_wm_backend.cache import open_records

    target, _, _ = _database(tmp_path, (1e-3, 2e-3))
    path = records_dir(tmp_path, target) / TUNING_RECORDS
    text = path.read_text()
    path.write_text(text + text[:25])  # a third line, cut short
    again = open_records(tmp_path, target)
    assert len(again) == 2 and path.read_text() == text
    assert any("cut-short" in r.message for r in caplog.records)
    (records_dir(tmp_path, target) / WORKLOADS).write_text('["1","wl-a"]')  # complete, no newline
    assert not records.drop_partial_line(records_dir(tmp_path, target) / WORKLOADS)


def test_an_unchanged_database_is_parsed_once_and_another_writer_is_seen(tmp_path):
    from torch_wm_backend.cache import open_records

    target, _, _ = _database(tmp_path)
    first = open_records(tmp_path, target)
    assert open_records(tmp_path, target) is first and len(first) == 1  # every build opens it
    path = records_dir(tmp_path, target) / TUNING_RECORDS
    line = path.read_text().splitlines()[0]
    with open(path, "a") as f:  # another process appends a record
        f.write(line.replace("0.001", "0.002") + "\n")
    again = open_records(tmp_path, target)
    assert again is not first and len(again) == 2
