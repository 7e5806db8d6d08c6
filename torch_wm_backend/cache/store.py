"""Content-addressed store of built artifacts (compiled kernels) on disk.

Layout under ``root`` (created 0700)::

    artifacts/<key>/meta.json, <files>   one entry per key; key = sha256 of the named key parts
    locks/<key>.lock                     one lock per key, so a key is built once across processes
    tmp/                                 entries being written; renamed into artifacts/ when whole

Use per subgraph signature::

    store = ArtifactStore(settings.cache_dir)          # None: cache disabled, every call bypasses
    parts = {"graph": ..., "shapes": ..., "target": str(target), "versions": versions(),
             "settings": settings.artifact_key()}
    def build():                                       # runs at most once per key, machine-wide
        database = store.open_records(target)          # tuning records of this target (records.py)
        with store.records_lock(target):               # JSONDatabase appends: one writer a target
            ...tune into database, build, export kernel.so...
        return {"kernel.so": path_to_so}, {"guard": "tvm"}   # (files, extra); files: bytes or paths
    entry = store.get_or_build(parts, build)
    kernel_path, guard = entry.files["kernel.so"], entry.extra["guard"]

The same by hand: ``store.get(parts)``; on None, ``with store.lock(parts):`` get again, build, then
``store.put(parts, {"kernel.so": path}, extra={"guard": ...})``, which returns the stored Entry
(each ``get`` counts, so prefer ``get_or_build``, which counts one hit or miss per lookup).
An "eager" decision with no files is an entry too: ``put(parts, {}, {"guard": "eager"})``.

``get_or_build`` is ``get`` then, under ``lock(parts)``, ``get`` again (another process may have
built it while we waited) and ``put``; it counts one hit or one miss. A shared library is code, so
``get`` loads nothing that another user could have written: an entry whose files are writable by
group/others or not ours is refused with a warning. Corrupt, truncated or other-version entries fail
their checksums or format check, are removed, and come back as a miss. An unusable root (permission
denied) warns once per process and the store bypasses: the caller builds, nothing is kept.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import filelock

from .. import counters

FORMAT_VERSION = 1
META = "meta.json"
STALE_TMP_S = 24 * 3600  # leftovers of killed writers older than this are swept on open
log = logging.getLogger("torch_wm_backend")
_warned_unusable = False  # one warning per process for an unusable root


class CacheWarning(RuntimeWarning):
    pass


@dataclass(frozen=True)
class Entry:
    key: str
    files: dict  # name -> Path
    extra: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)
    created: float = 0.0
    path: Optional[Path] = None  # None for an uncached entry (store bypassed)


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def key_of(parts: dict) -> str:
    """sha256 of the canonical JSON of the named key parts."""
    return hashlib.sha256(canonical(parts).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unsafe_reason(path: Path) -> Optional[str]:
    """Why ``path`` must not be trusted (a symlink, not ours, group/other-writable), or None."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink"
    if st.st_uid != os.geteuid():
        return f"{path} is owned by uid {st.st_uid}, not by us ({os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


class ArtifactStore:
    key_of = staticmethod(key_of)

    def __init__(self, root: Union[str, os.PathLike, None]):
        self._memory: dict = {}  # in-memory tuning databases when bypassed, per target
        self.root = Path(root).expanduser() if root else None
        self.enabled = False
        if self.root is not None:
            try:
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
                if self.root.stat().st_uid != os.geteuid():
                    raise PermissionError(f"{self.root} is owned by another user")
                os.chmod(self.root, 0o700)  # mkdir's mode is masked by umask; a cache of code is private
                for sub in ("artifacts", "locks", "tmp"):
                    (self.root / sub).mkdir(mode=0o700, exist_ok=True)
                    reason = unsafe_reason(self.root / sub)
                    if reason:
                        raise PermissionError(reason)
                if not os.access(self.root / "tmp", os.W_OK | os.X_OK):
                    raise PermissionError(f"{self.root} is not writable")
                self.enabled = True
                self._sweep_tmp()
            except OSError as err:
                self._unusable(err)

    # -- public API ---------------------------------------------------------------------------
    def get(self, parts: dict, count: bool = True) -> Optional[Entry]:
        """The valid entry for ``parts``, counted as a hit; None (a miss or bypass) otherwise.
        ``count=False`` looks it up silently: not a kernel, not in the cache statistics."""
        if not self.enabled:
            if count:
                counters.bump("cache_bypasses")
            return None
        entry = self._load(key_of(parts))
        if count:
            counters.bump("cache_hits" if entry else "cache_misses")
            if entry is None:
                self._log_miss(parts)
        return entry

    def has(self, parts: dict) -> bool:
        """Whether an entry for ``parts`` exists (not validated, not counted): a cheap probe."""
        return self.enabled and (self.root / "artifacts" / key_of(parts) / META).exists()

    def put(self, parts: dict, files: dict, extra: Optional[dict] = None) -> Entry:
        """Store ``files`` (name -> bytes, or path of a file to move in) atomically.

        Returns the stored entry; if the store is bypassed or the write fails, an uncached Entry whose
        files live in a private temporary directory, so the caller can always load ``entry.files``.
        """
        key, extra = key_of(parts), dict(extra or {})
        tmp = None
        if self.enabled:
            try:
                tmp = Path(tempfile.mkdtemp(prefix=key[:16] + ".", dir=self.root / "tmp"))
                return self._commit(key, parts, _write_files(tmp, files), extra, tmp)
            except OSError as err:
                self._unusable(err)
        out = Path(tempfile.mkdtemp(prefix="tvm_wm_"))  # uncached: private, gone at exit
        atexit.register(shutil.rmtree, out, True)
        if tmp is not None:  # some files may have moved into tmp already
            files = {n: tmp / n if (tmp / n).exists() else c for n, c in files.items()}
        return Entry(key, _write_files(out, files), extra, parts, time.time())

    def get_or_build(self, parts: dict, build: Callable[[], tuple]) -> Entry:
        """The entry for ``parts``; ``build() -> (files, extra)`` runs at most once across processes."""
        if not self.enabled:
            counters.bump("cache_bypasses")
            return self.put(parts, *build())
        key = key_of(parts)
        entry = self._load(key)
        if entry is None:
            with self.lock(parts):
                entry = self._load(key)  # built by another process while we waited
                if entry is None:
                    counters.bump("cache_misses")
                    self._log_miss(parts)
                    return self.put(parts, *build())
        counters.bump("cache_hits")
        return entry

    def lock(self, parts: dict):
        """A per-key inter-process lock (a no-op when bypassed). Hold it to build a key once."""
        if not self.enabled:
            return contextlib.nullcontext()
        return filelock.FileLock(str(self.root / "locks" / f"{key_of(parts)}.lock"))

    def open_records(self, target):
        """MetaSchedule database for ``target``: on disk (see records.py), or in memory if bypassed."""
        if not self.enabled:  # one per target and process, so subgraphs share what was tuned
            from tvm.s_tir import meta_schedule as ms

            return self._memory.setdefault(str(target), ms.database.MemoryDatabase())
        from .records import open_records

        return open_records(self.root, target)

    def records_lock(self, target):
        """Hold while committing to ``open_records(target)`` (a no-op when bypassed)."""
        if not self.enabled:
            return contextlib.nullcontext()
        from .records import records_lock

        return records_lock(self.root, target)

    def entries(self) -> list:
        """Every valid entry (invalid ones are removed on the way)."""
        if not self.enabled:
            return []
        found = (self._load(p.name) for p in sorted((self.root / "artifacts").iterdir()))
        return [e for e in found if e is not None]

    def clear(self) -> None:
        for sub in ("artifacts", "records", "locks", "tmp"):
            if self.root is not None and (self.root / sub).is_dir():
                shutil.rmtree(self.root / sub, ignore_errors=True)
        self.__init__(self.root)

    # -- internals ----------------------------------------------------------------------------
    def _commit(self, key, parts, paths, extra, tmp) -> Entry:
        meta = {"format": FORMAT_VERSION, "key": key, "parts": parts, "created": time.time(),
                "files": {n: sha256_file(p) for n, p in paths.items()}, "extra": extra}
        (tmp / META).write_text(canonical(meta))
        os.chmod(tmp / META, 0o600)
        final = self.root / "artifacts" / key
        for _ in range(2):
            try:
                os.rename(tmp, final)  # atomic: readers see the whole entry or none
                break
            except OSError:
                if not final.exists():
                    raise
                existing = self._load(key)  # removes it if invalid, then we retry
                if existing is not None:  # another writer won; same key, same content
                    shutil.rmtree(tmp, ignore_errors=True)
                    return existing
        entry = self._load(key)
        if entry is None:
            raise OSError(f"cache entry {key[:12]} did not read back after writing")
        return entry

    def _load(self, key: str) -> Optional[Entry]:
        path = self.root / "artifacts" / key
        if not path.exists() and not path.is_symlink():
            return None
        try:
            for p in [path, *sorted(path.iterdir())] if path.is_dir() else [path]:
                reason = unsafe_reason(p)
                if reason:
                    warnings.warn(f"tvm_wm cache: refusing entry {key[:12]}: {reason}", CacheWarning)
                    if os.lstat(path).st_uid == os.geteuid():
                        self._remove(path)
                    return None
            meta = json.loads((path / META).read_text())
            if meta.get("format") != FORMAT_VERSION:
                log.info("cache entry %s has format %s, not %s; rebuilding", key[:12],
                         meta.get("format"), FORMAT_VERSION)
                raise _Invalid
            files = {n: path / n for n in meta["files"]}
            for name, digest in meta["files"].items():
                if "/" in name or name in ("", ".", "..") or sha256_file(files[name]) != digest:
                    raise _Invalid(f"checksum of {name} does not match")
            if key_of(meta["parts"]) != key:
                raise _Invalid("its key parts do not hash to its key")
            return Entry(key, files, meta.get("extra") or {}, meta["parts"], meta["created"], path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, _Invalid) as err:
            if str(err):
                log.warning("tvm_wm cache: entry %s is corrupt (%s); removing it", key[:12], err)
            self._remove(path)
            return None

    def _remove(self, path: Path) -> None:
        # rename first so no reader sees a half-deleted entry
        trash = self.root / "tmp" / f"trash.{uuid.uuid4().hex}"
        with contextlib.suppress(OSError):
            os.rename(path, trash)
            shutil.rmtree(trash) if trash.is_dir() and not trash.is_symlink() else trash.unlink()

    def _log_miss(self, parts: dict) -> None:
        best, best_same = None, -1
        for meta_path in list((self.root / "artifacts").glob(f"*/{META}"))[:2000]:
            with contextlib.suppress(OSError, ValueError, KeyError, AttributeError):
                other = json.loads(meta_path.read_text())["parts"]
                same = sum(canonical(other.get(k)) == canonical(v) for k, v in parts.items())
                if same > best_same:
                    best, best_same = other, same
        if best is None:
            log.info("tvm_wm cache miss: the cache is empty")
            return
        log.info("tvm_wm cache miss: nearest entry differs in %s", ", ".join(_diff(best, parts)))

    def _sweep_tmp(self) -> None:
        now = time.time()
        for p in (self.root / "tmp").iterdir():
            with contextlib.suppress(OSError):
                if now - os.lstat(p).st_mtime > STALE_TMP_S:
                    shutil.rmtree(p)

    def _unusable(self, err: OSError) -> None:
        global _warned_unusable
        self.enabled = False
        if not _warned_unusable:
            _warned_unusable = True
            warnings.warn(f"tvm_wm cache at {self.root} is unusable ({err}); running without a disk "
                          f"cache. Set cache_dir or TVM_WM_CACHE_DIR to a private writable directory.",
                          CacheWarning, stacklevel=3)


class _Invalid(Exception):
    pass


def _diff(old: dict, new: dict, prefix: str = "") -> list:
    """Names of the key parts that differ, one level into dict parts (e.g. versions.torch)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if canonical(a) != canonical(b):
            both_dicts = isinstance(a, dict) and isinstance(b, dict) and not prefix
            out += _diff(a, b, f"{k}.") if both_dicts else [prefix + k]
    return out


def _write_files(directory: Path, files: dict) -> dict:
    paths = {}
    for name, content in files.items():
        if "/" in name or name in ("", ".", "..", META):
            raise ValueError(f"bad artifact file name {name!r}")
        dest = directory / name
        if isinstance(content, (bytes, bytearray, memoryview)):
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
        else:
            shutil.move(os.fspath(content), dest)
        os.chmod(dest, 0o600)
        paths[name] = dest
    return paths
