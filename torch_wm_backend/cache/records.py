"""MetaSchedule tuning records, one database per target: ``<root>/records/<target-hash>/``.

The files are MetaSchedule's own JSON database (``database_workload.json``: one ``[shash, module]``
line per workload; ``database_tuning_record.json``: one ``[workload_index, record]`` line per
measured candidate), so TVM's tools read them directly. ``JSONDatabase`` appends a line on each
commit; two processes tuning the same target must hold ``records_lock(root, target)`` around their
commits (or the whole tuning run), or lines may interleave.

Beside them, ``finished_tasks.txt`` names the tasks whose search finished (tune/tasks.py), one
``hash target trials`` line each, so no process searches them again. (The ``searched.txt`` of
earlier versions also named searches cut short, and is no longer read.)
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import filelock

log = logging.getLogger("torch_wm_backend")
_OPEN: dict = {}  # records dir -> (file stamps when opened, JSONDatabase)
WORKLOADS = "database_workload.json"
TUNING_RECORDS = "database_tuning_record.json"
FINISHED = "finished_tasks.txt"
_RECORD = re.compile(r"^\[\s*(\d+)\s*,(.*)\]$")


def target_hash(target) -> str:
    """A short stable name for a target; ``str(Target)`` is its canonical JSON."""
    return hashlib.sha256(str(target).encode()).hexdigest()[:16]


def records_dir(root, target) -> Path:
    path = Path(root) / "records" / target_hash(target)
    Path(root).mkdir(mode=0o700, parents=True, exist_ok=True)
    for p in (path.parent, path):
        p.mkdir(mode=0o700, exist_ok=True)
    return path


def records_lock(root, target) -> filelock.FileLock:
    return filelock.FileLock(str(records_dir(root, target) / "commit.lock"))


def open_records(root, target):
    """The MetaSchedule ``JSONDatabase`` of ``target`` under ``root`` (created empty if absent)."""
    from tvm.s_tir import meta_schedule as ms

    path = records_dir(root, target)
    target_file = path / "target.txt"
    if not target_file.exists():
        target_file.write_text(str(target))  # lets `tvm-wm cache ls` name the target
    for name in (WORKLOADS, TUNING_RECORDS):
        drop_partial_line(path / name)
    # parsing the database is slow once it holds a few models' records (12 MB: seconds), and every
    # subgraph's build opens it: reuse the one opened here while no other process appended to it
    stamp = tuple(_stat(path / name) for name in (WORKLOADS, TUNING_RECORDS))
    cached = _OPEN.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    db = ms.database.JSONDatabase(path_workload=str(path / WORKLOADS),
                                  path_tuning_record=str(path / TUNING_RECORDS))
    # this process's own commits go through ``db`` and keep it current; they change the stamps
    # too, so the first open after them parses the files once more
    _OPEN[path] = (stamp, db)
    return db


def _stat(path: Path) -> tuple:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    except FileNotFoundError:
        return None


def drop_partial_line(path: Path) -> bool:
    """A tuning run killed while appending (kill -9, out of memory, the machine going down) can
    leave a last line cut short, and MetaSchedule then refuses to open the whole database. Drop
    that line, keep every complete one; returns whether one was dropped. Callers hold
    ``records_lock`` (as they do to commit), so no writer is mid-line."""
    try:
        with open(path, "rb") as f:
            if f.seek(0, 2) == 0:
                return False
            f.seek(-1, 2)
            if f.read(1) == b"\n":  # the common case: one byte read
                return False
            f.seek(0)
            data = f.read()
    except FileNotFoundError:
        return False
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:])
        return False  # complete, just without its newline
    except ValueError:
        pass
    with open(path, "r+b") as f:
        f.truncate(cut)
    log.warning("tvm_wm: dropped a cut-short line at the end of %s (a tuning run was stopped while "
                "writing it); the other %d lines are kept", path, data[:cut].count(b"\n"))
    return True


def read_finished(path) -> list:
    """The lines of ``path``'s finished-tasks file (none if it has none)."""
    return _lines(Path(path) / FINISHED)


def append_finished(path, lines: list) -> None:
    """Add lines to ``path``'s finished-tasks file; callers hold ``records_lock``."""
    _append(Path(path) / FINISHED, lines)


def count_records(path: Path) -> int:
    try:
        return sum(1 for line in open(path / TUNING_RECORDS) if line.strip())
    except FileNotFoundError:
        return 0


def merge_records(src: Path, dst: Path) -> int:
    """Append the workloads, records and finished-task marks of database ``src`` missing from
    ``dst``; returns how many records were added. Record lines are copied verbatim, only their
    workload index is remapped."""
    dst.mkdir(mode=0o700, parents=True, exist_ok=True)
    with filelock.FileLock(str(dst / "commit.lock")):
        dst_wl = _lines(dst / WORKLOADS)
        index = {line: i for i, line in enumerate(dst_wl)}
        remap, new_wl = {}, []
        for i, line in enumerate(_lines(src / WORKLOADS)):
            if line not in index:
                index[line] = len(dst_wl) + len(new_wl)
                new_wl.append(line)
            remap[i] = index[line]
        have = {_parse(line) for line in _lines(dst / TUNING_RECORDS)}
        new_rec = []
        for line in _lines(src / TUNING_RECORDS):
            i, rest = _parse(line)
            if (remap[i], rest) not in have:
                have.add((remap[i], rest))
                new_rec.append(f"[{remap[i]},{rest}]")
        _append(dst / WORKLOADS, new_wl)
        _append(dst / TUNING_RECORDS, new_rec)
        have_finished = set(read_finished(dst))
        _append(dst / FINISHED, [line for line in dict.fromkeys(read_finished(src))
                                 if line not in have_finished])
        if (src / "target.txt").exists() and not (dst / "target.txt").exists():
            (dst / "target.txt").write_text((src / "target.txt").read_text())
    return len(new_rec)


def _lines(path: Path) -> list:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _parse(line: str) -> tuple:
    m = _RECORD.match(line)
    if not m:
        raise ValueError(f"not a MetaSchedule tuning record line: {line[:80]!r}")
    return int(m.group(1)), m.group(2)


def _append(path: Path, lines: list) -> None:
    if not lines:
        return
    needs_newline = path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
    with open(path, "a") as f:
        f.write(("\n" if needs_newline else "") + "\n".join(lines) + "\n")
