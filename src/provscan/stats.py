"""Exact tests and bounds used by detectors (on scipy). Every function names its test.

numpy and scipy are imported inside the functions that use them: importing this module is cheap
and the exact rank-sum routines work without the ``models`` extra.

All p-values are one-sided unless stated; "greater" means the alternative is a larger statistic.
Functions return plain floats so evidence stays JSON-serialisable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class TestResult:
    """A test's name, statistic and p-value (``exact`` false for approximations)."""

    test: str
    statistic: float
    p_value: float
    exact: bool = True

    __test__ = False  # not a pytest test class


def binomial_test(successes: int, n: int, p0: float, alternative: str = "greater") -> TestResult:
    """Exact binomial test of H0: success probability = ``p0``."""
    from scipy import stats as st

    _check_alternative(alternative)
    if not 0 <= successes <= n:
        raise ValueError("successes must lie in [0, n]")
    if not 0.0 <= p0 <= 1.0:
        raise ValueError("p0 must lie in [0, 1]")
    if alternative == "greater":
        p = float(st.binom.sf(successes - 1, n, p0))
    elif alternative == "less":
        p = float(st.binom.cdf(successes, n, p0))
    else:
        p = float(st.binomtest(successes, n, p0, alternative="two-sided").pvalue)
    return TestResult(f"exact binomial ({alternative})", float(successes), min(max(p, 0.0), 1.0))


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided confidence interval for a binomial proportion."""
    from scipy import stats as st

    if n == 0:
        return 0.0, 1.0
    a = 1 - level
    lo = 0.0 if successes == 0 else float(st.beta.ppf(a / 2, successes, n - successes + 1))
    hi = 1.0 if successes == n else float(st.beta.ppf(1 - a / 2, successes + 1, n - successes))
    return lo, hi


def wilson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Approximate: its coverage can fall below ``level`` (e.g. ~93.4% at n=60, p=0.3 for 95%).
    Use :func:`clopper_pearson` for certificate-grade bounds."""
    from scipy import stats as st

    if n == 0:
        return 0.0, 1.0
    z = float(st.norm.ppf(1 - (1 - level) / 2))
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def fisher_exact(table: Sequence[Sequence[int]], alternative: str = "greater") -> TestResult:
    """Fisher's exact test on a 2x2 table [[a, b], [c, d]] ("greater": odds ratio > 1).

    The statistic is the sample odds ratio ad / bc (may be infinite)."""
    import numpy as np
    from scipy import stats as st

    _check_alternative(alternative)
    if np.asarray(table).shape != (2, 2) or np.any(np.asarray(table) < 0):
        raise ValueError("Fisher exact needs a 2x2 table of non-negative counts")
    res = st.fisher_exact(np.asarray(table), alternative=alternative)
    return TestResult(f"Fisher exact ({alternative})", float(res.statistic), float(res.pvalue))


def mcnemar_exact(b: int, c: int, alternative: str = "greater") -> TestResult:
    """Exact McNemar test on discordant pairs: ``b`` pairs changed one way, ``c`` the other.

    Under H0 each discordant pair is b-type with probability 1/2; "greater" tests b > c.
    """
    n = b + c
    if n == 0:
        return TestResult(f"exact McNemar ({alternative})", 0.0, 1.0)
    res = binomial_test(b, n, 0.5, alternative)
    return TestResult(f"exact McNemar ({alternative})", float(b), res.p_value)


def wilcoxon_signed_rank(diffs: Sequence[float], alternative: str = "greater") -> TestResult:
    """Wilcoxon signed-rank test of H0: the paired differences are symmetric about 0.

    Zero differences are dropped (Wilcoxon's convention). Exact null distribution when at most
    50 non-zero differences remain and their absolute values have no ties; otherwise the normal
    approximation with tie correction (``exact`` false).
    """
    import numpy as np
    from scipy import stats as st

    _check_alternative(alternative)
    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    name = f"Wilcoxon signed-rank ({alternative})"
    if len(d) == 0:
        return TestResult(name, 0.0, 1.0)
    exact = len(d) <= 50 and len(np.unique(np.abs(d))) == len(d)
    res = st.wilcoxon(d, alternative=alternative, method="exact" if exact else "approx")
    return TestResult(name if exact else name + ", normal approximation", float(res.statistic),
                      float(res.pvalue), exact)


def mann_whitney(x: Sequence[float], y: Sequence[float], alternative: str = "greater") -> TestResult:
    """Mann-Whitney U test of H0: x and y come from the same distribution ("greater": x larger).

    Exact null distribution of U when there are no ties and both samples have at most 100 values;
    otherwise the normal approximation with tie correction (``exact`` false). The statistic is
    U of ``x``.
    """
    import numpy as np
    from scipy import stats as st

    _check_alternative(alternative)
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    if len(xa) == 0 or len(ya) == 0:
        raise ValueError("Mann-Whitney needs two non-empty samples")
    both = np.concatenate([xa, ya])
    exact = len(np.unique(both)) == len(both) and max(len(xa), len(ya)) <= 100
    res = st.mannwhitneyu(xa, ya, alternative=alternative,
                          method="exact" if exact else "asymptotic")
    name = f"Mann-Whitney U ({alternative})"
    return TestResult(name if exact else name + ", normal approximation", float(res.statistic),
                      float(res.pvalue), exact)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control)."""
    import numpy as np

    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false-discovery-rate control)."""
    import numpy as np

    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adj = np.empty(m)
    adj[order] = np.minimum(ranked, 1.0)
    return adj


def conformal_p_value(score: float, reference: Sequence[float]) -> float:
    """Rank of ``score`` among scores from reference (null) models, larger = more suspicious:
    p = (1 + #{ref >= score}) / (n + 1). Valid (super-uniform) when the references are exchangeable
    with the tested score under the null."""
    import numpy as np

    ref = np.asarray(reference, dtype=float)
    return float((1 + np.sum(ref >= score)) / (len(ref) + 1))


def fisher_combination(p_values: Sequence[float]) -> TestResult:
    """Fisher's method for independent p-values: -2 sum log p ~ chi2(2k) under H0."""
    import numpy as np
    from scipy import stats as st

    p = np.clip(np.asarray(p_values, dtype=float), 1e-300, 1.0)
    if len(p) == 0:
        raise ValueError("Fisher combination needs at least one p-value")
    stat = float(-2 * np.log(p).sum())
    return TestResult("Fisher combination", stat, float(st.chi2.sf(stat, 2 * len(p))))


def stouffer_combination(p_values: Sequence[float], weights: Sequence[float] | None = None) -> TestResult:
    """Stouffer's weighted Z method for independent one-sided p-values."""
    import numpy as np
    from scipy import stats as st

    p = np.clip(np.asarray(p_values, dtype=float), 1e-300, 1 - 1e-16)
    if len(p) == 0:
        raise ValueError("Stouffer combination needs at least one p-value")
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    z = float((w * st.norm.isf(p)).sum() / math.sqrt((w**2).sum()))
    return TestResult("Stouffer combination", z, float(st.norm.sf(z)))


@lru_cache(maxsize=32)
def _uniform_rank_sum_counts(k: int, c: int) -> tuple[int, ...]:
    """Coefficients of (1 + x + ... + x^(c-1))^k: how many k-tuples of ranks have each sum."""
    counts = [1]
    for _ in range(k):
        prefix = [0]
        for v in counts:
            prefix.append(prefix[-1] + v)
        size = len(counts) + c - 1
        counts = [prefix[min(s + 1, len(counts))] - prefix[max(s - c + 1, 0)] for s in range(size)]
    return tuple(counts)


def uniform_rank_sum_sf(observed: int, k: int, c: int) -> float:
    """Exact P[R_1 + ... + R_k >= observed] for i.i.d. R_i uniform on {0, ..., c-1}.

    Counts the k-tuples with each sum in exact integer arithmetic (the coefficients of
    (1 + x + ... + x^(c-1))^k, built by k sliding-window sums) and divides by c^k as a fraction,
    so the result is the correctly rounded float of the exact probability. Used for rank-based
    ownership tests.
    """
    if k < 0 or c < 1:
        raise ValueError("need k >= 0 and c >= 1")
    if observed <= 0:
        return 1.0
    if observed > k * (c - 1):
        return 0.0
    counts = _uniform_rank_sum_counts(k, c)
    return float(Fraction(sum(counts[observed:]), c**k))


@lru_cache(maxsize=32)
def uniform_rank_sum_tail(k: int, c: int) -> tuple[float, ...]:
    """``tail[s] = P[R_1 + ... + R_k >= s]`` for every s in 0..k(c-1), exact as
    :func:`uniform_rank_sum_sf` (computed once per (k, c) for detectors that test many sums)."""
    if k < 0 or c < 1:
        raise ValueError("need k >= 0 and c >= 1")
    counts = _uniform_rank_sum_counts(k, c)
    total, acc, tail = c**k, 0, []
    for v in reversed(counts):
        acc += v
        tail.append(float(Fraction(acc, total)))
    return tuple(reversed(tail))


def _check_alternative(alternative: str) -> None:
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be greater, less or two-sided, not {alternative!r}")
