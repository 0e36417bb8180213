"""Cached reads for the Runs, Failures and Compare pages (all the work is in `nemo_core.runs.analysis`).

Results are `st.cache_data`-cached under a *runs signature*: the runs' ids, sizes and statuses and when
each taxonomy was computed. It changes exactly when a run is added, finished, reclassified or deleted,
so a page never shows a deleted run and never recomputes an unchanged one. Computing a missing taxonomy
(a run stored before issue 7) is a write, so it happens outside the cached functions (`ensure_current`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import streamlit as st

from nemo_core.runs import analysis as ra
from nemo_core.runs.run import Run, count_predictions, get_run
from nemo_core.data.store import Store
from nemo_core.runs.taxonomy import ensure_taxonomy, taxonomy_is_current

from .db import get_store


def runs_signature(store: Store) -> tuple:
    """What the cached reads depend on (`analysis.runs_signature`), with the database's path."""
    return (str(store.path), *ra.runs_signature(store))


def classified_or_offer(store: Store, run: Run, key: str) -> bool:
    """True when the run's taxonomy is ready; otherwise (a run still being written) say so, offer to
    classify what is stored so far, and return False."""
    if not ra.awaiting_taxonomy(store, run):
        return True
    n = count_predictions(store, run.id)
    st.info(f"This run is still running (or stopped without finishing): {n:,} predictions stored so far. "
            "Its failure taxonomy and summary are computed when it finishes.")
    if st.button(f"Classify the {n:,} predictions stored so far", key=key):
        with st.spinner(f"Classifying {n:,} predictions…"):
            ensure_taxonomy(store, run.id)
        st.rerun()
    return False


def ensure_current(store: Store, run_ids: list[int]) -> None:
    """Classify any finished run whose stored taxonomy is missing or stale (a run stored before issue 7, or
    under an older taxonomy version), and store its summary (once each). Runs still being written are left
    to `classified_or_offer`."""
    for run_id in run_ids:
        if ra.awaiting_taxonomy(store, get_run(store, run_id)):
            continue
        if not taxonomy_is_current(store, run_id):
            n = count_predictions(store, run_id)
            with st.spinner(f"Classifying {n:,} predictions of run {run_id} (done once, then stored)…"):
                ensure_taxonomy(store, run_id)
        ra.run_details(store, run_id)  # stores the aggregates when missing, so the cached reads below only read


@st.cache_data(show_spinner=False, max_entries=16)
def runs_table(path: str, sig: tuple) -> list[dict[str, Any]]:
    return ra.runs_table(get_store(path))


@st.cache_data(show_spinner=False, max_entries=32)
def run_details(path: str, sig: tuple, run_id: int) -> dict[str, Any]:
    """Summary, taxonomy, sub-kinds, argument error totals, confusion, histogram, tool names (stored once)."""
    return ra.run_details(get_store(path), run_id)


def tool_names(path: str, sig: tuple, run_id: int) -> list[str]:
    return run_details(path, sig, run_id)["tool_names"]


@st.cache_data(show_spinner=False, max_entries=64)
def failure_page(path: str, sig: tuple, run_id: int, flt: tuple, offset: int, limit: int, sort: str) -> dict[str, Any]:
    categories, split, tool, lo, hi = flt
    page = ra.failures(get_store(path), run_id,
                       ra.FailureFilter(list(categories), split, tool, None, lo, hi),
                       offset=offset, limit=limit, sort=sort)
    return asdict(page)


@st.cache_data(show_spinner=False, max_entries=64)
def failure_count(path: str, sig: tuple, run_id: int, flt: tuple) -> int:
    categories, split, tool, lo, hi = flt
    return ra.count_failures(get_store(path), run_id, ra.FailureFilter(list(categories), split, tool, None, lo, hi))


@st.cache_data(show_spinner=False, max_entries=16)
def comparison(path: str, sig: tuple, run_a: int, run_b: int, top: int = 50) -> dict[str, Any]:
    return ra.compare_runs(get_store(path), run_a, run_b, top=top).to_json()
