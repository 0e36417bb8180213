"""The overview's aggregates, computed in SQL and cached per database signature (see `ui.db`)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from nemo_core.extract import FLAGS

from .db import get_store

HISTOGRAMS: dict[str, tuple[str, list[int]]] = {
    "context_chars": ("Context length (characters)", [0, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000]),
    "n_tools": ("Number of task tools offered", [0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50]),
    "turn_index": ("Turn index (message index of the decision point)", [0, 2, 3, 4, 6, 8, 10, 15, 20, 30, 50, 100]),
}


def bin_labels(bins: list[int]) -> list[str]:
    """`[0, 2, 5]` -> `["0–1", "2–4", "≥5"]` (bins are half-open, the last one unbounded)."""
    labels = []
    for lo, hi in zip(bins, bins[1:]):
        labels.append(f"{lo:,}" if hi - lo == 1 else f"{lo:,}–{hi - 1:,}")
    labels.append(f"≥{bins[-1]:,}")
    return labels


@st.cache_data(show_spinner=False, max_entries=8)
def overview(path: str, sig: tuple) -> dict[str, Any]:
    store = get_store(path)
    flags = {}
    for name in FLAGS:
        # each flag has a partial index, so this is an index count, not a table scan
        rows = store.query(
            f"SELECT split, count(*) AS n FROM decision_points WHERE flag_{name} = 1 GROUP BY split"
        )
        flags[name] = {r["split"]: r["n"] for r in rows}
    histograms = {}
    for column, (title, bins) in HISTOGRAMS.items():
        labels = bin_labels(bins)
        histograms[column] = {
            "title": title,
            "rows": [
                {"split": r["split"], "bin": labels[r["bin"]], "order": r["bin"], "n": r["n"]}
                for r in store.histogram(column, bins)
            ],
            "labels": labels,
        }
    ingests = store.ingests()
    return {
        "counts": store.counts(),
        "conversations": store.n_conversations(),
        "top_tools": store.expected_tool_counts(limit=25),
        "n_distinct_tools": store.scalar("SELECT count(DISTINCT expected_tool) FROM decision_points"),
        "flags": flags,
        "histograms": histograms,
        "ingests": ingests,
        "rejected": store.rejected(limit=1000),
        "n_rejected": store.n_rejected(),
    }


@st.cache_data(show_spinner=False, max_entries=8)
def tool_options(path: str, sig: tuple, limit: int = 2_000) -> dict[str, int]:
    """The most expected tools with their counts, for Browse's searchable tool picker."""
    return {r["tool"]: r["n"] for r in get_store(path).expected_tool_counts(limit=limit)}


@st.cache_data(show_spinner=False, max_entries=256)
def filtered_count(path: str, sig: tuple, query: tuple) -> int:
    """`store.count` for a filter given as its sorted query items (hashable, so it can be a cache key)."""
    from nemo_core.filters import DecisionPointFilter

    return get_store(path).count(DecisionPointFilter.from_query(dict(query)))
