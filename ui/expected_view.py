"""The expected action of a decision point, behind the page's reveal toggle (decision point page).

Drawn in one place whether the page shows it in its right-hand column (no run open) or in the full-width row
beside a run's prediction (a run open): the same facts, flags and ungradeable reason either way. Dataset text
goes through `ui.safe` (never Markdown or HTML).
"""

from __future__ import annotations

import streamlit as st

from nemo_core.data.decision_point import DecisionPoint
from nemo_core.data.extract import FLAGS

from .chat import render_call, render_reasoning
from .safe import escape_markdown, show_text


def reveal_toggle(dp: DecisionPoint, default: bool) -> bool:
    """The toggle that shows the expected action; hidden by default so the page can be used blind (open by
    default when a run's prediction is open: the user came to compare the two)."""
    return st.toggle("Reveal the expected action", value=default, key=f"reveal::{dp.id}",
                     help="Hidden by default so the page can be used blind.")


def render_expected(dp: DecisionPoint, revealed: bool) -> None:
    """The expected call(s) or message with the flags that qualify them, or a word that it is hidden."""
    if not revealed:
        st.caption("Hidden. Toggle to see the expected call or message.")
        return
    with st.container(border=True):
        st.markdown(f"**Action type:** `{dp.action_type}`")
        for flag in dp.flags:
            st.caption(f"Flag `{flag}`: {FLAGS.get(flag, '')}")
        if dp.ungradeable_reason:
            st.warning("Ungradeable: " + escape_markdown(dp.ungradeable_reason))
        if dp.action_type == "function_call":
            if len(dp.expected_calls) > 1:
                st.caption(f"A parallel turn: {len(dp.expected_calls)} calls; a submission is graded "
                           "against the best-matching one.")
            for call in dp.expected_calls:
                render_call(call, answered=True)
        elif dp.expected_content and dp.expected_content.strip():
            show_text(dp.expected_content)
        else:
            st.caption("(the expected message is empty)")
        if dp.expected_reasoning and dp.expected_reasoning.strip():
            render_reasoning(dp.expected_reasoning, "Reasoning recorded with the expected action")
