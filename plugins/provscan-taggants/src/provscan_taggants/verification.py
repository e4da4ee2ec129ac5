"""The two exact ownership tests on a model's answers to the secret keys.

Null hypothesis (both tests): the model is independent of the secret key labels. The labels were
drawn i.i.d. uniformly over the C classes *after* nothing about the model was known, so under the
null (a model not trained on the protected data) each key label is uniform and independent of
whatever the model answers on the keys:

- top-k test: a key is a *hit* when its label is among the model's top-k classes; hits ~
  Binomial(K, k/C), p = P[Binomial(K, k/C) >= hits]. Needs only top-k labels.
- rank test: the number of classes the key label beats, s_j in {0, ..., C-1}, is uniform; the
  exact distribution of S = sum_j s_j gives p = P[S >= observed]. Needs scores for every class.

Ties in scores are broken at random (seeded), which keeps both tests exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from provscan.stats import binomial_test, uniform_rank_sum_sf

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class TestOutcome:
    statistic: int
    p_value: float
    n: int
    per_key: list[int]


def label_beats(scores: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row, how many classes score strictly below the key label (ties split at random)."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    own = scores[np.arange(len(labels)), labels][:, None]
    below = (scores < own).sum(1)
    tied = (scores == own).sum(1) - 1  # other classes with exactly the same score
    return below + np.array([rng.integers(0, t + 1) if t > 0 else 0 for t in tied], dtype=np.int64)


def rank_test(scores: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> TestOutcome:
    """Exact rank-sum test: S = sum of ``label_beats``; p = P[S >= observed] under uniform ranks."""
    c = scores.shape[1]
    beats = label_beats(scores, labels, rng)
    s = int(beats.sum())
    return TestOutcome(s, uniform_rank_sum_sf(s, len(labels), c), len(labels), beats.tolist())


def topk_hits_from_scores(scores: np.ndarray, labels: np.ndarray, k: int,
                          rng: np.random.Generator) -> np.ndarray:
    """Hit when fewer than ``k`` classes rank above the label (ties broken at random)."""
    c = scores.shape[1]
    return (c - 1 - label_beats(scores, labels, rng)) < k


def topk_test(hits: np.ndarray, k: int, num_classes: int) -> TestOutcome:
    """Exact binomial test: hits ~ Binomial(K, k/C) under the null."""
    import numpy as np

    h = int(np.sum(hits))
    res = binomial_test(h, len(hits), k / num_classes, "greater")
    return TestOutcome(h, res.p_value, len(hits), [int(v) for v in hits])
