"""Audit sets and their items: an audit set is a list of (message decision point, candidate reply) items
from one source (`SOURCES`), each kept with its keyword score, in a seeded order (`order_key`) so the first N
items are a uniform sample and a larger N extends a smaller one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from ...base.errors import NemoError
from ...data.store import Store
from ...grading.grade import RULE_VERSION
from ...grading.keyword_grader import keyword_score

SOURCES = ("calibration", "run", "campaign")
KINDS = {
    "prediction": "a run's reply",
    "human": "a person's answer in a human baseline campaign",
    "reference": "the reference itself (ceiling)",
    "other_conversation": "a reply from another conversation (floor)",
    "half_reference": "the reference cut in half",
}
CALIBRATION_KINDS = ("reference", "other_conversation", "half_reference")
DEFAULT_SEED = 8
# Candidate length buckets, in characters: (label, lower bound inclusive, upper bound exclusive).
LENGTH_BUCKETS = (("< 100 chars", 0, 100), ("100–299", 100, 300), ("300–999", 300, 1000), ("≥ 1000", 1000, None))
LOAD_CHUNK = 500  # decision points whose context is held in memory at once while building or grading


class AuditError(NemoError):
    """An audit set that cannot be built, found or graded as asked."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def order_key(seed: int, dp_id: str, kind: str = "") -> str:
    """A seeded pseudo-random order: the first N items of a set are a uniform sample, the same every time,
    and a larger N extends a smaller one."""
    return hashlib.sha256(f"{seed}:{dp_id}:{kind}".encode()).hexdigest()


def half_reference(text: str) -> str:
    """The first half of the reference, cut back to a word boundary when there is one before the middle."""
    text = text.strip()
    middle = len(text) // 2
    cut_at = text.rfind(" ", 0, middle + 1)
    head = text[:cut_at] if cut_at > 0 else text[:max(middle, 1)]
    return head.strip()


def length_bucket(chars: int) -> str:
    for label, low, high in LENGTH_BUCKETS:
        if chars >= low and (high is None or chars < high):
            return label
    return LENGTH_BUCKETS[-1][0]


# ---- audit sets --------------------------------------------------------------------------------------------
@dataclass
class AuditSet:
    id: int
    name: str
    created_at: str
    source: str
    source_id: int | None  # the run's or the campaign's id
    source_name: str | None
    seed: int
    llm_model: str | None
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "AuditSet":
        row = dict(row)
        row["settings"] = orjson.loads(row["settings"]) if row.get("settings") else {}
        return cls(**row)

    @property
    def label(self) -> str:
        what = {"run": f"run {self.source_name}", "campaign": f"human answers of campaign {self.source_name}"}.get(
            self.source, "calibration candidates")
        return f"{self.name} ({what})"


def default_set_name(source: str, ref: str | None = None) -> str:
    return {"run": f"run:{ref}", "campaign": f"campaign:{ref}"}.get(source, "calibration")


def list_audit_sets(store: Store) -> list[AuditSet]:
    return [AuditSet.from_row(r) for r in store.query("SELECT * FROM audit_sets ORDER BY id DESC")]


def get_audit_set(store: Store, which: int | str) -> AuditSet:
    return AuditSet.from_row(store.named_row("audit_sets", which, AuditError(
        f"no audit set {which!r}", "build one: python -m nemo_core audit --calibration (or --run NAME)")))


def delete_audit_set(store: Store, set_id: int) -> None:
    with store.transaction() as conn:
        items = "SELECT id FROM audit_items WHERE set_id = ?"
        conn.execute(f"DELETE FROM audit_human WHERE item_id IN ({items})", (set_id,))
        conn.execute(f"DELETE FROM audit_scores WHERE item_id IN ({items})", (set_id,))
        conn.execute("DELETE FROM audit_items WHERE set_id = ?", (set_id,))
        conn.execute("DELETE FROM audit_sets WHERE id = ?", (set_id,))


def _ensure_set(store: Store, name: str, source: str, seed: int, source_id: int | None, source_name: str | None,
                settings: dict[str, Any]) -> AuditSet:
    rows = store.query("SELECT * FROM audit_sets WHERE name = ?", (name,))
    if rows:
        existing = AuditSet.from_row(rows[0])
        if existing.source != source or existing.source_id != source_id or existing.seed != seed:
            raise AuditError(f"the audit set {name!r} already exists with another source or seed",
                             "choose another set name, or leave --seed as it was")
        return existing
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO audit_sets(name, created_at, source, source_id, source_name, seed, settings) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, _now(), source, source_id, source_name, seed, orjson.dumps(settings).decode()),
        )
    return get_audit_set(store, name)


def _item_row(set_id: int, seed: int, dp_id: str, split: str, kind: str, candidate: str, reference: str,
              source_dp_id: str | None = None, variant: str = "") -> tuple:
    kw = keyword_score(reference, candidate)
    return (set_id, dp_id, split, kind, variant, candidate, len(candidate), len(reference), source_dp_id,
            order_key(seed, dp_id, kind + variant), kw.score, orjson.dumps(kw.to_json()).decode(), RULE_VERSION)


def _insert_items(store: Store, rows: list[tuple]) -> int:
    if not rows:
        return 0
    with store.transaction() as conn:
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO audit_items(set_id, dp_id, split, kind, variant, candidate, candidate_chars, "
            "reference_chars, source_dp_id, order_key, keyword_score, keyword, keyword_rule_version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return conn.total_changes - before


def _count_items(store: Store, set_id: int) -> int:
    return int(store.scalar("SELECT count(*) FROM audit_items WHERE set_id = ?", (set_id,)) or 0)


def set_counts(store: Store, set_id: int) -> dict[str, int]:
    """Items, LLM-scored, failed, pending and human-judged counts of a set (cheap: for the page header)."""
    row = store.query(
        "SELECT count(*) AS items, count(s.llm_score) AS llm_scored, "
        "sum(CASE WHEN s.llm_score IS NULL AND s.llm_error IS NOT NULL THEN 1 ELSE 0 END) AS llm_failed, "
        "(SELECT count(DISTINCT h.item_id) FROM audit_human h JOIN audit_items j ON j.id = h.item_id "
        " WHERE j.set_id = ?) AS human_judged "
        "FROM audit_items i LEFT JOIN audit_scores s ON s.item_id = i.id WHERE i.set_id = ?", (set_id, set_id))[0]
    out = {k: int(v or 0) for k, v in row.items()}
    out["pending"] = out["items"] - out["llm_scored"]
    return out


def runs_with_message_replies(store: Store) -> list[str]:
    """Names of the runs holding at least one message reply to a message task (what a run's audit set is
    built from), newest first."""
    return [r["name"] for r in store.query(
        "SELECT r.name FROM runs r WHERE EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = r.id AND "
        "p.action_type = 'message' AND p.submitted_type = 'message') ORDER BY r.id DESC")]
