"""Statistics on hand-checked tables."""

from __future__ import annotations

import random

import pytest

from nemo_core.base import metrics


def test_mean_ignores_ungraded():
    assert metrics.mean([1.0, None, 0.0, 0.5]) == 0.5
    assert metrics.mean([None, None]) is None
    ci = metrics.mean_ci([1.0, None, 0.0, 0.5])
    assert (ci.mean, ci.n, ci.n_ungraded) == (0.5, 3, 1)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    values = [1.0] * 70 + [0.0] * 30
    low, high = metrics.bootstrap_ci(values, seed=1)
    assert (low, high) == metrics.bootstrap_ci(values, seed=1)
    assert low < 0.7 < high
    # binomial: sd of the mean = sqrt(.7*.3/100) = 0.0458; the 95% interval is about ±0.09
    assert 0.6 < low < 0.63 and 0.77 < high < 0.80


def test_bootstrap_from_counts_equals_bootstrap_from_items():
    rng = random.Random(3)
    values = [rng.choice([0.0, 0.5, 0.75, 1.0]) for _ in range(500)]
    counts = {v: values.count(v) for v in set(values)}
    assert metrics.bootstrap_ci(values, seed=9) == metrics.bootstrap_ci_counts(counts, seed=9)
    ci = metrics.mean_ci_counts({**counts, None: 7}, seed=9)
    assert ci.n == 500 and ci.n_ungraded == 7 and ci.mean == pytest.approx(sum(values) / 500)


def test_degenerate_intervals():
    assert metrics.bootstrap_ci([]) == (None, None)
    assert metrics.bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert metrics.mean_ci_counts({None: 4}).fmt() == "n/a (0 graded, 4 ungraded)"


def test_normal_approximation_for_many_distinct_values(monkeypatch):
    monkeypatch.setattr(metrics, "MAX_DISTINCT_FOR_BOOTSTRAP", 3)
    low, high = metrics.bootstrap_ci_counts({0.0: 1, 1.0: 1, 2.0: 1, 3.0: 1})
    # mean 1.5, sd 1.2910, se 0.6455: 1.5 ± 1.96 * 0.6455
    assert low == pytest.approx(1.5 - 1.959964 * 0.645497, abs=1e-5)
    assert high == pytest.approx(1.5 + 1.959964 * 0.645497, abs=1e-5)


def test_paired_difference():
    ci = metrics.paired_difference_ci([1.0, 0.5, None, 1.0], [0.5, 0.5, 1.0, None], seed=2)
    assert (ci.mean, ci.n, ci.n_ungraded) == (0.25, 2, 2)
    with pytest.raises(ValueError):
        metrics.paired_difference_ci([1.0], [1.0, 0.0])


def test_cohen_kappa_hand_checked():
    # 2x2 table: both yes 20, a yes/b no 5, a no/b yes 10, both no 15 (n=50)
    a = ["y"] * 20 + ["y"] * 5 + ["n"] * 10 + ["n"] * 15
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    # po = 35/50 = 0.7; pe = (25*30 + 25*20) / 2500 = 0.5; kappa = 0.2 / 0.5 = 0.4
    assert metrics.cohen_kappa(a, b) == pytest.approx(0.4)
    assert metrics.cohen_kappa(["a", "b"], ["a", "b"]) == 1.0
    assert metrics.cohen_kappa(["a", None], [None, "b"]) is None


def test_correlations_hand_checked():
    assert metrics.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert metrics.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # x = 1..4, y = 1,3,2,4: sxy = 4, sxx = syy = 5 -> 0.8
    assert metrics.pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert metrics.pearson([1, 1], [2, 3]) is None
    assert metrics.ranks([10, 20, 20, 30]) == [1.0, 2.5, 2.5, 4.0]
    assert metrics.spearman([1, 2, 3, 4], [10, 100, 1000, 10_000]) == pytest.approx(1.0)
    assert metrics.spearman([1, None, 3], [2, 5, None]) is None


def test_histogram_edges():
    assert metrics.histogram([0.0, 0.25, 0.5, 1.0, None], [0.0, 0.5, 1.0]) == [2, 2]
