"""The tuning time budget, shared by the subgraphs of one graph."""
from __future__ import annotations

import time


class Budget:
    """One wall-clock budget shared by every subgraph of a graph; the clock starts at first use."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.start = None

    def deadline(self) -> float | None:
        if self.seconds is None:
            return None
        if self.start is None:
            self.start = time.monotonic()
        return self.start + self.seconds

    def spent(self) -> bool:
        deadline = self.deadline()
        return deadline is not None and time.monotonic() >= deadline
