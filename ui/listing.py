"""The filtered, sorted list of decision points as it lives in the URL.

Browse writes it, the decision point page reads it (for previous / next in the list), so a filtered
view can be shared, reloaded, and walked through one decision point at a time. The filter part is
`DecisionPointFilter.to_query()`; this adds `sort`, `desc` and a 1-based `page`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nemo_core.data.filters import SORTS, BadFilter, DecisionPointFilter

PAGE_SIZE = 50
LIST_KEYS = ("sort", "desc", "page")


@dataclass
class ListState:
    filter: DecisionPointFilter = field(default_factory=DecisionPointFilter)
    sort: str = "id"
    descending: bool = False
    page: int = 1

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> "ListState":
        """Read the URL's query parameters; unknown keys (like `id`) are ignored, bad values raise
        `BadFilter` with a message fit for the page."""
        query = {k: query[k] for k in query}
        flt = DecisionPointFilter.from_query(query)
        sort = str(query.get("sort") or "id")
        if sort not in SORTS:
            raise BadFilter(f"unknown sort {sort!r}; expected one of {', '.join(SORTS)}")
        desc = str(query.get("desc") or "0")
        if desc not in ("0", "1"):
            raise BadFilter(f"desc must be 0 or 1, got {desc!r}")
        raw_page = str(query.get("page") or "1")
        try:
            page = int(raw_page)
        except ValueError:
            raise BadFilter(f"page must be a whole number, got {raw_page!r}") from None
        if page < 1:
            raise BadFilter(f"page must be 1 or more, got {page}")
        return cls(flt, sort, desc == "1", page)

    def to_query(self, *, with_page: bool = True) -> dict[str, str]:
        out = self.filter.to_query()
        if self.sort != "id":
            out["sort"] = self.sort
        if self.descending:
            out["desc"] = "1"
        if with_page and self.page != 1:
            out["page"] = str(self.page)
        return out

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    def is_filtered(self) -> bool:
        return bool(self.filter.to_query())


def n_pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


def expected_label(row: Mapping[str, Any]) -> str:
    """What the table shows in its 'expected' column: the tool (and how many calls), or the first words
    of the expected message."""
    if row.get("action_type") == "function_call":
        tool = row.get("expected_tool") or "(no name)"
        extra = int(row.get("n_expected_calls") or 1) - 1
        return f"{tool} (+{extra} more)" if extra > 0 else tool
    preview = row.get("preview") or ""
    return preview if preview.strip() else "(empty message)"


# What each filter field is called when the empty state says which one to loosen.
_FILTER_LABELS = {
    "split": "split", "action_type": "action type", "tool": "expected tool", "text": "full-text search",
    "flags": "has all of these flags", "exclude_flags": "has none of these flags",
    "min_tools": "tools offered ≥", "max_tools": "tools offered ≤", "min_turn": "turn index ≥",
    "max_turn": "turn index ≤", "conversation_uuid": "conversation",
}


def loosened(flt: DecisionPointFilter) -> list[tuple[str, DecisionPointFilter]]:
    """For an empty result: each active part of the filter with the filter that drops just that part, so the
    page can say how many match without it (which part to loosen)."""
    out = []
    for name, value in flt.to_query().items():
        default = () if name in ("flags", "exclude_flags") else None
        out.append((f"{_FILTER_LABELS.get(name, name)} = {value}", replace(flt, **{name: default})))
    return out


def similar_tools(typed: str, tools: Mapping[str, int], limit: int = 5) -> list[str]:
    """Listed tools whose name contains what was typed (case-insensitive), most expected first: the hint
    when a typed tool name matches nothing."""
    needle = typed.strip().lower()
    if not needle:
        return []
    found = [t for t in tools if needle in t.lower() and t != typed]
    return sorted(found, key=lambda t: (-tools[t], t))[:limit]
