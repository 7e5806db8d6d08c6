"""Candidates' traces read without printing them: a structure key and the decisions of each.

Printing a trace (``str(trace)``, TVM's printer) costs ≈0.12 ms; most of the world model's
predict went there. trace_reader.cc walks the trace through tvm-ffi's reflection in C++ instead
(≈0.01 ms): traces with one key print the same text but for their decisions, so only one of them
is printed and tokenized, the others' decisions come as integers.

The C++ is compiled once by tvm-ffi (``tvm_ffi.cpp.load_inline``, cached under ~/.cache/tvm-ffi or
$TVM_FFI_CACHE_DIR). Without a C++ compiler, or with TVM_WM_TRACE_READER=0, ``read`` returns None
and the caller prints every trace (the same tokens, slower).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
_SOURCE = Path(__file__).with_name("trace_reader.cc")
_disabled = [0]   # nesting depth of disabled()


@dataclass
class ReadTraces:
    keys: np.ndarray      # uint64 [n]; 0 where a trace could not be read (print that one)
    decisions: np.ndarray  # int64 records, per decision: 0, value (a scalar) or width, values
    offsets: np.ndarray   # int64 [n + 1]

    def record(self, i: int) -> np.ndarray:
        return self.decisions[self.offsets[i]:self.offsets[i + 1]]


@functools.lru_cache(maxsize=None)
def _load():
    """The compiled reader, or None (tried once per process)."""
    if os.environ.get("TVM_WM_TRACE_READER", "1") == "0":
        return None
    try:
        from tvm_ffi.cpp import load_inline

        return load_inline("wm_trace_reader", cpp_sources=_SOURCE.read_text(),
                           functions=["read_traces"])
    except Exception as err:  # no compiler, or headers that do not match: print instead
        log.warning("world model: the C++ trace reader is unavailable (%s); printing every "
                    "trace instead (slower predict, same scores)", str(err).splitlines()[0])
        return None


def _module():
    return None if _disabled[0] else _load()


@contextlib.contextmanager
def disabled():
    """Within: ``read`` returns None, as without a compiler (tests and benchmarks of the printing
    path)."""
    _disabled[0] += 1
    try:
        yield
    finally:
        _disabled[0] -= 1


def available() -> bool:
    return _module() is not None


def read(traces: list) -> ReadTraces | None:
    mod = _module()
    if mod is None:
        return None
    keys, decisions, offsets = mod.read_traces(traces)
    return ReadTraces(np.frombuffer(keys, np.uint64), np.frombuffer(decisions, np.int64),
                      np.frombuffer(offsets, np.int64))


def keys_of(read_traces: ReadTraces | None, traces: list) -> list:
    """A hashable key per trace, equal for traces that print the same: (structure, decisions)
    where ``read_traces`` (``read(traces)``) read it, else the printed text."""
    if read_traces is None:
        return [str(t) for t in traces]
    return [(int(k), read_traces.record(i).tobytes()) if k else str(traces[i])
            for i, k in enumerate(read_traces.keys)]


def keys(traces: list) -> list:
    return keys_of(read(traces), traces)
