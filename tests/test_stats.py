"""stats.py against scipy and textbook values."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy import stats as st

from provscan import stats


def test_binomial_textbook_and_scipy():
    r = stats.binomial_test(8, 10, 0.5)
    assert r.p_value == pytest.approx(56 / 1024, rel=1e-12) and r.exact and "binomial" in r.test
    assert stats.binomial_test(2, 10, 0.5, "less").p_value == pytest.approx(56 / 1024, rel=1e-12)
    assert stats.binomial_test(0, 10, 0.3).p_value == 1.0
    for k, n, p0 in [(3, 20, 0.1), (15, 40, 0.25), (0, 5, 0.5)]:
        for alt in ("greater", "less", "two-sided"):
            ref = st.binomtest(k, n, p0, alternative=alt).pvalue
            assert stats.binomial_test(k, n, p0, alt).p_value == pytest.approx(ref, rel=1e-9)
    with pytest.raises(ValueError):
        stats.binomial_test(11, 10, 0.5)
    with pytest.raises(ValueError):
        stats.binomial_test(1, 10, 1.5)
    with pytest.raises(ValueError):
        stats.binomial_test(1, 10, 0.5, "bigger")


def test_clopper_pearson_textbook_and_scipy():
    lo, hi = stats.clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-9)  # 0.3085
    lo, hi = stats.clopper_pearson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10), rel=1e-9)
    lo, hi = stats.clopper_pearson(5, 10)
    assert (lo, hi) == pytest.approx((0.187086, 0.812914), abs=1e-6)
    for k, n, level in [(3, 17, 0.9), (40, 100, 0.99), (1, 1000, 0.95)]:
        ci = st.binomtest(k, n).proportion_ci(level, method="exact")
        assert stats.clopper_pearson(k, n, level) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert stats.clopper_pearson(0, 0) == (0.0, 1.0)


def test_wilson_textbook_and_scipy():
    assert stats.wilson(0, 10) == pytest.approx((0.0, 0.27754), abs=1e-5)
    for k, n, level in [(3, 17, 0.9), (40, 100, 0.99), (10, 10, 0.95)]:
        ci = st.binomtest(k, n).proportion_ci(level, method="wilson")
        assert stats.wilson(k, n, level) == pytest.approx((ci.low, ci.high), rel=1e-9, abs=1e-12)


def test_fisher_lady_tasting_tea():
    r = stats.fisher_exact([[3, 1], [1, 3]])
    assert r.p_value == pytest.approx(17 / 70, rel=1e-12) and r.statistic == 9.0
    table = [[12, 5], [3, 14]]
    for alt in ("greater", "less", "two-sided"):
        ref = st.fisher_exact(table, alternative=alt).pvalue
        assert stats.fisher_exact(table, alt).p_value == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError):
        stats.fisher_exact([[1, 2, 3], [4, 5, 6]])


def test_mcnemar_exact():
    r = stats.mcnemar_exact(10, 2)
    assert r.p_value == pytest.approx(79 / 4096, rel=1e-12) and r.statistic == 10
    assert stats.mcnemar_exact(0, 0).p_value == 1.0
    two = stats.mcnemar_exact(10, 2, "two-sided").p_value
    assert two == pytest.approx(2 * 79 / 4096, rel=1e-12)


def test_wilcoxon_exact_textbook_and_scipy():
    r = stats.wilcoxon_signed_rank([1.0, 2.5, 3.0, 4.2, 5.1])
    assert r.p_value == pytest.approx(1 / 32, rel=1e-12) and r.exact and r.statistic == 15
    d = np.random.default_rng(0).normal(0.3, 1, 20)
    ref = st.wilcoxon(d, alternative="greater", method="exact").pvalue
    assert stats.wilcoxon_signed_rank(d).p_value == pytest.approx(ref, rel=1e-12)
    # zeros dropped, ties → labelled normal approximation
    tied = [1, 1, 2, 2, 3, 0, -1, 4, 4, 5]
    r = stats.wilcoxon_signed_rank(tied)
    assert not r.exact and "approximation" in r.test
    ref = st.wilcoxon([x for x in tied if x], alternative="greater", method="approx").pvalue
    assert r.p_value == pytest.approx(ref, rel=1e-12)
    assert stats.wilcoxon_signed_rank([0, 0]).p_value == 1.0


def test_mann_whitney_exact_textbook_and_scipy():
    r = stats.mann_whitney([4, 5, 6], [1, 2, 3])
    assert r.p_value == pytest.approx(1 / math.comb(6, 3), rel=1e-12) and r.exact and r.statistic == 9
    rng = np.random.default_rng(1)
    x, y = rng.normal(0.5, 1, 12), rng.normal(0, 1, 15)
    ref = st.mannwhitneyu(x, y, alternative="greater", method="exact").pvalue
    assert stats.mann_whitney(x, y).p_value == pytest.approx(ref, rel=1e-12)
    r = stats.mann_whitney([1, 1, 2, 3], [1, 2, 2, 0])
    assert not r.exact and "approximation" in r.test
    with pytest.raises(ValueError):
        stats.mann_whitney([], [1.0])


def test_holm_textbook():
    adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_benjamini_hochberg_against_scipy():
    p = np.random.default_rng(2).random(30) ** 2
    assert stats.benjamini_hochberg(p) == pytest.approx(st.false_discovery_control(p), rel=1e-12)
    assert stats.benjamini_hochberg([0.01, 0.02, 0.03]) == pytest.approx([0.03, 0.03, 0.03])
    assert len(stats.benjamini_hochberg([])) == 0


def test_conformal_p_value_definition():
    refs = list(range(1, 20))
    assert stats.conformal_p_value(5, refs) == pytest.approx(16 / 20)
    assert stats.conformal_p_value(100, refs) == pytest.approx(1 / 20)  # 19 refs reach 0.05
    assert stats.conformal_p_value(100, range(99)) == pytest.approx(0.01)
    assert stats.conformal_p_value(-1, refs) == 1.0


def test_combinations_against_scipy():
    p = [0.01, 0.2, 0.5, 0.04]
    for method, fn in [("fisher", stats.fisher_combination), ("stouffer", stats.stouffer_combination)]:
        ref = st.combine_pvalues(p, method=method)
        r = fn(p)
        assert (r.statistic, r.p_value) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-9)
    w = [1, 2, 3, 4]
    ref = st.combine_pvalues(p, method="stouffer", weights=w)
    assert stats.stouffer_combination(p, w).p_value == pytest.approx(ref.pvalue, rel=1e-9)
    with pytest.raises(ValueError):
        stats.fisher_combination([])


def brute_rank_sum_sf(observed: int, k: int, c: int) -> Fraction:
    hits = sum(1 for t in itertools.product(range(c), repeat=k) if sum(t) >= observed)
    return Fraction(hits, c**k)


@settings(max_examples=60, deadline=None)
@given(hs.integers(0, 4), hs.integers(1, 6), hs.integers(-2, 30))
def test_uniform_rank_sum_sf_matches_enumeration(k, c, observed):
    assert stats.uniform_rank_sum_sf(observed, k, c) == float(brute_rank_sum_sf(observed, k, c))


def test_uniform_rank_sum_sf_exact_in_the_far_tail():
    # P(all 60 ranks maximal) = 10^-60 exactly; float convolution would lose it.
    assert stats.uniform_rank_sum_sf(60 * 9, 60, 10) == float(Fraction(1, 10**60))
    assert stats.uniform_rank_sum_sf(60 * 9 + 1, 60, 10) == 0.0
    assert stats.uniform_rank_sum_sf(0, 60, 10) == 1.0
    # two dice with faces 0..5: P(S >= 6) = (1 - P(S = 5)) / 2 = (1 - 6/36) / 2
    assert stats.uniform_rank_sum_sf(6, 2, 6) == 15 / 36
