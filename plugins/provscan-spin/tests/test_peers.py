"""Peer statistics: a planted effect is found; exchangeable nulls keep the family-wise rate."""

import numpy as np
from provscan_spin.peers import (
    Statistic,
    peer_differences,
    peer_tests,
    random_ranks,
    rank_sum_tail,
    shuffle_candidates,
)

from provscan.stats import clopper_pearson, uniform_rank_sum_sf

NAMES = [f"c{i}" for i in range(10)]


def _null(rng, d=40, k=10):
    # shifts with many exact zeros (greedy outputs often unchanged) and a per-document level
    level = rng.exponential(0.2, size=(d, 1))
    x = rng.exponential(1.0, size=(d, k)) * level * (rng.random((d, k)) < 0.5)
    return x


def test_planted_candidate_is_the_only_one_flagged():
    rng = np.random.default_rng(0)
    x = _null(rng)
    x[:, 3] += 0.3
    res = peer_tests(NAMES, [Statistic("s", x, "greater")], rng)
    flagged = [r.candidate for r in res if r.p_holm <= 0.01]
    assert flagged == ["c3"]


def test_one_strong_candidate_does_not_flag_its_peers():
    rng = np.random.default_rng(5)
    x = _null(rng)
    x[:, 0] = 10.0
    res = peer_tests(NAMES, [Statistic("s", x, "greater")], rng)
    assert [r.candidate for r in res if r.p_holm <= 0.05] == ["c0"]
    assert np.allclose(peer_differences(x)[:, 0], 10.0 - x[:, 1:].mean(axis=1))


def test_rank_sum_tail_matches_core_exact_function():
    tail = rank_sum_tail(7, 5)
    for s in (0, 1, 10, 20, 27, 28):
        assert tail[s] == uniform_rank_sum_sf(s, 7, 5)


def test_random_ranks_break_ties_uniformly():
    rng = np.random.default_rng(3)
    ranks = random_ranks(np.zeros((4000, 4)), rng)
    assert np.all(np.sort(ranks, axis=1) == np.arange(4))
    freq = (ranks[:, 0] == 3).mean()
    assert abs(freq - 0.25) < 0.03


def test_family_wise_error_on_exchangeable_nulls():
    rng = np.random.default_rng(1)
    trials, alpha, hits = 300, 0.05, 0
    for _ in range(trials):
        stats = [Statistic("a", _null(rng), "greater"), Statistic("b", _null(rng), "greater")]
        hits += min(r.p_holm for r in peer_tests(NAMES, stats, rng)) <= alpha
    lo, hi = clopper_pearson(hits, trials)
    assert lo <= alpha, f"FWER {hits}/{trials} (CP [{lo:.3f}, {hi:.3f}]) exceeds alpha={alpha}"


def test_shuffled_candidates_destroy_a_planted_effect():
    rng = np.random.default_rng(2)
    x = _null(rng)
    x[:, 3] += 0.5
    shuffled = shuffle_candidates([Statistic("s", x, "greater")], rng)[0]
    assert sorted(map(sorted, x.round(9))) == sorted(map(sorted, shuffled.shifts.round(9)))
    res = peer_tests(NAMES, [shuffled], rng)
    assert min(r.p_holm for r in res) > 0.01
