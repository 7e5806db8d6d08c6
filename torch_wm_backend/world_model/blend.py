"""An online update that trusts whichever model ranks the running task better: the world model's
copy fine-tuned on the task, or a companion that learns the task from its measurements alone
(MetaSchedule's XGB on PerStoreFeature, ``tune/cost_models.py``).

The world model ranks a task it has never seen well from the first trial; a model fitted on the
task's own measurements catches up once it has a few rounds of them. Which one to follow is decided
by evidence the search produces anyway: each round, before either learns from the candidates just
measured, both models' scores for them are compared with their measured order. The fractions of
pairs each orders right, over the task's rounds so far, weigh the two: the companion's weight is
sigmoid(SHARPNESS x (its fraction - the world model's)), so 10 points ahead give it 0.73 — soft,
as a round of 16 candidates measures a fraction to about ±0.08. The search ranks by the weighted
sum of the two scores, each standardised over the task's latest measured candidates (up to 256, as
XGB re-extracts their features each round; the same scale in every call between two updates).
Until the companion has been checked on a round its weight is 0: the world model's scores as they
are.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import dataset

SHARPNESS = 10.0


def pairs_right(scores: np.ndarray, costs: np.ndarray) -> tuple[float, int]:
    """Pairs of candidates with different costs whose scores order them as their costs do (higher
    score: faster; a tie in score counts half), and how many such pairs there are."""
    _, _, right = dataset.pair_outcomes(costs, scores)
    return float(right.sum()), len(right)


@dataclass
class Scale:
    mean: float
    std: float

    @classmethod
    def of(cls, scores: np.ndarray) -> "Scale":
        return cls(float(np.mean(scores)), float(np.std(scores)) + 1e-9)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return (scores - self.mean) / self.std


@dataclass
class Evidence:
    """One task's record of how well each model ranked its next measured round."""
    right: np.ndarray = field(default_factory=lambda: np.zeros(2))   # world model, companion
    pairs: int = 0
    scales: tuple[Scale, Scale] | None = None   # over the measured candidates, after the last update

    def add(self, world_model: np.ndarray, companion: np.ndarray, costs: np.ndarray) -> None:
        """Scores each model gave a round's candidates before learning from them, and their costs."""
        (a, n), (b, _) = pairs_right(world_model, costs), pairs_right(companion, costs)
        self.right += (a, b)
        self.pairs += n

    def weight(self) -> float:
        """The companion's weight, 0 to 1."""
        if self.pairs == 0:
            return 0.0
        lead = (self.right[1] - self.right[0]) / self.pairs
        return float(1.0 / (1.0 + np.exp(-SHARPNESS * lead)))

    def combine(self, world_model: np.ndarray, companion: np.ndarray) -> np.ndarray:
        """Scores for the search: positive (it samples parents in proportion to them), higher is
        faster."""
        a = self.weight()
        z = (1 - a) * self.scales[0](world_model) + a * self.scales[1](companion)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))
