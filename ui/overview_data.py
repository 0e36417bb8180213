"""The overview's aggregates (computed in SQL by `nemo_core.data.overview`, stored in the database) and the
Browse page's counts, cached per database signature (see `ui.db`)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from nemo_core.data import overview as core_overview
from nemo_core.data.filters import DecisionPointFilter

from .db import get_store


@st.cache_data(show_spinner="Computing the overview (once per ingest)…", max_entries=8)
def overview(path: str, sig: str) -> dict[str, Any]:
    return core_overview.overview(get_store(path))


@st.cache_data(show_spinner=False, max_entries=8)
def tool_options(path: str, sig: str, limit: int = 2_000) -> tuple[dict[str, int], bool]:
    """The most expected tools with their counts, for Browse's searchable tool picker, and whether that is
    every expected tool: when it is, the picker accepts only listed names, so typing part of a name and
    pressing Enter picks the matching tool (a picker that also accepts free text puts "Add: <typed>" first)."""
    rows = get_store(path).expected_tool_counts(limit=limit + 1)
    return {r["tool"]: r["n"] for r in rows[:limit]}, len(rows) <= limit


@st.cache_data(show_spinner=False, max_entries=256)
def filtered_count(path: str, sig: str, query: tuple) -> int:
    """`store.count` for a filter given as its sorted query items (hashable, so it can be a cache key)."""
    return get_store(path).count(DecisionPointFilter.from_query(dict(query)))
