"""Peer statistics: does one candidate move the output more than the other candidates do?

Input, per statistic, an array ``x`` shaped (documents, candidates): how far the output moves
(vs the unperturbed output) when a word of the document is replaced by the candidate, averaged
over the document's perturbed positions. An undertrained model moves its output for *every*
substitution, so each candidate is compared with its peers on the same document, not with zero.

Test (exact under the null): on each document the candidates are ranked by ``x`` (0 = smallest,
ties broken at random with the seeded generator). If no candidate is special, the candidates are
exchangeable on each document, so a candidate's rank is uniform on {0, ..., K-1} and independent
across documents; its rank sum over D documents then has the exact distribution of
:func:`provscan.stats.uniform_rank_sum_sf`, and large rank sums are evidence that it moves the
output more than its peers. (Wilcoxon tests on differences to the peers assume symmetry that
zero-inflated, skewed shifts lack: against the peer median the test rejected most exchangeable
nulls at 5% in our simulations; against the peer mean one strong trigger shifts every other
candidate's reference. See docs/benchmarks/spin.md.) Several statistics per candidate are combined by Bonferroni (the smallest p times
their number); candidates are corrected by Holm (certificate: family-wise error) and by
Benjamini-Hochberg (screening: false discovery rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from provscan.stats import benjamini_hochberg, holm, uniform_rank_sum_tail

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Statistic:
    """One score array and its alternative (``greater``: the candidate moves the output more
    than its peers). Meta-task scores enter as shift magnitudes, with the signed shifts kept for
    the report."""

    name: str
    shifts: np.ndarray  # (documents, candidates)
    alternative: str
    role: str = "meta-task"  # or "distance"
    signed: np.ndarray | None = None  # signed shifts, reported when ``shifts`` holds magnitudes


@dataclass
class CandidateResult:
    candidate: str
    p_value: float  # Bonferroni-combined over statistics
    p_holm: float
    p_bh: float
    per_statistic: dict[str, dict[str, float]]


def peer_differences(x: np.ndarray) -> np.ndarray:
    """``x[d, c]`` minus the mean of the other candidates on the same document (effect size)."""
    k = x.shape[1]
    return x - (x.sum(axis=1, keepdims=True) - x) / (k - 1)


def random_ranks(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-row ranks 0..K-1 of ``x`` (documents, candidates), ties broken uniformly at random."""
    import numpy as np

    d, k = x.shape
    ranks = np.empty((d, k), dtype=np.int64)
    for i in range(d):
        order = np.lexsort((rng.random(k), x[i]))
        ranks[i, order] = np.arange(k)
    return ranks


def rank_sum_tail(d: int, k: int) -> tuple[float, ...]:
    """``tail[s] = P[R_1 + ... + R_d >= s]`` for i.i.d. R uniform on {0..k-1}, for every s
    (exact, from :func:`provscan.stats.uniform_rank_sum_tail`, computed once per (d, k))."""
    return uniform_rank_sum_tail(d, k)


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval (approximate; for reporting effect sizes)."""
    import numpy as np
    from scipy import stats as st

    v = np.asarray(values, float)
    m = float(v.mean()) if len(v) else float("nan")
    if len(v) < 2 or float(v.std(ddof=1)) == 0.0:
        return m, m, m
    half = float(st.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def peer_tests(candidates: list[str], statistics: list[Statistic],
               rng: np.random.Generator) -> list[CandidateResult]:
    """Per-candidate exact rank-sum tests, combined over statistics, then Holm and BH."""
    import numpy as np

    k = len(candidates)
    per: list[dict[str, dict[str, float]]] = [{} for _ in range(k)]
    pmin = np.ones(k)
    for s in statistics:
        if s.shifts.shape[1] != k:
            raise ValueError(f"statistic {s.name}: {s.shifts.shape[1]} columns for {k} candidates")
        d = s.shifts.shape[0]
        ranks = random_ranks(s.shifts, rng)
        tail = rank_sum_tail(d, k)
        diffs = peer_differences(s.shifts)
        for c in range(k):
            total = int(ranks[:, c].sum())
            p = tail[total]
            mean, lo, hi = mean_ci(diffs[:, c])
            rmean, rlo, rhi = mean_ci(ranks[:, c] / max(k - 1, 1))
            per[c][s.name] = {"p_value": p, "rank_sum": total, "mean_rank": rmean,
                              "rank_ci_low": rlo, "rank_ci_high": rhi,
                              "effect": mean, "ci_low": lo, "ci_high": hi,
                              "mean_shift": float(s.shifts[:, c].mean())}
            if s.signed is not None:
                per[c][s.name]["mean_signed_shift"] = float(s.signed[:, c].mean())
            pmin[c] = min(pmin[c], p)
    combined = np.minimum(1.0, pmin * max(len(statistics), 1))
    p_holm, p_bh = holm(combined), benjamini_hochberg(combined)
    return [CandidateResult(candidates[c], float(combined[c]), float(p_holm[c]), float(p_bh[c]), per[c])
            for c in range(k)]


def shuffle_candidates(statistics: list[Statistic], rng: np.random.Generator) -> list[Statistic]:
    """A null with no special candidate: on each document, the candidates' columns are permuted
    (the same permutation for every statistic), so no candidate keeps a consistent effect."""
    import numpy as np

    d, k = statistics[0].shifts.shape
    perms = np.stack([rng.permutation(k) for _ in range(d)])
    rows = np.arange(d)[:, None]
    return [Statistic(s.name, s.shifts[rows, perms], s.alternative, s.role,
                      None if s.signed is None else s.signed[rows, perms]) for s in statistics]
