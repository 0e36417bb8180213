"""One decision point (deep link `?id=split/uuid/message index`): the conversation so far, the tools
offered, the expected action behind a reveal toggle, previous / next, and the exact model request.

The list filter travels in the URL beside `id` (see `ui.listing`), so previous / next walk the list the
user came from in Browse.
"""

from __future__ import annotations

import json

import streamlit as st

from nemo_core.base.errors import UnknownDecisionPoint
from nemo_core.data.filters import BadFilter
from nemo_core.grading.request import build_request
from ui.chat import render_conversation
from ui.db import require_store
from ui.expected_view import render_expected, reveal_toggle
from ui.listing import ListState
from ui.prediction_view import compare_with_expected, render_run_picker
from ui.safe import escape_markdown
from ui.tools_panel import render_tools
from ui.try_panel import render_try_panel

BROWSE_PAGE = "app_pages/browse.py"

store = require_store()
st.title("Decision point")
query = st.query_params.to_dict()


def open_by_id_form() -> None:
    with st.form("open_by_id"):
        typed = st.text_input("Open a decision point by id", placeholder="tool_calling/<uuid>/<message index>")
        if st.form_submit_button("Open"):
            st.query_params["id"] = typed.strip()
            st.rerun()


try:
    list_state: ListState | None = ListState.from_query(query)
except BadFilter as exc:
    list_state = None
    st.warning(f"The list filter in this link is not valid ({escape_markdown(exc.one_line())}); "
               "previous / next in the list are off.")

dp_id = query.get("id", "").strip()
if not dp_id:
    st.info("No decision point chosen. Open one from Browse, or enter its id "
            "(`split/uuid/message index`, e.g. `tool_calling/<uuid>/2`).")
    st.page_link(BROWSE_PAGE, label="Browse decision points", icon="🔎")
    open_by_id_form()
    st.stop()

try:
    dp = store.get(dp_id)
except UnknownDecisionPoint as exc:
    st.error("Cannot open this decision point: " + escape_markdown(exc.one_line()))
    open_by_id_form()
    st.stop()


def go(target: str) -> None:
    st.query_params["id"] = target
    st.rerun()


# ---- where we are, and previous / next ------------------------------------------------------------
st.code(dp.id, language=None)
conversation_ids = store.conversation_decision_ids(dp.split, dp.conversation_uuid)
position = conversation_ids.index(dp.id) if dp.id in conversation_ids else 0
st.caption(
    f"{dp.split} · message #{dp.turn_index} of {dp.n_messages} · assistant turn {position + 1} of "
    f"{len(conversation_ids)} in this conversation · {len(dp.toolset.task_tools)} task tools offered"
    + (f" · source line {dp.source_line:,}" if dp.source_line else "")
)
prev_conv = conversation_ids[position - 1] if position > 0 else None
next_conv = conversation_ids[position + 1] if position + 1 < len(conversation_ids) else None
scope = "filtered list" if list_state is not None and list_state.is_filtered() else "list"


def go_in_list(forward: bool) -> None:
    """The neighbour in the list is looked up on click, not on every render: with some sorts and filters
    that query takes seconds at 1.2 M decision points, and the page must draw fast."""
    assert list_state is not None
    before, after = store.neighbour_in_filter(dp.id, list_state.filter, sort=list_state.sort,
                                              descending=list_state.descending)
    target = after if forward else before
    if target is None:
        st.session_state["_list_end"] = f"This is the {'last' if forward else 'first'} decision point in the {scope}."
    else:
        go(target)


# two rows (the conversation, then the list): five buttons in one row cut their labels at 1280 px
c1, c2, _ = st.columns(3)
c3, c4, c5 = st.columns(3, vertical_alignment="center")
if c1.button("◀ Previous turn", disabled=prev_conv is None, key="prev_conv", width="stretch",
             help="The previous decision point in this conversation"):
    go(prev_conv)
if c2.button("Next turn ▶", disabled=next_conv is None, key="next_conv", width="stretch",
             help="The next decision point in this conversation"):
    go(next_conv)
if c3.button(f"◀ Previous in {scope}", disabled=list_state is None, key="prev_list", width="stretch"):
    go_in_list(forward=False)
if c4.button(f"Next in {scope} ▶", disabled=list_state is None, key="next_list", width="stretch"):
    go_in_list(forward=True)
c5.page_link(BROWSE_PAGE, label=f"Back to the {scope}", icon="🔎",
             query_params=list_state.to_query() if list_state is not None else None)

if "_list_end" in st.session_state:
    st.info(st.session_state.pop("_list_end"))

run_name = (query.get("run") or "").strip()
if run_name:
    # a run's prediction is open: expected and predicted side by side across the page, above the
    # conversation (in the right-hand column they stacked in a third of the width)
    st.subheader("Expected action and prediction")
    revealed = reveal_toggle(dp, default=True)
    compare_with_expected(store, dp, revealed, run_name, (query.get("vs") or "").strip())

left, right = st.columns([3, 2], gap="large")

# ---- the conversation so far ----------------------------------------------------------------------
with left:
    st.subheader("Conversation so far")
    render_conversation(dp.context)
    st.caption("The model answers here: the next assistant message is the decision point.")

with right:
    if not run_name:
        st.subheader("Expected action")
        render_expected(dp, reveal_toggle(dp, default=False))
        render_run_picker(store, dp)
    st.subheader("Tools offered")
    render_tools(dp)

# ---- the exact request a model receives --------------------------------------------------------------
st.subheader("The request a model receives")
include_reasoning = st.checkbox("Include earlier assistant reasoning (reasoning_content)", value=False,
                                key="include_reasoning")
request = build_request(dp, include_reasoning=include_reasoning)
st.caption(f"OpenAI chat format: {len(request['messages'])} messages and {len(request['tools'])} tools "
           "(ids synthesised where the data has none; see nemo_core/grading/request.py for every conversion rule).")
with st.expander("Request JSON (copy with the button at the top right of the code)", expanded=False):
    st.code(json.dumps(request, indent=2, ensure_ascii=False), language="json", wrap_lines=True)

# ---- the "Try" panel: a person's or a model's answer to this request, graded -------------------------------
render_try_panel(store, dp, request)
