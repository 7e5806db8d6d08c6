"""The artifact store as a user meets it: hits, misses, races, crashes, tampering, bad dirs."""
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

from torch_wm_backend import counters
from torch_wm_backend.cache import ArtifactStore, CacheWarning, store as store_mod

PARTS = {"graph": "g0", "shapes": [[2, 3]], "target": "llvm", "versions": {"torch": "2.13"},
         "settings": {"trials": 8}}


@pytest.fixture(autouse=True)
def _fresh_counters(monkeypatch):
    counters.reset_stats()
    monkeypatch.setattr(store_mod, "_warned_unusable", False)


def _hits_misses_bypasses():
    s = counters.stats()
    return s["cache_hits"], s["cache_misses"], s["cache_bypasses"]


def test_round_trip_counts_and_private_modes(tmp_path):
    store = ArtifactStore(tmp_path / "c")
    assert store.get(PARTS) is None
    so = tmp_path / "kernel.so"
    so.write_bytes(b"\x7fELF kernel")
    store.put(PARTS, {"kernel.so": so, "note.txt": b"hi"}, extra={"guard": "tvm"})
    assert not so.exists()  # moved in, not copied
    entry = ArtifactStore(tmp_path / "c").get(PARTS)
    assert entry.files["kernel.so"].read_bytes() == b"\x7fELF kernel"
    assert entry.files["note.txt"].read_bytes() == b"hi"
    assert entry.extra == {"guard": "tvm"}
    assert _hits_misses_bypasses() == (1, 1, 0)
    assert stat.S_IMODE(os.stat(tmp_path / "c").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(entry.files["kernel.so"]).st_mode) == 0o600


def test_a_decision_without_files_is_an_entry(tmp_path):
    store = ArtifactStore(tmp_path)
    store.put(PARTS, {}, extra={"guard": "eager"})
    assert store.get(PARTS).extra == {"guard": "eager"}


def test_miss_log_names_the_differing_part(tmp_path, caplog):
    store = ArtifactStore(tmp_path)
    store.put(PARTS, {"k": b"x"})
    store.put(dict(PARTS, graph="other", shapes=[[9]]), {"k": b"y"})
    with caplog.at_level("INFO", logger="torch_wm_backend"):
        assert store.get(dict(PARTS, versions={"torch": "2.14"})) is None
    assert "differs in versions.torch" in caplog.text


def _child(code: str, root, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(root), *map(str, args)],
                            stdout=subprocess.PIPE, text=True)


RACE = """
    import json, sys, time
    from torch_wm_backend.cache import ArtifactStore
    root, builds = sys.argv[1], sys.argv[2]
    parts = {"graph": "race"}
    def build():
        with open(builds, "a") as f:
            f.write("built\\n")
        time.sleep(0.5)
        return {"kernel.so": b"compiled once"}, {"guard": "tvm"}
    entry = ArtifactStore(root).get_or_build(parts, build)
    print(entry.files["kernel.so"].read_bytes().decode())
"""


def test_four_processes_build_a_key_once(tmp_path):
    builds = tmp_path / "builds.txt"
    procs = [_child(RACE, tmp_path / "c", builds) for _ in range(4)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs == ["compiled once"] * 4
    assert builds.read_text().count("built") == 1


SLOW_PUT = """
    import sys, time
    from torch_wm_backend.cache import ArtifactStore, store
    write = store._write_files
    def slow_write(directory, files):
        paths = write(directory, files)
        print("writing", flush=True)
        time.sleep(60)
        return paths
    store._write_files = slow_write
    ArtifactStore(sys.argv[1]).put({"graph": "killed"}, {"kernel.so": b"half"})
"""


def test_sigkill_in_the_middle_of_a_put_leaves_nothing_loadable(tmp_path):
    child = _child(SLOW_PUT, tmp_path)
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    store = ArtifactStore(tmp_path)
    assert store.get({"graph": "killed"}) is None
    assert list((tmp_path / "artifacts").iterdir()) == []
    entry = store.get_or_build({"graph": "killed"}, lambda: ({"kernel.so": b"whole"}, {}))
    assert entry.files["kernel.so"].read_bytes() == b"whole"


def _damage(entry, how):
    if how == "corrupt":
        entry.files["kernel.so"].write_bytes(b"\x7fELF kernel tampered")
    elif how == "truncate":
        entry.files["kernel.so"].write_bytes(b"\x7fELF")
    elif how == "missing file":
        entry.files["kernel.so"].unlink()
    elif how == "bad meta":
        (entry.path / "meta.json").write_text('{"format": 1, "files": ')
    elif how == "foreign version":
        meta = json.loads((entry.path / "meta.json").read_text())
        (entry.path / "meta.json").write_text(json.dumps(dict(meta, format=999)))


@pytest.mark.parametrize("how", ["corrupt", "truncate", "missing file", "bad meta",
                                 "foreign version"])
def test_damaged_entry_is_removed_and_rebuilt(tmp_path, how):
    store = ArtifactStore(tmp_path)
    _damage(store.put(PARTS, {"kernel.so": b"\x7fELF kernel"}), how)
    assert store.get(PARTS) is None
    assert list((tmp_path / "artifacts").iterdir()) == []
    builds = []
    entry = store.get_or_build(PARTS, lambda: (builds.append(1) or {"kernel.so": b"new"}, {}))
    assert builds == [1] and entry.files["kernel.so"].read_bytes() == b"new"
    assert store.get(PARTS).files["kernel.so"].read_bytes() == b"new"


@pytest.mark.parametrize("target", ["kernel.so", "."])
def test_world_writable_entry_is_refused_with_a_warning(tmp_path, target):
    store = ArtifactStore(tmp_path)
    path = store.put(PARTS, {"kernel.so": b"code"}).path / target
    os.chmod(path, os.stat(path).st_mode | stat.S_IWOTH)
    with pytest.warns(CacheWarning, match="writable by group or others"):
        assert store.get(PARTS) is None
    assert list((tmp_path / "artifacts").iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_entry_owned_by_another_user_is_refused(tmp_path):
    store = ArtifactStore(tmp_path)
    entry = store.put(PARTS, {"kernel.so": b"code"})
    os.chown(entry.files["kernel.so"], 65534, 65534)
    with pytest.warns(CacheWarning, match="owned by uid 65534"):
        assert store.get(PARTS) is None


def test_unusable_root_warns_once_and_bypasses(tmp_path):
    if os.geteuid() == 0:  # root ignores permission bits: put a file where the directory must go
        (tmp_path / "file").write_text("")
        root = tmp_path / "file" / "cache"
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        root = tmp_path / "ro" / "cache"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stores = [ArtifactStore(root), ArtifactStore(root)]
        assert stores[0].get(PARTS) is None
        entry = stores[1].get_or_build(PARTS, lambda: ({"kernel.so": b"built"}, {"guard": "tvm"}))
    assert [w.category for w in caught] == [CacheWarning]
    assert entry.files["kernel.so"].read_bytes() == b"built" and entry.path is None
    assert _hits_misses_bypasses() == (0, 0, 2)
    with stores[0].lock(PARTS):  # a no-op lock: callers need no special case
        pass


def test_disabled_cache_bypasses(tmp_path):
    store = ArtifactStore(None)
    assert store.get(PARTS) is None
    assert _hits_misses_bypasses() == (0, 0, 1)
