"""The tuning time budget, shared by the subgraphs of one graph."""
from __future__ import annotations

import time
from typing import Callable


class Budget:
    """One wall-clock budget shared by every subgraph of a graph; the clock starts at first use.
    ``clock`` (seconds, monotonic) is injectable: a test can spend the budget when it chooses."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.start = None
        self.stopped = False

    def stop(self) -> None:
        """Spent from now on, whatever the clock says: Ctrl-C ended this graph's tuning (tuner.py)."""
        self.stopped = True

    def deadline(self) -> float | None:
        if self.seconds is None:
            return None
        if self.start is None:
            self.start = self.clock()
        return self.start + self.seconds

    def spent(self) -> bool:
        if self.stopped:
            return True
        deadline = self.deadline()
        return deadline is not None and self.clock() >= deadline
