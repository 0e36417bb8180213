"""A stored prediction beside the expected action, with its breakdown (decision point page, issue 7).

Deep links: `?id=<decision point>&run=<run name>` shows that run's prediction; `&vs=<other run>` adds a
second run's prediction beside it (the Compare page links this way). Without `run`, the panel lists the
runs that hold a prediction for this decision point and opens one on request.

Predictions and breakdowns hold model and dataset text: shown with `st.text` / `st.json` / code spans,
never as Markdown or HTML. The breakdown names the expected values, so it is drawn only once the expected
action is revealed (the page stays usable blind).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from nemo_core.errors import NemoError
from nemo_core.run_analysis import prediction_for, runs_with_prediction
from nemo_core.store import Store
from nemo_core.taxonomy import CATEGORIES

from .safe import code_span, show_text, show_value

KEY_ORDER = ("reward", "action_type_match", "name_match", "arg_match", "grader", "reason")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render_breakdown_fallback(b: dict[str, Any]) -> None:
    """The reward breakdown (SPEC §5 names): the six fields, then one row per argument key, notes, schema."""
    st.dataframe(pd.DataFrame([{"field": k, "value": _fmt(b.get(k))} for k in KEY_ORDER]),
                 hide_index=True, width="stretch")
    keys = b.get("keys") or []
    if keys:
        import json

        def cell(v: Any) -> str:
            return json.dumps(v, ensure_ascii=False) if v is not None else ""

        st.dataframe(pd.DataFrame([{"key": k.get("key"), "status": k.get("status"), "expected": cell(k.get("expected")),
                                    "submitted": cell(k.get("submitted")), "hint": k.get("hint") or ""}
                                   for k in keys]), hide_index=True, width="stretch")
    for note in b.get("notes") or []:
        st.caption(code_span(note, limit=300))
    if b.get("schema_valid") is not None:
        st.caption("Submitted arguments are " + ("valid" if b["schema_valid"] else "not valid")
                   + " under the tool's JSON schema (a hint; it never changes the score).")
    for err in (b.get("schema_errors") or [])[:5]:
        st.caption(code_span(err, limit=200))
    if b.get("grader_model") or b.get("rule_version"):
        st.caption(f"Grader {code_span(b.get('grader') or '–')}, model {code_span(b.get('grader_model') or '–')}, "
                   f"rule version {code_span(b.get('rule_version') or '–')}")


def _render_breakdown(b: dict[str, Any]) -> None:
    """The shared breakdown component when it exists (`ui.breakdown`), else the fallback above."""
    try:
        from .breakdown import render_breakdown_json  # type: ignore[attr-defined]
    except ImportError:
        render_breakdown_fallback(b)
    else:
        render_breakdown_json(b)


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


def render_prediction(store: Store, run_name: str, dp_id: str, revealed: bool) -> bool:
    """One run's prediction for one decision point; False when the run or the prediction is missing."""
    try:
        p = prediction_for(store, run_name, dp_id)
    except NemoError as exc:
        st.error(f"Cannot show run {code_span(run_name)}: {exc.one_line()}")
        return False
    if p is None:
        st.info(f"Run {code_span(run_name)} has no prediction for this decision point.")
        return False
    with st.container(border=True):
        st.markdown(f"**Run** {code_span(run_name)}")
        tax = p.get("taxonomy") or {}
        category = tax.get("category")
        c1, c2 = st.columns(2)
        c1.metric("Reward", _fmt(p.get("reward")))
        c2.metric("Category", category or "–")
        if category:
            detail = CATEGORIES.get(category, "")
            if tax.get("sub_kind"):
                detail += f" · {tax['sub_kind'].replace('_', ' ')}"
            counts = {k: tax.get(f"n_{k}") for k in ("missing", "extra", "wrong_value", "wrong_type")}
            if any(counts.values()):
                detail += " · keys: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n)
            st.caption(detail)
        if p.get("error"):
            st.warning("Not graded: " + p["error"][:500])
        render_action(p.get("action"))
        if p.get("breakdown"):
            if revealed:
                st.markdown("**Breakdown**")
                _render_breakdown(p["breakdown"])
            else:
                st.caption("Reveal the expected action to see the breakdown (it names the expected values).")
        if p.get("latency_ms") is not None:
            st.caption(f"Latency {p['latency_ms']:,.0f} ms")
    return True


def render_prediction_panel(store: Store, dp: Any, revealed: bool) -> None:
    """The decision point page's prediction panel (see the module docstring)."""
    run_name = (st.query_params.get("run") or "").strip()
    vs_name = (st.query_params.get("vs") or "").strip()
    if not run_name:
        names = runs_with_prediction(store, dp.id)
        if not names:
            return
        st.subheader("Stored predictions")
        choice = st.selectbox(f"{len(names)} run(s) hold a prediction for this decision point", ["(none)", *names],
                              key=f"prediction_run::{dp.id}")
        if choice != "(none)":
            st.query_params["run"] = choice
            st.rerun()
        return
    st.subheader("Prediction" if not vs_name else "Predictions side by side")
    if vs_name:
        left, right = st.columns(2)
        with left:
            render_prediction(store, run_name, dp.id, revealed)
        with right:
            render_prediction(store, vs_name, dp.id, revealed)
    else:
        render_prediction(store, run_name, dp.id, revealed)
    if st.button("Close the prediction", key="close_prediction"):
        del st.query_params["run"]
        if "vs" in st.query_params:
            del st.query_params["vs"]
        st.rerun()
