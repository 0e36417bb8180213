"""The audit's figures from its scored rows (pure, tested on hand-checked tables): Pearson and Spearman
correlation, mean absolute difference, the confusion matrix and Cohen's kappa at a pass threshold, a sweep of the
keyword grader's threshold (kappa and F1 against the LLM's pass/fail), agreement by split, by candidate length
and by kind, and people's judgements as a third rater."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...base.metrics import (Confusion, SweepPoint, best_threshold, binary_confusion, cohen_kappa, f1_binary, mean,
                             mean_absolute_difference, passes, pearson, spearman, threshold_sweep)
from .scores import AuditRow
from .sets import KINDS, LENGTH_BUCKETS

DEFAULT_THRESHOLD = 0.5
SWEEP_THRESHOLDS = tuple(round(i * 0.05, 2) for i in range(21))


@dataclass
class PairAgreement:
    """Two raters over the items both scored."""

    a: str
    b: str
    n: int
    pearson: float | None
    spearman: float | None
    mae: float | None
    kappa: float | None
    mean_a: float | None
    mean_b: float | None

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "n": self.n, "pearson": self.pearson, "spearman": self.spearman,
                "mae": self.mae, "kappa": self.kappa, "mean_a": self.mean_a, "mean_b": self.mean_b}


def pair_agreement(a_name: str, b_name: str, a: Sequence[float | None], b: Sequence[float | None],
                   threshold: float = DEFAULT_THRESHOLD) -> PairAgreement:
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    xs = [x for x, _ in pairs]
    ys = [y for _, y in pairs]
    return PairAgreement(
        a_name, b_name, len(pairs), pearson(xs, ys), spearman(xs, ys), mean_absolute_difference(xs, ys),
        cohen_kappa(passes(xs, threshold), passes(ys, threshold)) if pairs else None, mean(xs), mean(ys),
    )


@dataclass
class GroupAgreement:
    """Keyword vs LLM inside one group (a split, a length bucket, a kind)."""

    group: str
    n_items: int
    agreement: PairAgreement

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "n_items": self.n_items, **self.agreement.to_json()}


@dataclass
class Agreement:
    """Every figure of the audit, keyword grader against LLM grader (the LLM's pass/fail is the reference
    for the confusion matrix and F1), plus humans as a third rater."""

    n_items: int
    n: int  # items with both scores
    n_llm_failed: int
    n_pending: int
    threshold: float
    pearson: float | None
    spearman: float | None
    mae: float | None
    mean_keyword: float | None
    mean_llm: float | None
    confusion: Confusion
    kappa: float | None
    f1: float | None
    sweep: list[SweepPoint]
    best: SweepPoint | None
    by_split: list[GroupAgreement]
    by_length: list[GroupAgreement]
    by_kind: list[GroupAgreement]
    n_human: int
    human: list[PairAgreement]

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n, "n_items": self.n_items, "n_llm_failed": self.n_llm_failed, "n_pending": self.n_pending,
            "threshold": self.threshold, "pearson": self.pearson, "spearman": self.spearman, "mae": self.mae,
            "mean_keyword": self.mean_keyword, "mean_llm": self.mean_llm,
            "confusion": self.confusion.to_json(), "kappa": self.kappa, "f1": self.f1,
            "best_threshold": None if self.best is None else self.best.threshold,
            "best_kappa": None if self.best is None else self.best.kappa,
            "sweep": [{"threshold": p.threshold, "kappa": p.kappa, "f1": p.f1} for p in self.sweep],
            "by_split": [g.to_json() for g in self.by_split],
            "by_length": [g.to_json() for g in self.by_length],
            "by_kind": [g.to_json() for g in self.by_kind],
            "n_human": self.n_human, "human": [h.to_json() for h in self.human],
        }


def _groups(rows: Sequence[AuditRow], key: Callable[[AuditRow], str], order: Sequence[str] | None,
            threshold: float) -> list[GroupAgreement]:
    buckets: dict[str, list[AuditRow]] = {}
    for row in rows:
        buckets.setdefault(key(row), []).append(row)
    names = [n for n in (order or sorted(buckets)) if n in buckets]
    return [GroupAgreement(n, len(buckets[n]), pair_agreement(
        "keyword", "llm", [r.keyword for r in buckets[n]], [r.llm for r in buckets[n]], threshold)) for n in names]


def agreement(rows: Sequence[AuditRow], threshold: float = DEFAULT_THRESHOLD,
              thresholds: Sequence[float] = SWEEP_THRESHOLDS) -> Agreement:
    """The audit's figures from its rows (pure: the page's slider recomputes this without the database)."""
    keyword = [r.keyword for r in rows]
    llm = [r.llm for r in rows]
    both = pair_agreement("keyword", "llm", keyword, llm, threshold)
    reference = passes(llm, threshold)
    rated = passes([k if l is not None else None for k, l in zip(keyword, llm)], threshold)
    confusion = binary_confusion(reference, rated)
    sweep = threshold_sweep(llm, keyword, reference_threshold=threshold, thresholds=thresholds)
    judged = [r for r in rows if r.human is not None]
    human = [
        pair_agreement("human", "llm", [r.human for r in judged], [r.llm for r in judged], threshold),
        pair_agreement("human", "keyword", [r.human for r in judged], [r.keyword for r in judged], threshold),
    ]
    return Agreement(
        n_items=len(rows), n=both.n, n_llm_failed=sum(1 for r in rows if r.llm is None and r.llm_error),
        n_pending=sum(1 for r in rows if r.llm is None and not r.llm_error), threshold=threshold,
        pearson=both.pearson, spearman=both.spearman, mae=both.mae, mean_keyword=mean(keyword), mean_llm=mean(llm),
        confusion=confusion, kappa=both.kappa, f1=f1_binary(confusion), sweep=sweep, best=best_threshold(sweep),
        by_split=_groups(rows, lambda r: r.split, None, threshold),
        by_length=_groups(rows, lambda r: r.length_bucket, [b[0] for b in LENGTH_BUCKETS], threshold),
        by_kind=_groups(rows, lambda r: r.kind, list(KINDS), threshold),
        n_human=len(judged), human=human,
    )


def disagreements(rows: Sequence[AuditRow], limit: int | None = None) -> list[AuditRow]:
    """Items scored by both graders, the largest |LLM - keyword| first (ties: the set's order)."""
    scored = [r for r in rows if r.llm is not None]
    scored.sort(key=lambda r: -abs(r.llm - r.keyword))  # stable: ties keep the seeded order
    return scored[:limit] if limit is not None else scored
