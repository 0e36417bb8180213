"""Statistics over scores: pure functions on lists (or value counts), one place for every page and command.

`None` means "not graded" and is never counted as 0: every function here drops it and the callers show
how many were dropped. Bootstrap intervals are seeded, so the same data always gives the same interval.

For large samples the bootstrap works on *value counts* (`bootstrap_ci_counts`): resampling n items from
k distinct values is a multinomial draw, so a million rewards that take a few hundred distinct values
resample in milliseconds, with exactly the same distribution as resampling the items one by one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20251126
# Above this many distinct values, the CI uses the normal approximation (which the bootstrap
# converges to at the sample sizes where that many distinct values occur).
MAX_DISTINCT_FOR_BOOTSTRAP = 50_000


def graded(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def mean(values: Iterable[float | None]) -> float | None:
    """The mean of the graded values; None when there are none."""
    xs = graded(values)
    return sum(xs) / len(xs) if xs else None


@dataclass(frozen=True)
class MeanCI:
    """A mean with its 95% bootstrap interval, over `n` graded items; `n_ungraded` were left out."""

    mean: float | None
    low: float | None
    high: float | None
    n: int
    n_ungraded: int = 0

    def to_json(self) -> dict:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high, "n": self.n, "n_ungraded": self.n_ungraded}

    def fmt(self, digits: int = 3) -> str:
        if self.mean is None:
            return f"n/a (0 graded, {self.n_ungraded} ungraded)"
        ci = f" [{self.low:.{digits}f}, {self.high:.{digits}f}]" if self.low is not None else ""
        extra = f", {self.n_ungraded:,} ungraded" if self.n_ungraded else ""
        return f"{self.mean:.{digits}f}{ci} (n={self.n:,}{extra})"


def bootstrap_ci_counts(counts: dict[float, int], *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                        confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean, from {value: how many items have it}."""
    items = [(float(v), int(c)) for v, c in counts.items() if v is not None and c > 0]
    n = sum(c for _, c in items)
    if n == 0:
        return None, None
    values = np.array([v for v, _ in items])
    weights = np.array([c for _, c in items], dtype=float)
    if len(items) == 1:
        return float(values[0]), float(values[0])
    alpha = (1 - confidence) / 2
    if len(items) > MAX_DISTINCT_FOR_BOOTSTRAP:
        m = float((values * weights).sum() / n)
        sd = math.sqrt(float((weights * (values - m) ** 2).sum()) / max(n - 1, 1))
        z = 1.959963984540054 if confidence == 0.95 else _z(confidence)
        return m - z * sd / math.sqrt(n), m + z * sd / math.sqrt(n)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, weights / n, size=n_resamples)
    means = draws @ values / n
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def bootstrap_ci(values: Sequence[float | None], *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                 confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean of the graded values."""
    return bootstrap_ci_counts(Counter(graded(values)), n_resamples=n_resamples, seed=seed, confidence=confidence)


def mean_ci(values: Sequence[float | None], **kwargs) -> MeanCI:
    xs = graded(values)
    low, high = bootstrap_ci_counts(Counter(xs), **kwargs)
    return MeanCI(sum(xs) / len(xs) if xs else None, low, high, len(xs), len(values) - len(xs))


def mean_ci_counts(counts: dict[float | None, int], **kwargs) -> MeanCI:
    """`mean_ci` from {value: count}; the count under None is the ungraded number."""
    n_ungraded = int(counts.get(None, 0))
    graded_counts = {float(v): int(c) for v, c in counts.items() if v is not None}
    n = sum(graded_counts.values())
    m = sum(v * c for v, c in graded_counts.items()) / n if n else None
    low, high = bootstrap_ci_counts(graded_counts, **kwargs)
    return MeanCI(m, low, high, n, n_ungraded)


def paired_difference_ci(a: Sequence[float | None], b: Sequence[float | None], *, n_resamples: int = DEFAULT_RESAMPLES,
                         seed: int = DEFAULT_SEED, confidence: float = 0.95) -> MeanCI:
    """Mean of a[i] - b[i] over the pairs where both are graded, with a bootstrap interval (comparing two
    runs on the same decision points)."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = [x - y for x, y in zip(a, b) if x is not None and y is not None]
    ci = mean_ci(diffs, n_resamples=n_resamples, seed=seed, confidence=confidence)
    return MeanCI(ci.mean, ci.low, ci.high, ci.n, len(a) - len(diffs))


def cohen_kappa(a: Sequence, b: Sequence) -> float | None:
    """Cohen's kappa between two raters' labels over the items both labelled (None = not labelled)."""
    if len(a) != len(b):
        raise ValueError("the two label lists must have the same length")
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for x, y in pairs if x == y) / n
    ca, cb = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    expected = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if expected == 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1 - expected)


def pearson(x: Sequence[float | None], y: Sequence[float | None]) -> float | None:
    """Pearson correlation over the pairs where both are present; None when undefined."""
    pairs = [(float(a), float(b)) for a, b in zip(x, y) if a is not None and b is not None]
    if len(pairs) < 2:
        return None
    xs, ys = zip(*pairs)
    if len(set(xs)) == 1 or len(set(ys)) == 1:  # constant: undefined (rounding would give ±1e-16, not None)
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((a - mx) * (b - my) for a, b in pairs)
    sxx = sum((a - mx) ** 2 for a in xs)
    syy = sum((b - my) ** 2 for b in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float | None], y: Sequence[float | None]) -> float | None:
    """Spearman rank correlation (Pearson on average ranks) over the pairs where both are present."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    if len(pairs) < 2:
        return None
    xs, ys = zip(*pairs)
    return pearson(ranks(list(xs)), ranks(list(ys)))


def histogram(values: Iterable[float | None], bins: Sequence[float]) -> list[int]:
    """Counts of graded values in [bins[i], bins[i+1]) — the last bin includes its upper edge."""
    counts = [0] * (len(bins) - 1)
    for v in graded(values):
        for i in range(len(bins) - 1):
            last = i == len(bins) - 2
            if bins[i] <= v < bins[i + 1] or (last and v == bins[-1]):
                counts[i] += 1
                break
    return counts


# ---- agreement between two graders (issue 8: the grader audit) -------------------------------------------
def mean_absolute_difference(x: Sequence[float | None], y: Sequence[float | None]) -> float | None:
    """Mean |x[i] - y[i]| over the pairs where both are present; None when there are none."""
    if len(x) != len(y):
        raise ValueError("paired samples must have the same length")
    diffs = [abs(float(a) - float(b)) for a, b in zip(x, y) if a is not None and b is not None]
    return sum(diffs) / len(diffs) if diffs else None


@dataclass(frozen=True)
class Confusion:
    """A 2x2 table of a rater's pass/fail against a reference rater's: tp = both pass, tn = both fail,
    fp = the rater passes what the reference fails, fn = the reverse."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def to_json(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}


def binary_confusion(reference: Sequence[bool | None], rater: Sequence[bool | None]) -> Confusion:
    """The 2x2 table over the items both labelled (None = not labelled)."""
    if len(reference) != len(rater):
        raise ValueError("the two label lists must have the same length")
    tp = fp = fn = tn = 0
    for r, p in zip(reference, rater):
        if r is None or p is None:
            continue
        if r and p:
            tp += 1
        elif p:
            fp += 1
        elif r:
            fn += 1
        else:
            tn += 1
    return Confusion(tp, fp, fn, tn)


def f1_binary(confusion: Confusion) -> float | None:
    """F1 of the positive class, 2tp / (2tp + fp + fn); None when neither rater passes anything."""
    denominator = 2 * confusion.tp + confusion.fp + confusion.fn
    return 2 * confusion.tp / denominator if denominator else None


def passes(scores: Sequence[float | None], threshold: float) -> list[bool | None]:
    """score >= threshold (with a 1e-9 tolerance, so 0.7 passes at a slider's 0.7000000000000001)."""
    return [None if s is None else float(s) >= threshold - 1e-9 for s in scores]


@dataclass(frozen=True)
class SweepPoint:
    threshold: float
    kappa: float | None
    f1: float | None
    confusion: Confusion


def threshold_sweep(reference_scores: Sequence[float | None], rater_scores: Sequence[float | None], *,
                    reference_threshold: float, thresholds: Sequence[float]) -> list[SweepPoint]:
    """Kappa and F1 of `rater_scores >= t` against `reference_scores >= reference_threshold`, for each t:
    which threshold of one grader best reproduces the other's pass/fail."""
    reference = passes(reference_scores, reference_threshold)
    out = []
    for t in thresholds:
        rated = passes(rater_scores, t)
        confusion = binary_confusion(reference, rated)
        out.append(SweepPoint(float(t), cohen_kappa(reference, rated), f1_binary(confusion), confusion))
    return out


def best_threshold(sweep: Sequence[SweepPoint]) -> SweepPoint | None:
    """The point with the highest kappa (ties: the one with the higher F1, then the lower threshold)."""
    scored = [p for p in sweep if p.kappa is not None]
    if not scored:
        return None
    return max(scored, key=lambda p: (round(p.kappa, 12), -1 if p.f1 is None else round(p.f1, 12), -p.threshold))


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa from a count table: one row per item, one column per category, each cell the number of
    raters who put the item in that category. Items may have different numbers of raters (at least 2 each;
    items with fewer are left out): P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)), p_j = sum_i n_ij / sum_i n_i,
    kappa = (mean P_i - sum_j p_j^2) / (1 - sum_j p_j^2). With the same raters count on every item this is
    Fleiss (1971). None when no item has 2 raters; 1.0 (or 0.0) when every rating is in one category."""
    rows = [[int(c) for c in row] for row in table if sum(int(c) for c in row) >= 2]
    if not rows:
        return None
    width = max(len(r) for r in rows)
    rows = [r + [0] * (width - len(r)) for r in rows]
    per_item = [(sum(c * c for c in r) - sum(r)) / (sum(r) * (sum(r) - 1)) for r in rows]
    p_bar = sum(per_item) / len(per_item)
    total = sum(sum(r) for r in rows)
    p_e = sum((sum(r[j] for r in rows) / total) ** 2 for j in range(width))
    if p_e == 1.0:
        return 1.0 if p_bar == 1.0 else 0.0
    return (p_bar - p_e) / (1 - p_e)


def fleiss_kappa_labels(items: Sequence[Sequence]) -> float | None:
    """Fleiss' kappa from each item's list of labels (one per rater; None = not labelled)."""
    labels = sorted({x for item in items for x in item if x is not None}, key=str)
    index = {label: j for j, label in enumerate(labels)}
    table = []
    for item in items:
        row = [0] * len(labels)
        for x in item:
            if x is not None:
                row[index[x]] += 1
        table.append(row)
    return fleiss_kappa(table)
