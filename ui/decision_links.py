"""Links from a list of decision points on a run's page (a run's failures, where two runs differ most) to the
decision point page, carrying the run(s) to show there beside the expected action. One place writes the
link, so the table's "open" column and the "open one" picker under it always point at the same page state."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

import streamlit as st

DECISION_PAGE = "app_pages/decision_point.py"


def decision_point_url(dp_id: str, runs: Mapping[str, str]) -> str:
    """The decision point page's relative URL, for a `LinkColumn` cell: `decision_point?id=...&run=...`
    (`runs`: `{"run": A}` or `{"run": A, "vs": B}`, in that order in the URL)."""
    return "decision_point?" + urlencode({"id": dp_id, **runs})


def open_one(dp_ids: list[str], runs: Mapping[str, str], *, choose: str, label: str, key: str) -> None:
    """A picker of the listed decision points and a page link that opens the chosen one with `runs`
    (for a keyboard, or a browser that does not open the table's link column)."""
    choice = st.selectbox(choose, dp_ids, key=key)
    st.page_link(DECISION_PAGE, label=label, icon="🧩", query_params={"id": choice, **runs})
