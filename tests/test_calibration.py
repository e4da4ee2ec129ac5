"""Every test in stats.py keeps its false-positive rate at or below alpha on simulated nulls.

Each check draws >= 2,000 null data sets; ``valid`` means the 99.9% Clopper-Pearson interval of
the observed rate does not lie above alpha (99.9% because this file runs ~20 such checks: a valid
test passes all of them with probability >= 98%). A deliberately liberal test shows the check can
fail. Where the size is known exactly (discrete tests), the exact value is checked too.
"""

import numpy as np
import pytest
from scipy import stats as st

from provscan import stats
from provscan.testing import calibration

N = 2000
ALPHA = 0.05
LEVEL = 0.999


def check(cal: calibration.Calibration) -> None:
    assert cal.n >= 1000
    assert cal.valid, str(cal)


def test_helper_counts_and_interval():
    cal = calibration.from_p_values([0.01, 0.2, 0.04, 0.9, float("nan")], 0.05, level=0.95)
    assert (cal.false_positives, cal.n) == (3, 5)  # NaN counts as a rejection
    assert (cal.lower, cal.upper) == pytest.approx(stats.clopper_pearson(3, 5, 0.95))
    assert "FPR 0.6000" in str(cal)
    cal = calibration.calibrate(lambda rng: bool(rng.random() < 0.5), n=50, alpha=0.05)
    assert cal.n == 50 and not cal.valid
    with pytest.raises(ValueError):
        calibration.calibrate(lambda rng, n: np.zeros(n - 1), n=10, vectorised=True)


def test_a_liberal_test_is_caught():
    # two-sided p-value used for a one-sided claim and then halved again: FPR ~ 2 alpha
    cal = calibration.calibrate(lambda rng, n: st.norm.sf(np.abs(rng.normal(size=n))),
                                n=N, alpha=ALPHA, level=LEVEL, vectorised=True)
    assert not cal.valid and cal.rate > 1.5 * ALPHA


def test_uniform_p_values_are_valid_and_exact_size():
    cal = calibration.calibrate(lambda rng, n: rng.random(n), n=N, alpha=ALPHA, level=LEVEL, vectorised=True)
    check(cal)
    assert cal.lower <= ALPHA <= cal.upper


def test_binomial_calibrated():
    check(calibration.calibrate(lambda rng: stats.binomial_test(int(rng.binomial(30, 0.2)), 30, 0.2).p_value,
                                n=N, alpha=ALPHA, level=LEVEL))
    # discrete test at n=10: exact size P(X >= 9 | 10, 0.5) ~ 0.011 ≪ alpha, so the bound holds too
    cal = calibration.calibrate(lambda rng: stats.binomial_test(int(rng.binomial(10, 0.5)), 10, 0.5).p_value,
                                n=N, alpha=ALPHA, level=LEVEL)
    check(cal)
    assert cal.bounded()


def exact_non_coverage(interval, n: int, p: float) -> float:
    return float(sum(st.binom.pmf(k, n, p) for k in range(n + 1)
                     if not interval(k, n, 0.95)[0] <= p <= interval(k, n, 0.95)[1]))


def test_clopper_pearson_coverage():
    def miss(rng):
        k = int(rng.binomial(60, 0.3))
        lo, hi = stats.clopper_pearson(k, 60, 0.95)
        return not (lo <= 0.3 <= hi)

    check(calibration.calibrate(miss, n=N, alpha=ALPHA, level=LEVEL))
    for n in (10, 60, 200):
        for p in (0.02, 0.3, 0.5):
            assert exact_non_coverage(stats.clopper_pearson, n, p) <= 0.05


def test_wilson_is_approximate():
    """Wilson's coverage dips below nominal for some (n, p): it is labelled approximate and must not
    be used for certificate claims; near-nominal is all it promises."""
    assert exact_non_coverage(stats.wilson, 60, 0.3) > 0.05
    for n in (20, 60, 200):
        for p in (0.1, 0.3, 0.5):
            assert exact_non_coverage(stats.wilson, n, p) < 0.08


def test_fisher_calibrated():
    def draw(rng):
        a, c = rng.binomial(20, 0.4), rng.binomial(25, 0.4)
        return stats.fisher_exact([[a, 20 - a], [c, 25 - c]]).p_value

    cal = calibration.calibrate(draw, n=N, alpha=ALPHA, level=LEVEL)
    check(cal)
    assert cal.bounded()  # conditional exact test is conservative here


def test_mcnemar_calibrated():
    def draw(rng):
        disc = int(rng.binomial(40, 0.5))
        b = int(rng.binomial(disc, 0.5))
        return stats.mcnemar_exact(b, disc - b).p_value

    check(calibration.calibrate(draw, n=N, alpha=ALPHA, level=LEVEL))


@pytest.mark.parametrize("n_pairs", [12, 80])  # exact and normal approximation
def test_wilcoxon_calibrated(n_pairs):
    cal = calibration.calibrate(lambda rng: stats.wilcoxon_signed_rank(rng.standard_t(3, n_pairs)).p_value,
                                n=N, alpha=ALPHA, level=LEVEL)
    check(cal)


@pytest.mark.parametrize("sizes", [(9, 11), (120, 110)])  # exact and normal approximation
def test_mann_whitney_calibrated(sizes):
    def draw(rng):
        return stats.mann_whitney(rng.exponential(size=sizes[0]), rng.exponential(size=sizes[1])).p_value

    check(calibration.calibrate(draw, n=N, alpha=ALPHA, level=LEVEL))


def test_mann_whitney_with_ties_calibrated():
    def draw(rng):
        return stats.mann_whitney(rng.integers(0, 5, 30), rng.integers(0, 5, 30)).p_value

    check(calibration.calibrate(draw, n=N, alpha=ALPHA, level=LEVEL))


@pytest.mark.parametrize("adjust", [stats.holm, stats.benjamini_hochberg])
def test_multiple_testing_controls_familywise_error_under_global_null(adjust):
    p = np.random.default_rng(3).random((N, 10))
    any_rejected = np.array([np.any(adjust(row) <= ALPHA) for row in p])
    check(calibration.from_rejections(any_rejected, ALPHA, LEVEL))
    # unadjusted: FWER = 1 - 0.95^10 ~ 0.40, which the check flags
    assert not calibration.from_rejections(np.any(p <= ALPHA, axis=1), ALPHA).valid


def test_conformal_calibrated_with_19_references():
    def draw(rng, n):
        scores = rng.normal(size=(n, 20))
        return np.array([stats.conformal_p_value(s[0], s[1:]) for s in scores])

    cal = calibration.calibrate(draw, n=N, alpha=ALPHA, level=LEVEL, vectorised=True)
    check(cal)
    assert cal.lower <= ALPHA <= cal.upper  # exact size 1/20


@pytest.mark.parametrize("combine", [stats.fisher_combination, stats.stouffer_combination])
def test_combinations_calibrated(combine):
    check(calibration.calibrate(lambda rng: combine(rng.random(5)).p_value, n=N, alpha=ALPHA, level=LEVEL))


def test_uniform_rank_sum_calibrated():
    def draw(rng):
        ranks = rng.integers(0, 10, size=8)
        return stats.uniform_rank_sum_sf(int(ranks.sum()), 8, 10)

    check(calibration.calibrate(draw, n=N, alpha=ALPHA, level=LEVEL))


def test_calibrate_levels_super_uniform():
    p = [stats.binomial_test(int(k), 50, 0.1).p_value
         for k in np.random.default_rng(4).binomial(50, 0.1, N)]
    for cal in calibration.calibrate_levels(p, level=LEVEL).values():
        check(cal)
