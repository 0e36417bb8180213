"""Attempts: answers tried at one decision point from the "Try" panel, a person's or a model's.

An attempt is a single exploratory answer (not part of a run): who tried (an annotator's name or a model),
the action, the breakdown it got and when. A model attempt that failed (timeout, refusal of the request,
...) is kept too, with no action and its error in `extra`, because "this model cannot answer here" is worth
seeing. Nothing secret is stored: `extra` holds latency, tokens, notes and the reply, never a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from ..base.errors import NemoError
from ..data.store import Store

ATTEMPT_KINDS = ("human", "model")


MAX_LISTED = 200


class AttemptError(NemoError):
    """An attempt that cannot be saved as given."""


@dataclass
class Attempt:
    id: int
    dp_id: str
    who: str
    kind: str
    action: dict[str, Any] | None
    breakdown: dict[str, Any] | None
    reward: float | None
    reason: str | None
    created_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Attempt":
        row = dict(row)
        for key in ("action", "breakdown", "extra"):
            row[key] = orjson.loads(row[key]) if row.get(key) else None
        row["extra"] = row["extra"] or {}
        return cls(**row)

    @property
    def error(self) -> str | None:
        return self.extra.get("error") if self.action is None else None

    def summary(self) -> str:
        """One line for a list: the call or the start of the message (or the error)."""
        if self.action is None:
            return f"failed: {self.extra.get('error_kind') or 'error'}"
        if self.action.get("type") == "message":
            text = " ".join(str(self.action.get("content") or "").split())
            return "message: " + (text[:77] + "…" if len(text) > 78 else text)
        args = orjson.dumps(self.action.get("arguments"), option=orjson.OPT_NON_STR_KEYS).decode()
        return f"{self.action.get('name')}({args[:70] + '…' if len(args) > 71 else args})"


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def save_attempt(store: Store, dp_id: str, *, who: str, kind: str, action: dict[str, Any] | None,
                 breakdown: Any | None = None, extra: dict[str, Any] | None = None) -> int:
    """Store one attempt; its id. `breakdown` is a `grading.Breakdown` (or its JSON), None when the answer
    could not be graded (then `extra["error"]` says why)."""
    if kind not in ATTEMPT_KINDS:
        raise AttemptError(f"unknown attempt kind {kind!r}", "human or model")
    who = (who or "").strip()
    if not who:
        raise AttemptError("an attempt needs a 'who' (a name, or the model)", "type your name in the panel")
    data = breakdown.to_json() if hasattr(breakdown, "to_json") else breakdown
    reward = data.get("reward") if isinstance(data, dict) else None
    reason = data.get("reason") if isinstance(data, dict) else None
    with store.transaction() as conn:
        return conn.execute(
            "INSERT INTO attempts(dp_id, who, kind, action, breakdown, reward, reason, extra, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (dp_id, who[:200], kind, _dumps(action), _dumps(data), reward, reason, _dumps(extra or None),
             datetime.now(timezone.utc).isoformat(timespec="seconds")),
        ).lastrowid


def list_attempts(store: Store, dp_id: str, limit: int = MAX_LISTED) -> list[Attempt]:
    """The attempts at one decision point, newest first."""
    rows = store.query("SELECT * FROM attempts WHERE dp_id = ? ORDER BY id DESC LIMIT ?", (dp_id, int(limit)))
    return [Attempt.from_row(r) for r in rows]


def count_attempts(store: Store, dp_id: str) -> int:
    return store.scalar("SELECT count(*) FROM attempts WHERE dp_id = ?", (dp_id,)) or 0


def get_attempt(store: Store, attempt_id: int) -> Attempt:
    rows = store.query("SELECT * FROM attempts WHERE id = ?", (int(attempt_id),))
    if not rows:
        raise AttemptError(f"no attempt {attempt_id}")
    return Attempt.from_row(rows[0])


def delete_attempt(store: Store, attempt_id: int) -> None:
    with store.transaction() as conn:
        conn.execute("DELETE FROM attempts WHERE id = ?", (int(attempt_id),))
