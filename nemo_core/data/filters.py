"""The one place that turns a decision point filter into SQL (datasette's `filters.py` pattern).

`DecisionPointFilter.where()` returns `(sql_fragment, params)`; values only ever travel as parameters.
Pages keep filters in the URL through `to_query()` / `from_query()`, so the same object serves the CLI,
the Browse page, campaigns and runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from ..base.config import ACTION_TYPES, SPLITS
from ..base.errors import NemoError
from .extract import FLAGS

SORTS: dict[str, str] = {
    "id": "dp.rowid",
    "turn_index": "dp.turn_index",
    "context_chars": "dp.context_chars",
    "n_tools": "dp.n_tools",
    "expected_tool": "dp.expected_tool",
}

_WORD = re.compile(r"\w+", re.UNICODE)


class BadFilter(NemoError):
    hint = "see `python -m nemo_core stats` for the splits, action types and flags in the store"


def fts_query(text: str) -> str | None:
    """A user's search words as a safe FTS5 query: every word must occur (quoted, so `AND`, `*`, `-` or a
    stray quote in the input are words, not syntax). None when the text has no words."""
    words = _WORD.findall(text)
    if not words:
        return None
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


@dataclass
class DecisionPointFilter:
    split: str | None = None
    action_type: str | None = None
    tool: str | None = None
    text: str | None = None
    flags: tuple[str, ...] = ()
    exclude_flags: tuple[str, ...] = ()
    min_tools: int | None = None
    max_tools: int | None = None
    min_turn: int | None = None
    max_turn: int | None = None
    conversation_uuid: str | None = None

    def validate(self) -> "DecisionPointFilter":
        if self.split is not None and self.split not in SPLITS:
            raise BadFilter(f"unknown split {self.split!r}; expected one of {', '.join(SPLITS)}")
        if self.action_type is not None and self.action_type not in ACTION_TYPES:
            raise BadFilter(f"unknown action type {self.action_type!r}; expected one of {', '.join(ACTION_TYPES)}")
        for name in (*self.flags, *self.exclude_flags):
            if name not in FLAGS:
                raise BadFilter(f"unknown flag {name!r}; expected one of {', '.join(FLAGS)}")
        return self

    def where(self) -> tuple[str, list[Any]]:
        """SQL conditions on `decision_points AS dp`, joined with AND ("1" when there are none)."""
        self.validate()
        parts: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("split", self.split),
            ("action_type", self.action_type),
            ("expected_tool", self.tool),
            ("conversation_uuid", self.conversation_uuid),
        ):
            if value:
                parts.append(f"dp.{column} = ?")
                params.append(value)
        for name in self.flags:
            parts.append(f"dp.flag_{name} = 1")
        for name in self.exclude_flags:
            parts.append(f"dp.flag_{name} = 0")
        for column, op, value in (
            ("n_tools", ">=", self.min_tools),
            ("n_tools", "<=", self.max_tools),
            ("turn_index", ">=", self.min_turn),
            ("turn_index", "<=", self.max_turn),
        ):
            if value is not None:
                # unary + keeps SQLite from driving the query by this range (it matches too many rows to
                # be worth it, and then sorts them all); equality filters and the sort order drive it instead
                parts.append(f"+dp.{column} {op} ?")
                params.append(int(value))
        if self.text:
            query = fts_query(self.text)
            if query:
                parts.append("dp.conversation_id IN (SELECT rowid FROM conversation_fts WHERE conversation_fts MATCH ?)")
                params.append(query)
        return (" AND ".join(parts) if parts else "1"), params

    def to_query(self) -> dict[str, str]:
        """URL query parameters for this filter (only what is set)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, "", ()):
                continue
            out[f.name] = ",".join(value) if isinstance(value, tuple) else str(value)
        return out

    @classmethod
    def from_query(cls, query: dict[str, Any]) -> "DecisionPointFilter":
        """The inverse of `to_query`; unknown keys are ignored, bad numbers raise `BadFilter`."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in query or query[f.name] in (None, ""):
                continue
            raw = query[f.name]
            if isinstance(raw, list):
                raw = ",".join(raw)
            if f.name in ("flags", "exclude_flags"):
                kwargs[f.name] = tuple(x for x in str(raw).split(",") if x)
            elif f.name.startswith(("min_", "max_")):
                try:
                    kwargs[f.name] = int(raw)
                except ValueError:
                    raise BadFilter(f"{f.name} must be a whole number, got {raw!r}") from None
            else:
                kwargs[f.name] = str(raw)
        return cls(**kwargs).validate()


def order_by(sort: str = "id", descending: bool = False) -> str:
    """An ORDER BY clause from a whitelisted sort name; ties broken by rowid so pages are stable."""
    if sort not in SORTS:
        raise BadFilter(f"unknown sort {sort!r}; expected one of {', '.join(SORTS)}")
    direction = "DESC" if descending else "ASC"
    column = SORTS[sort]
    if column == "dp.rowid":
        return f"dp.rowid {direction}"
    return f"{column} {direction}, dp.rowid {direction}"


@dataclass
class Page:
    """One page of decision point summaries, and where it sits."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0
    limit: int = 50
