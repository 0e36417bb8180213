"""The grader audit's statistics on hand-checked tables (no database, no server)."""

from __future__ import annotations

import csv
import io
import math

import pytest

from nemo_core.base import metrics
from nemo_core.people.audit.scores import AuditRow
from nemo_core.people.audit.agreement import agreement, disagreements
from nemo_core.people.audit.sets import half_reference, length_bucket, order_key
from nemo_core.people.audit.export import to_csv


def row(i: int, keyword: float, llm: float | None, *, split: str = "tool_calling", chars: int = 50,
        human: float | None = None, kind: str = "prediction", error: str | None = None, text: str = "reply") -> AuditRow:
    return AuditRow(item_id=i, dp_id=f"{split}/u{i}/1", split=split, kind=kind, candidate=text, candidate_chars=chars,
                    reference_chars=60, keyword=keyword, llm=llm, llm_score=None if llm is None else round(llm * 10),
                    llm_error=error, human=human, n_human=0 if human is None else 1)


# keyword [1.0, 0.6, 0.0, 0.3] vs LLM [1.0, 0.8, 0.1, 0.2] (checked by hand below), a pending item, a failed one
TABLE = [
    row(1, 1.0, 1.0, chars=50, human=0.9),
    row(2, 0.6, 0.8, chars=150, human=0.5),
    row(3, 0.0, 0.1, split="interactive_agent", chars=500, human=0.0),
    row(4, 0.3, 0.2, split="interactive_agent", chars=2000),
    row(5, 0.5, None),
    row(6, 0.2, None, error="HTTP 400 from the grader API"),
]


def test_correlations_and_mean_absolute_difference():
    a = agreement(TABLE, threshold=0.5)
    assert (a.n_items, a.n, a.n_pending, a.n_llm_failed) == (6, 4, 1, 1)
    # means 0.475 and 0.525; sxy = 0.5425, sxx = 0.5475, syy = 0.5875
    assert a.pearson == pytest.approx(0.5425 / math.sqrt(0.5475 * 0.5875))
    assert a.spearman == pytest.approx(1.0)  # same order on both sides
    assert a.mae == pytest.approx((0 + 0.2 + 0.1 + 0.1) / 4)
    assert a.mean_llm == pytest.approx(0.525)


def test_confusion_and_kappa_at_the_threshold():
    a = agreement(TABLE, threshold=0.5)
    assert a.confusion.to_json() == {"tp": 2, "fp": 0, "fn": 0, "tn": 2}  # items 5 and 6 have no LLM score
    assert a.kappa == pytest.approx(1.0)
    # at 0.25: LLM passes items 1, 2 (0.8) only; keyword passes 1, 2 and 4 (0.3)
    b = agreement(TABLE, threshold=0.25)
    assert b.confusion.to_json() == {"tp": 2, "fp": 1, "fn": 0, "tn": 1}
    # observed 3/4; chance = 2/4 * 3/4 + 2/4 * 1/4 = 1/2 -> kappa 1/2; F1 = 4 / (4 + 1)
    assert b.kappa == pytest.approx(0.5)
    assert b.f1 == pytest.approx(0.8)


def test_threshold_sweep_and_best_threshold():
    a = agreement(TABLE, threshold=0.5)
    by_t = {p.threshold: p for p in a.sweep}
    assert sorted(by_t) == [round(i * 0.05, 2) for i in range(21)]
    assert by_t[0.3].kappa == pytest.approx(0.5) and by_t[0.3].f1 == pytest.approx(0.8)  # keyword passes 1, 2, 4
    assert by_t[0.65].kappa == pytest.approx(0.5) and by_t[0.65].f1 == pytest.approx(2 / 3)  # keyword passes 1
    for t in (0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
        assert by_t[t].kappa == pytest.approx(1.0)
    assert a.best.threshold == 0.35  # ties on kappa and F1: the lowest threshold


def test_agreement_by_split_length_and_kind():
    a = agreement(TABLE, threshold=0.5)
    splits = {g.group: g for g in a.by_split}
    assert splits["tool_calling"].n_items == 4 and splits["tool_calling"].agreement.n == 2
    assert splits["tool_calling"].agreement.mae == pytest.approx(0.1)
    assert splits["interactive_agent"].agreement.mean_a == pytest.approx(0.15)
    assert [g.group for g in a.by_length] == ["< 100 chars", "100–299", "300–999", "≥ 1000"]
    assert [g.agreement.n for g in a.by_length] == [1, 1, 1, 1]
    assert a.by_length[0].n_items == 3  # items 1, 5 and 6 are all 50 characters
    assert [g.group for g in a.by_kind] == ["prediction"]


def test_humans_as_a_third_rater():
    a = agreement(TABLE, threshold=0.5)
    assert a.n_human == 3
    human_llm, human_keyword = a.human
    assert (human_llm.b, human_keyword.b) == ("llm", "keyword")
    assert human_llm.n == 3 and human_llm.mae == pytest.approx((0.1 + 0.3 + 0.1) / 3)
    assert human_keyword.mae == pytest.approx((0.1 + 0.1 + 0.0) / 3)
    assert human_llm.kappa == pytest.approx(1.0)


def test_no_llm_scores_still_gives_the_keyword_side():
    rows = [row(1, 0.4, None), row(2, 0.9, None, human=1.0)]
    a = agreement(rows)
    assert (a.n, a.pearson, a.kappa, a.best) == (0, None, None, None)
    assert a.mean_keyword == pytest.approx(0.65)
    assert a.human[1].n == 1 and a.human[1].mae == pytest.approx(0.1)


def test_disagreements_sorted_by_absolute_difference():
    rows = [row(1, 0.9, 0.1), row(2, 0.5, 0.5), row(3, 0.0, 1.0), row(4, 0.3, None), row(5, 0.2, 0.6)]
    assert [r.item_id for r in disagreements(rows)] == [3, 1, 5, 2]
    assert [r.item_id for r in disagreements(rows, limit=2)] == [3, 1]


def test_metrics_helpers():
    assert metrics.mean_absolute_difference([1, None, 0.5], [0.5, 1, None]) == 0.5
    assert metrics.mean_absolute_difference([None], [1]) is None
    assert metrics.passes([0.7, 0.69, None], 0.1 * 7) == [True, False, None]  # 0.7000000000000001
    confusion = metrics.binary_confusion([True, True, False, False, None], [True, False, True, False, True])
    assert confusion.to_json() == {"tp": 1, "fp": 1, "fn": 1, "tn": 1} and confusion.n == 4
    assert metrics.f1_binary(confusion) == 0.5
    assert metrics.f1_binary(metrics.Confusion(0, 0, 0, 5)) is None
    assert metrics.pearson([0.7, 0.7, 0.7], [0.1, 0.5, 0.9]) is None  # constant: undefined, not ±1e-16


def test_half_reference_length_bucket_and_order():
    assert half_reference("one two three four five six") == "one two three"
    assert half_reference("  abcdefgh ") == "abcd"
    assert half_reference("x") == "x"
    assert [length_bucket(n) for n in (0, 99, 100, 299, 300, 999, 1000, 10**6)] == [
        "< 100 chars", "< 100 chars", "100–299", "100–299", "300–999", "300–999", "≥ 1000", "≥ 1000"]
    assert order_key(8, "a/b/1") == order_key(8, "a/b/1") != order_key(9, "a/b/1")


def test_csv_export_keeps_text_inert():
    rows = [row(1, 0.5, 0.7, text='=HYPERLINK("http://x")'), row(2, 1.0, None, text="plain, with \"quotes\"")]
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert parsed[0]["candidate"] == "'=HYPERLINK(\"http://x\")"
    assert parsed[0]["llm_score"] == "0.7" and parsed[0]["abs_difference"] == "0.2"
    assert parsed[1]["candidate"] == 'plain, with "quotes"' and parsed[1]["llm_score"] == ""
    assert parsed[0]["length_bucket"] == "< 100 chars"
