"""Peer statistics: does one candidate move the output more than the other candidates do?

Input, per statistic, an array ``x`` shaped (documents, candidates): the shift of the output
(vs the unperturbed output) when a word of the document is replaced by the candidate, averaged
over the document's perturbed positions. An undertrained model moves its output for *every*
substitution, so each candidate is compared with its peers, not with zero: the per-document
difference ``x[d, c] - median(x[d, others])`` is tested with a Wilcoxon signed-rank test
(H0: symmetric about 0). Several statistics per candidate are combined by Bonferroni (the
smallest p times their number); candidates are then corrected by Holm (certificate: family-wise
error) and Benjamini-Hochberg (screening: false discovery rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as st

from provscan.stats import benjamini_hochberg, holm, wilcoxon_signed_rank


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
    """``x[d, c]`` minus the median of the other candidates on the same document (a median, so
    that one strong trigger does not shift every other candidate's reference)."""
    k = x.shape[1]
    out = np.empty_like(x, dtype=float)
    for c in range(k):
        others = np.delete(x, c, axis=1)
        out[:, c] = x[:, c] - np.median(others, axis=1)
    return out


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval (approximate; for reporting effect sizes)."""
    v = np.asarray(values, float)
    m = float(v.mean()) if len(v) else float("nan")
    if len(v) < 2 or float(v.std(ddof=1)) == 0.0:
        return m, m, m
    half = float(st.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def peer_tests(candidates: list[str], statistics: list[Statistic]) -> list[CandidateResult]:
    """Per-candidate peer tests, combined over statistics, then Holm and BH across candidates."""
    k = len(candidates)
    per: list[dict[str, dict[str, float]]] = [{} for _ in range(k)]
    pmin = np.ones(k)
    for s in statistics:
        if s.shifts.shape[1] != k:
            raise ValueError(f"statistic {s.name}: {s.shifts.shape[1]} columns for {k} candidates")
        diffs = peer_differences(s.shifts)
        for c in range(k):
            test = wilcoxon_signed_rank(diffs[:, c], alternative=s.alternative)
            mean, lo, hi = mean_ci(diffs[:, c])
            per[c][s.name] = {"p_value": test.p_value, "statistic": test.statistic,
                              "effect": mean, "ci_low": lo, "ci_high": hi,
                              "mean_shift": float(s.shifts[:, c].mean())}
            if s.signed is not None:
                per[c][s.name]["mean_signed_shift"] = float(s.signed[:, c].mean())
            pmin[c] = min(pmin[c], test.p_value)
    combined = np.minimum(1.0, pmin * max(len(statistics), 1))
    p_holm, p_bh = holm(combined), benjamini_hochberg(combined)
    return [CandidateResult(candidates[c], float(combined[c]), float(p_holm[c]), float(p_bh[c]), per[c])
            for c in range(k)]


def shuffle_candidates(statistics: list[Statistic], rng: np.random.Generator) -> list[Statistic]:
    """A null with no special candidate: on each document, the candidates' columns are permuted
    (the same permutation for every statistic), so no candidate keeps a consistent effect."""
    d, k = statistics[0].shifts.shape
    perms = np.stack([rng.permutation(k) for _ in range(d)])
    rows = np.arange(d)[:, None]
    return [Statistic(s.name, s.shifts[rows, perms], s.alternative, s.role,
                      None if s.signed is None else s.signed[rows, perms]) for s in statistics]
