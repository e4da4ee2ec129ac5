"""Calibration: run a statistic on simulated nulls and report its false-positive rate.

A test is *valid* at level alpha when, under the null, it rejects with probability at most alpha.
:func:`calibrate` draws ``n`` independent null data sets, runs the test on each and counts the
rejections. The observed rate comes with an exact Clopper-Pearson interval, so a detector's test
suite can assert validity with a margin that can fail:

- :attr:`Calibration.valid`: the interval does not exclude alpha from above (``lower <= alpha``),
  i.e. the simulations show no evidence that the false-positive rate exceeds alpha;
- :attr:`Calibration.bounded`: the whole interval lies at or below ``bound`` (``upper <= bound``),
  for tests whose rate is known to sit well under alpha (discrete or conservative tests).

Draw functions either return one p-value / decision per call (``draw(rng)``) or, vectorised, an
array of them (``draw(rng, n)``, with ``vectorised=True``). A boolean result means "rejected".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from provscan.stats import clopper_pearson


@dataclass(frozen=True)
class Calibration:
    """Observed false-positive rate of a test over ``n`` simulated nulls at level ``alpha``."""

    alpha: float
    n: int
    false_positives: int
    rate: float
    lower: float
    upper: float
    level: float

    @property
    def valid(self) -> bool:
        """No evidence (at the interval's level) that the false-positive rate exceeds alpha."""
        return self.lower <= self.alpha

    def bounded(self, bound: float | None = None) -> bool:
        """The upper Clopper-Pearson bound is at most ``bound`` (default: alpha)."""
        return self.upper <= (self.alpha if bound is None else bound)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"FPR {self.rate:.4f} ({self.false_positives}/{self.n}) at alpha={self.alpha}, "
                f"{self.level:.0%} CP [{self.lower:.4f}, {self.upper:.4f}]")


def from_rejections(rejected: Sequence[bool] | np.ndarray, alpha: float,
                    level: float = 0.99) -> Calibration:
    """A :class:`Calibration` from a boolean vector of null rejections."""
    r = np.asarray(rejected, dtype=bool).ravel()
    if len(r) == 0:
        raise ValueError("calibration needs at least one simulated null")
    k, n = int(r.sum()), len(r)
    lo, hi = clopper_pearson(k, n, level)
    return Calibration(alpha, n, k, k / n, lo, hi, level)


def from_p_values(p_values: Sequence[float] | np.ndarray, alpha: float,
                  level: float = 0.99) -> Calibration:
    """A :class:`Calibration` from null p-values (rejection: p <= alpha; NaN counts as rejection,
    so a broken statistic cannot look calibrated)."""
    p = np.asarray(p_values, dtype=float).ravel()
    return from_rejections(~(p > alpha), alpha, level)


def calibrate(draw: Callable[..., Any], n: int = 1000, alpha: float = 0.05, seed: int = 0,
              level: float = 0.99, vectorised: bool = False) -> Calibration:
    """Run ``draw`` on ``n`` simulated nulls and return the observed false-positive rate.

    ``draw(rng)`` returns a p-value (float) or a rejection (bool) for one null data set drawn from
    ``rng``; with ``vectorised=True``, ``draw(rng, n)`` returns ``n`` of them at once.
    """
    if n < 1:
        raise ValueError("n must be positive")
    rng = np.random.default_rng(seed)
    if vectorised:
        out = np.asarray(draw(rng, n))
        if out.shape[0] != n:
            raise ValueError(f"draw returned {out.shape[0]} results, expected {n}")
    else:
        out = np.asarray([draw(rng) for _ in range(n)])
    if out.dtype == bool:
        return from_rejections(out, alpha, level)
    return from_p_values(out, alpha, level)


def calibrate_levels(p_values: Sequence[float] | np.ndarray, alphas: Sequence[float] = (0.01, 0.05, 0.1),
                     level: float = 0.99) -> dict[float, Calibration]:
    """Calibrations of the same null p-values at several levels (super-uniformity check)."""
    return {a: from_p_values(p_values, a, level) for a in alphas}
