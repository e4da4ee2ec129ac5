"""The exact tests: the rank-sum null distribution, tie handling, and calibration on a real
clean model (re-drawing the secret labels many times)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from provscan_taggants.craft import draw_key_labels, smooth_keys
from provscan_taggants.verification import label_beats, rank_test, topk_hits_from_scores, topk_test
from scipy import stats as st

from provscan.testing.calibration import from_p_values

sys.path.insert(0, str(Path(__file__).parent))
from taggants_helpers import digits_split, train_mlp_dir  # noqa: E402


def test_rank_sum_matches_enumeration() -> None:
    k, c = 3, 4
    sums = np.array([sum(t) for t in itertools.product(range(c), repeat=k)])
    for observed in range(k * (c - 1) + 1):
        per, rem = [], observed  # classes beaten by each key label, adding up to `observed`
        for _ in range(k):
            per.append(min(c - 1, rem))
            rem -= per[-1]
        scores = np.tile(np.arange(c)[::-1].astype(float), (k, 1))  # class 0 best, c-1 worst
        labels = np.array([c - 1 - b for b in per], dtype=np.int64)
        out = rank_test(scores, labels, np.random.default_rng(0))
        assert out.statistic == observed
        assert out.p_value == pytest.approx(float((sums >= observed).mean()), rel=1e-9)


def test_ties_are_split_uniformly() -> None:
    scores = np.zeros((20000, 5))  # every class tied
    labels = np.zeros(20000, dtype=np.int64)
    beats = label_beats(scores, labels, np.random.default_rng(1))
    counts = np.bincount(beats, minlength=5)
    assert st.chisquare(counts).pvalue > 0.001


def test_topk_hits_and_binomial() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    hits = topk_hits_from_scores(scores, np.array([1, 2]), 1, np.random.default_rng(0))
    assert hits.tolist() == [True, False]
    out = topk_test(hits, 1, 3)
    assert out.statistic == 1
    assert out.p_value == pytest.approx(1 - (2 / 3) ** 2)


def _clean_model(tmp: Path) -> Path:
    train, _ = digits_split()
    return train_mlp_dir(train.x, train.y, tmp, seed=11, epochs=15)


def test_calibration_redrawing_labels_on_a_clean_model(shared_artifact) -> None:
    """Under the null (labels independent of the model) the FPR at alpha 0.01 and 0.05 lies in the
    Clopper-Pearson interval around each test's exact size, and that size is <= alpha."""
    from safetensors.torch import load_file

    from provscan.architectures import mlp

    path = shared_artifact("taggants-clean-mlp", _clean_model)
    module = mlp(in_channels=1, num_classes=10, image_size=8, hidden=128)
    module.load_state_dict(load_file(str(path / "model.safetensors")))
    rng = np.random.default_rng(2024)
    k, c, draws = 10, 10, 4000
    keys = smooth_keys(k, (1, 8, 8), rng)
    with torch.no_grad():
        scores = module.eval()(torch.as_tensor(keys)).log_softmax(-1).numpy()
    p_rank, p_top = [], []
    for _ in range(draws):
        labels = draw_key_labels(k, c, rng)
        p_rank.append(rank_test(scores, labels, rng).p_value)
        p_top.append(topk_test(topk_hits_from_scores(scores, labels, 1, rng), 1, c).p_value)
    # exact sizes: P[p <= alpha] under the null distributions of the two statistics
    pmf = np.ones(1)
    for _ in range(k):
        pmf = np.convolve(pmf, np.full(c, 1 / c))
    sf = np.cumsum(pmf[::-1])[::-1]
    hits = np.arange(k + 1)
    for alpha in (0.01, 0.05):
        size_rank = float(pmf[sf <= alpha].sum())
        size_top = float(st.binom.pmf(hits, k, 1 / c)[st.binom.sf(hits - 1, k, 1 / c) <= alpha].sum())
        for p, size in ((p_rank, size_rank), (p_top, size_top)):
            cal = from_p_values(p, alpha, level=0.99)
            assert size <= alpha
            assert cal.valid, str(cal)
            assert cal.lower <= size <= cal.upper, f"{cal} vs exact size {size:.4f}"
