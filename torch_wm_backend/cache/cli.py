"""``tvm-wm cache ls | stats | clear | export FILE | import FILE``.

export/import move a tuned cache to another machine of the same target: a tar.gz of the valid
artifact entries and the tuning records. import refuses archives with absolute paths, ``..``, links
or unexpected members, keeps the cache private (0700/0600), and merges records into existing ones.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath

from ..settings import default_cache_dir
from .records import TUNING_RECORDS, WORKLOADS, count_records, merge_records
from .store import ArtifactStore

RECORD_FILES = (WORKLOADS, TUNING_RECORDS, "target.txt")


def register(subparsers) -> None:
    p = subparsers.add_parser("cache", help="inspect, clear, export or import the disk cache")
    p.add_argument("--cache-dir", default=None, help="cache root (default: TVM_WM_CACHE_DIR or the "
                   "user cache directory)")
    actions = p.add_subparsers(dest="action", required=True)
    for name, func, help_ in (("ls", ls, "list entries and tuning records"),
                              ("stats", stats, "count entries, records and bytes"),
                              ("clear", clear, "delete everything in the cache")):
        actions.add_parser(name, help=help_).set_defaults(func=func)
    for name, func in (("export", export), ("import", import_)):
        a = actions.add_parser(name, help=f"{name} a .tar.gz of the cache")
        a.add_argument("file")
        a.set_defaults(func=func)


def _store(args) -> ArtifactStore:
    root = args.cache_dir or default_cache_dir()
    store = ArtifactStore(root)
    if not store.enabled:
        raise SystemExit(f"tvm-wm cache: no usable cache directory ({root})")
    return store


def _targets(store: ArtifactStore) -> list:
    d = store.root / "records"
    return sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ls(args) -> int:
    store = _store(args)
    for e in store.entries():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created))
        extra = " ".join(f"{k}=<{len(v)} entries>" if isinstance(v, dict) else f"{k}={v}"
                         for k, v in sorted(e.extra.items()))
        print(f"{e.key[:16]}  {when}  {_size(e.path):>10}  {','.join(sorted(e.files))}  {extra}")
    for t in _targets(store):
        name = (t / "target.txt").read_text() if (t / "target.txt").exists() else "?"
        print(f"records/{t.name}  {count_records(t):>6} records  {name}")
    return 0


def stats(args) -> int:
    store = _store(args)
    entries = store.entries()
    targets = _targets(store)
    print(f"root: {store.root}")
    print(f"entries: {len(entries)} ({sum(_size(e.path) for e in entries)} bytes)")
    print(f"targets: {len(targets)} ({sum(count_records(t) for t in targets)} tuning records)")
    return 0


def clear(args) -> int:
    store = _store(args)
    store.clear()
    print(f"cleared {store.root}")
    return 0


def export(args) -> int:
    store = _store(args)
    with tarfile.open(args.file, "w:gz") as tar:
        for e in store.entries():
            tar.add(e.path, arcname=f"artifacts/{e.key}")
        for t in _targets(store):
            for name in RECORD_FILES:
                if (t / name).is_file():
                    tar.add(t / name, arcname=f"records/{t.name}/{name}")
    print(f"exported {store.root} to {args.file}")
    return 0


def _check_member(m: tarfile.TarInfo) -> None:
    parts = PurePosixPath(m.name).parts
    ok = (not m.name.startswith("/") and ".." not in parts and (m.isfile() or m.isdir())
          and parts and parts[0] in ("artifacts", "records") and len(parts) <= 3)
    if ok and m.isfile():
        ok = len(parts) == 3 and (parts[0] == "artifacts" or parts[2] in RECORD_FILES)
    if not ok:
        raise SystemExit(f"tvm-wm cache import: refusing archive member {m.name!r}")


def import_(args) -> int:
    store = _store(args)
    tmp = Path(tempfile.mkdtemp(prefix="import.", dir=store.root / "tmp"))
    try:
        with tarfile.open(args.file, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                _check_member(m)
            kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **kw)
        for dirpath, dirs, files in os.walk(tmp):
            os.chmod(dirpath, 0o700)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o600)
        added = 0
        for d in sorted((tmp / "artifacts").glob("*")):
            dst = store.root / "artifacts" / d.name
            if not dst.exists():
                os.rename(d, dst)
                added += store._load(d.name) is not None  # validates; drops a bad entry
        records = sum(merge_records(d, store.root / "records" / d.name)
                      for d in sorted((tmp / "records").glob("*")) if d.is_dir())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"imported {added} entries and {records} tuning records into {store.root}")
    return 0
