"""A stored prediction beside the expected action, with its breakdown (decision point page, issue 7).

Deep links: `?id=<decision point>&run=<run name>` shows that run's prediction beside the expected action, in a
row across the page; `&vs=<other run>` adds a third column with a second run's prediction (the Compare page links
this way). Without `run`, the page lists the runs that hold a prediction for this decision point and opens one on
request.

Predictions and breakdowns hold model and dataset text: shown with `st.text` / `st.json` / code spans,
never as Markdown or HTML. A run of people's campaign answers (`nemo_core.people.guarded`) is shown only with the
admin passphrase (`ui.admin`): it is left out of the list, and a link to it asks for the passphrase. The
breakdown names the expected values, so it is drawn only once the expected action is revealed (the page stays
usable blind); it is drawn by the one breakdown component, `ui.breakdown`.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from nemo_core.base.errors import NemoError
from nemo_core.runs.analysis import prediction_for, runs_with_prediction
from nemo_core.data.store import Store
from nemo_core.runs.taxonomy import CATEGORIES

from .admin import held_back, unlock_form, visible_run_names
from .breakdown import render_breakdown
from .expected_view import render_expected
from .formats import NONE
from .safe import code_span, escape_markdown, show_text, show_value


def _fmt(value: Any) -> str:
    if value is None:
        return "not graded"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def render_action(action: dict[str, Any] | None) -> None:
    """A submitted action: the call's name and arguments, or the message text."""
    if not action:
        st.caption("(no action was stored)")
        return
    if action.get("type") == "message":
        st.markdown("**Message**")
        show_text(action.get("content") or "")
        return
    if action.get("type") == "function_call":
        st.markdown(f"**Function call:** {code_span(action.get('name') or '(no name)')}")
        show_value(action.get("arguments"))
        return
    st.markdown("**Submitted (not an accepted action form)**")
    show_value(action.get("raw", action))


def render_prediction(store: Store, run_name: str, dp_id: str, revealed: bool, label: str = "Run") -> bool:
    """One run's prediction for one decision point; False when the run or the prediction is missing (or the
    run holds people's answers and the session has not given the admin passphrase)."""
    if not visible_run_names(store, [run_name])[0]:
        st.info(f"{label} holds people's campaign answers: it needs the admin passphrase.")
        unlock_form(f"prediction::{label}")
        return False
    try:
        p = prediction_for(store, run_name, dp_id)
    except NemoError as exc:
        st.error(f"Cannot show run {code_span(run_name)}: {escape_markdown(exc.one_line())}")
        return False
    if p is None:
        st.info(f"Run {code_span(run_name)} has no prediction for this decision point.")
        return False
    with st.container(border=True):
        st.markdown(f"**{label}** {code_span(run_name)}")
        tax = p.get("taxonomy") or {}
        category = tax.get("category")
        show_breakdown = bool(p.get("breakdown")) and revealed
        if not show_breakdown:  # otherwise the breakdown shows the reward
            st.metric("Reward", _fmt(p.get("reward")))
        st.markdown(f"**Category:** {code_span(category or NONE)}")
        if category:
            detail = CATEGORIES.get(category, "")
            if tax.get("sub_kind"):
                detail += f" · {tax['sub_kind'].replace('_', ' ')}"
            counts = {k: tax.get(f"n_{k}") for k in ("missing", "extra", "wrong_value", "wrong_type")}
            if any(counts.values()):
                detail += " · keys: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n)
            st.caption(detail)
        if p.get("error"):
            st.warning("Not graded: " + escape_markdown(p["error"][:500]))
        render_action(p.get("action"))
        if p.get("breakdown"):
            if show_breakdown:
                render_breakdown(p["breakdown"], key=f"prediction::{run_name}", title="Breakdown", narrow=True)
            else:
                st.caption("Reveal the expected action to see the breakdown (it names the expected values).")
        if p.get("latency_ms") is not None:
            st.caption(f"Latency {p['latency_ms']:,.0f} ms")
    return True


def render_run_picker(store: Store, dp: Any) -> None:
    """With no run open: the runs that hold a prediction here (people's runs only with the passphrase), one of
    which opens the row of predictions beside the expected action."""
    names, n_hidden = visible_run_names(store, runs_with_prediction(store, dp.id))
    held_back(n_hidden, "run(s) of people's campaign answers with a prediction here", key="prediction")
    if not names:
        return
    st.subheader("Stored predictions")
    choice = st.selectbox(f"{len(names)} run(s) hold a prediction for this decision point", ["(none)", *names],
                          key=f"prediction_run::{dp.id}")
    if choice != "(none)":
        st.query_params["run"] = choice
        st.rerun()


def compare_with_expected(store: Store, dp: Any, revealed: bool, run_name: str, vs_name: str) -> None:
    """The expected action and run A's (and run B's) prediction side by side across the page, each in its own
    column wide enough for its breakdown's key table, then the button that closes them."""
    columns = st.columns(3 if vs_name else 2, gap="medium")
    with columns[0]:
        render_expected(dp, revealed)
    with columns[1]:
        render_prediction(store, run_name, dp.id, revealed, label="Run A" if vs_name else "Run")
    if vs_name:
        with columns[2]:
            render_prediction(store, vs_name, dp.id, revealed, label="Run B")
    if st.button("Close the prediction", key="close_prediction"):
        del st.query_params["run"]
        if "vs" in st.query_params:
            del st.query_params["vs"]
        st.rerun()
