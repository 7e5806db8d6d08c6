"""A closed-form online update: ridge regression of a task's measured log-throughput on what the
trained network already computes for each candidate — its score and its score head's hidden layer.

Refitted from scratch on every round's measurements, as MetaSchedule refits XGB, but on features the
prior learned offline: the network's own score enters unpenalised (a task where the prior ranks
well keeps its ranking), the hidden layer's 128 numbers enter with a ridge penalty chosen by
leave-one-out error (a task where it ranks badly is re-weighted within what the network represents).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PENALTIES = (0.1, 1.0, 10.0, 100.0, 1000.0)
MIN_MEASURED = 4   # fewer: the prior's scores as they are


@dataclass
class Fit:
    mean: np.ndarray    # of the hidden features over the measured candidates
    std: np.ndarray
    beta: np.ndarray    # intercept, score, hidden...
    penalty: float

    def predict(self, score: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """Predicted log-throughput relative to the best measured candidate (0: as fast)."""
        return _design(score, (hidden - self.mean) / self.std) @ self.beta


def _design(score: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    return np.concatenate([np.ones((len(score), 1)), score[:, None], hidden], 1)


def fit(score: np.ndarray, hidden: np.ndarray, costs: np.ndarray) -> Fit | None:
    """Ridge fit of log(best cost / cost) on [1, score, standardised hidden], the penalty with the
    lowest leave-one-out squared error; None with fewer than ``MIN_MEASURED`` candidates."""
    if len(costs) < MIN_MEASURED:
        return None
    y = np.log(costs.min() / costs)
    mean, std = hidden.mean(0), hidden.std(0) + 1e-6
    x = _design(score.astype(np.float64), ((hidden - mean) / std).astype(np.float64))
    best = None
    for penalty in PENALTIES:
        reg = np.full(x.shape[1], penalty)
        reg[:2] = 1e-6   # intercept and the network's score: (almost) unpenalised
        inverse = np.linalg.inv(x.T @ x + np.diag(reg))
        beta = inverse @ x.T @ y
        leverage = np.einsum("ij,jk,ik->i", x, inverse, x)
        loo = np.mean(((y - x @ beta) / np.clip(1 - leverage, 1e-6, None)) ** 2)
        if best is None or loo < best[0]:
            best = (loo, Fit(mean, std, beta, penalty))
    return best[1]
