"""What the backend prints. By default: a progress bar while tuning, warnings once, nothing else.
TVM's own logs — MetaSchedule's per-round tables, the C++ warnings of its compiler — show only at
the debug level: the ``torch_wm_backend`` logger at DEBUG (``logging``), or ``TVM_WM_LOG=debug``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading

from .settings import log_level

log = logging.getLogger("torch_wm_backend")
SEARCH_LOGGER = "tvm.s_tir.meta_schedule"  # MetaSchedule's Python loggers: its tables, per round
_fd_lock = threading.RLock()  # one redirection at a time; nested ones stack


def configure() -> None:
    """Apply ``TVM_WM_LOG`` (read once, at import): the level of the backend's logger, and a handler
    on it where the program configured none."""
    level = log_level()
    if level is None:
        return
    log.setLevel(level)
    if not log.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        log.addHandler(handler)


def debugging() -> bool:
    return log.isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def quiet_search():
    """MetaSchedule's loggers at WARNING while a search runs, unless debugging; put back after."""
    if debugging():
        yield
        return
    search = logging.getLogger(SEARCH_LOGGER)
    before = search.level
    search.setLevel(logging.WARNING)
    try:
        yield
    finally:
        search.setLevel(before)


@contextlib.contextmanager
def quiet_native():
    """What TVM's C++ writes to the standard error meanwhile goes to the debug log instead (its
    compiler's warnings: "Scope Saving", "Fast mode segfaults..."), unless debugging."""
    if debugging():
        yield
        return
    with _fd_lock, tempfile.TemporaryFile(mode="w+b") as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                log.debug("TVM wrote:\n%s", text)
