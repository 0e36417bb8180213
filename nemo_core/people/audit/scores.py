"""The scored table of an audit set (every rater's score of every item, on a 0-1 scale) and people's blind
0-10 judgements, the third rater."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from ...data.store import Store
from .sets import AuditError, length_bucket


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class AuditRow:
    """One item with every rater's score on a 0-1 scale (None = not scored)."""

    item_id: int
    dp_id: str
    split: str
    kind: str
    candidate: str
    candidate_chars: int
    reference_chars: int
    keyword: float
    llm: float | None = None
    llm_score: int | None = None
    llm_reason: str | None = None
    llm_error: str | None = None
    llm_model: str | None = None
    human: float | None = None
    n_human: int = 0
    keyword_detail: dict[str, Any] | None = None
    source_dp_id: str | None = None

    @property
    def length_bucket(self) -> str:
        return length_bucket(self.candidate_chars)

    @property
    def difference(self) -> float | None:
        return None if self.llm is None else self.llm - self.keyword


def audit_rows(store: Store, set_id: int) -> list[AuditRow]:
    rows = store.query(
        "SELECT i.id, i.dp_id, i.split, i.kind, i.candidate, i.candidate_chars, i.reference_chars, i.keyword_score, "
        "i.keyword, i.source_dp_id, s.llm_score, s.llm_reason, s.llm_error, s.llm_model, "
        "(SELECT avg(h.score) FROM audit_human h WHERE h.item_id = i.id) AS human, "
        "(SELECT count(*) FROM audit_human h WHERE h.item_id = i.id) AS n_human "
        "FROM audit_items i LEFT JOIN audit_scores s ON s.item_id = i.id WHERE i.set_id = ? ORDER BY i.order_key",
        (set_id,))
    return [AuditRow(
        item_id=r["id"], dp_id=r["dp_id"], split=r["split"], kind=r["kind"], candidate=r["candidate"],
        candidate_chars=r["candidate_chars"], reference_chars=r["reference_chars"], keyword=r["keyword_score"],
        llm=None if r["llm_score"] is None else r["llm_score"] / 10, llm_score=r["llm_score"],
        llm_reason=r["llm_reason"], llm_error=r["llm_error"], llm_model=r["llm_model"],
        human=None if r["human"] is None else r["human"] / 10, n_human=r["n_human"],
        keyword_detail=orjson.loads(r["keyword"]) if r["keyword"] else None, source_dp_id=r["source_dp_id"],
    ) for r in rows]


# ---- human judgements ---------------------------------------------------------------------------------------------
def record_human(store: Store, item_id: int, rater: str, score: int) -> None:
    """A person's 0-10 judgement of one item (their second judgement of the same item replaces the first)."""
    rater = (rater or "").strip()
    if not rater:
        raise AuditError("a judgement needs the rater's name", "type a name or initials")
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
        raise AuditError(f"a judgement is a whole number from 0 to 10, not {score!r}")
    if not store.scalar("SELECT 1 FROM audit_items WHERE id = ?", (item_id,)):
        raise AuditError(f"no audit item {item_id}")
    with store.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO audit_human(item_id, rater, score, created_at) VALUES (?, ?, ?, ?)",
                     (item_id, rater, score, _now()))


def next_blind_item(store: Store, set_id: int, rater: str) -> AuditRow | None:
    """The first item (in the set's seeded order) this rater has not judged; its scores are not loaded, so
    a page cannot show them by accident before the judgement."""
    rows = store.query(
        "SELECT id, dp_id, split, kind, candidate, candidate_chars, reference_chars FROM audit_items i "
        "WHERE set_id = ? AND NOT EXISTS (SELECT 1 FROM audit_human h WHERE h.item_id = i.id AND h.rater = ?) "
        "ORDER BY order_key LIMIT 1", (set_id, (rater or "").strip()))
    if not rows:
        return None
    r = rows[0]
    return AuditRow(item_id=r["id"], dp_id=r["dp_id"], split=r["split"], kind="hidden", candidate=r["candidate"],
                    candidate_chars=r["candidate_chars"], reference_chars=r["reference_chars"], keyword=float("nan"))


def human_judgements(store: Store, set_id: int) -> list[dict[str, Any]]:
    return store.query(
        "SELECT h.item_id, h.rater, h.score, h.created_at, i.dp_id, i.kind FROM audit_human h "
        "JOIN audit_items i ON i.id = h.item_id WHERE i.set_id = ? ORDER BY h.id", (set_id,))
