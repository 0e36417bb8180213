"""Annotate: a person answers a human baseline campaign blind, one decision point at a time.

The annotator gives a name once per browser session and sees only their own queue: the conversation so
far and the tools offered, never the expected action nor anyone else's answer (nothing on this page reads
them). They answer with the Try panel's form (`ui.try_panel.answer_form`), may add a note and a
confidence, or skip with a reason. The time from the item being handed out to the submission is recorded
by the core. After submitting, the breakdown is shown only when the campaign says so.
"""

from __future__ import annotations

from types import SimpleNamespace

import streamlit as st

from nemo_core.people import campaigns as C
from nemo_core.base.errors import NemoError
from nemo_core.grading.llm_grader import LLMGrader
from ui.breakdown import render_breakdown
from ui.chat import render_conversation
from ui.db import require_store
from ui.safe import escape_markdown, show_text
from ui.tools_panel import render_tools
from ui.secrets import grader_config
from ui import keyboard
from ui.try_panel import CALL, answer_form

NAME_KEY = "annotate::name"
CAMPAIGN_KEY = "annotate::campaign"
CONFIDENCE = {None: "not said", 1: "1 · a guess", 2: "2", 3: "3", 4: "4", 5: "5 · sure"}

store = require_store()
st.title("Annotate")

# ---- who is annotating (once per browser session) -----------------------------------------------------
# The name also lives in the URL (`annotator=`), so a reload does not ask for it again.
if not st.session_state.get(NAME_KEY) and st.query_params.get("annotator"):
    try:
        st.session_state[NAME_KEY] = C.clean_annotator(st.query_params["annotator"])
    except NemoError:
        del st.query_params["annotator"]
name = st.session_state.get(NAME_KEY)
if not name:
    st.write("Answer decision points yourself, blind: your answers become the human baseline.")
    with st.form("annotate::who"), st.container(key="annotate_who"):
        typed = st.text_input("Your name", key="annotate::name_input", max_chars=C.MAX_NAME,
                              help="Your answers are stored under this name; use the same one each time.")
        started = st.form_submit_button("Start annotating", type="primary")
    keyboard.focus_in("annotate_who")
    if started:
        try:
            st.session_state[NAME_KEY] = C.clean_annotator(typed)
        except NemoError as exc:
            st.error(escape_markdown(exc.one_line()))
        else:
            st.rerun()
    st.stop()

if st.query_params.get("annotator") != name:
    st.query_params["annotator"] = name
keyboard.install_shortcuts()
top_left, top_right = st.columns([4, 1])
top_left.markdown(f"Annotating as **{escape_markdown(name)}**")
if top_right.button("Not you? Change name", key="annotate::change_name"):
    del st.session_state[NAME_KEY]
    del st.query_params["annotator"]
    st.rerun()

# ---- which campaign --------------------------------------------------------------------------------------
campaigns = C.list_campaigns(store, status="open")
if not campaigns:
    st.info("No campaign is open. An admin creates one on the Campaigns page.")
    st.stop()
by_id = {c.id: c for c in campaigns}
wanted = st.query_params.get("campaign")
default = int(wanted) if wanted and wanted.isdigit() and int(wanted) in by_id else campaigns[0].id
chosen_id = st.selectbox("Campaign", list(by_id), index=list(by_id).index(default), key=CAMPAIGN_KEY,
                         format_func=lambda i: by_id[i].name)
campaign = by_id[chosen_id]
st.query_params["campaign"] = str(campaign.id)
last_key = f"annotate::last::{campaign.id}::{name}"
if campaign.instructions.strip():  # open until the first answer of this session, then out of the way
    with st.expander("Instructions", expanded=not st.session_state.get(last_key)):
        show_text(campaign.instructions, limit=6_000)

# ---- the previous answer, revealed or not ------------------------------------------------------------------
last = st.session_state.get(last_key)
if last:
    if last["status"] == "skipped":
        st.success("Skipped. The item goes to someone else.")
    elif campaign.reveal_after_submit and last.get("breakdown"):
        st.success("Saved. Here is how your previous answer was graded:")
        render_breakdown(last["breakdown"], key="annotate_previous", title="Your previous answer")
    else:
        st.success("Saved. (This campaign does not show grades to annotators.)")

# ---- the queue -------------------------------------------------------------------------------------------
# The item on screen stays this session's item until it is submitted, even if an admin releases it as
# stale meanwhile (then a late answer is still stored when nobody else took the slot): asking `next_item`
# on every run would swap it for a new item and throw away what the person was typing.
current_key = f"annotate::current::{campaign.id}::{name}"
assignment = None
held = st.session_state.get(current_key)
if held is not None:
    try:
        kept = C.get_assignment(store, held)
    except NemoError:
        kept = None
    if kept is not None and kept.annotator == name and kept.status in ("assigned", "released"):
        assignment = kept
if assignment is None:
    try:
        assignment = C.next_item(store, campaign.id, name)
    except NemoError as exc:
        st.error(escape_markdown(exc.one_line()))
        st.stop()
    st.session_state[current_key] = assignment.id if assignment is not None else None
mine = C.annotator_progress(store, campaign.id, name)
st.progress(mine.fraction, text=f"Your queue: {mine.done} of {mine.total} done "
                                f"({mine.answered} answered, {mine.skipped} skipped)")
if assignment is None:
    st.success("Your queue is empty: nothing left for you in this campaign. Thank you!")
    st.stop()

try:
    dp = store.get(assignment.dp_id)
except NemoError:  # the database was rebuilt without this decision point: move on rather than get stuck
    C.skip_item(store, assignment.id, name, "the decision point is no longer in the database")
    st.rerun()
with st.container(key="annotate_item_top"):
    st.subheader(f"Item {mine.done + 1} of {max(mine.total, mine.done + 1)}")
if assignment.status == "released":
    st.warning("This item was handed out a long time ago and released for others. Your answer is still "
               "stored if nobody else has taken it meanwhile.")
st.caption("What would the assistant do next? Call one of the tools, or answer the user with a message. "
           "Keyboard: Ctrl+Enter submits, Alt+K skips, 1-5 set the confidence (see Keyboard shortcuts).")
left, right = st.columns([3, 2], gap="large")
with left:
    st.markdown("**Conversation so far**")
    # a box of its own height, scrolled to the latest turn: the turn to answer stays beside the form
    with st.container(height=560, key="annotate_conversation"):
        render_conversation(dp.context)
        st.caption("The next assistant message is yours to write.")

with right, st.container(key="annotate_answer"):
    st.markdown("**Your answer**")
    # The form keys its widgets by `dp.id`, and Streamlit writes widget keys into the page (CSS classes):
    # hand it the item's tools under a token, so the decision point id (a way to look the item up on the
    # Decision point page, which shows the expected action) never reaches the browser.
    blind_item = SimpleNamespace(id=f"item-{assignment.id}", toolset=dp.toolset)
    form_key = f"annotate::{assignment.id}"
    with st.container(key="annotate_form"):
        action = answer_form(blind_item, key=form_key, call_label="Submit this call",
                             message_label="Submit this message", shortcut=keyboard.SUBMIT)
    with st.container(key="annotate_confidence"):
        confidence = st.radio("Confidence", list(CONFIDENCE), horizontal=True, format_func=CONFIDENCE.get,
                              key=f"annotate::confidence::{assignment.id}")
    note = st.text_area("Note (optional)", key=f"annotate::note::{assignment.id}", height=70,
                        placeholder="anything odd about this item, or why you chose this answer")
    if action is not None:
        config = grader_config()
        try:
            done = C.submit_answer(store, assignment.id, name, action, note=note, confidence=confidence,
                                   llm=LLMGrader(config, store) if config.configured else None)
        except (C.AlreadySubmitted, C.AssignmentTaken) as exc:
            st.session_state[current_key] = None  # move on to the next item
            (st.info if isinstance(exc, C.AlreadySubmitted) else st.error)(escape_markdown(exc.one_line()))
            if st.button("Next item", key=f"annotate::move_on::{assignment.id}"):
                st.rerun()
        except NemoError as exc:
            st.error(escape_markdown(exc.one_line()))
        else:
            st.session_state[last_key] = {"status": done.status, "breakdown": done.breakdown}
            st.rerun()
    with st.form(f"annotate::skip::{assignment.id}"):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        reason = c1.text_input("Skip: why can't you answer it?", key=f"annotate::skip_reason::{assignment.id}")
        skipped = c2.form_submit_button("Skip", shortcut=keyboard.SKIP, width="stretch")
    if skipped:
        try:
            done = C.skip_item(store, assignment.id, name, reason)
        except (C.AlreadySubmitted, C.AssignmentTaken) as exc:
            st.session_state[current_key] = None
            st.info(escape_markdown(exc.one_line()))
        except NemoError as exc:
            st.error(escape_markdown(exc.one_line()))
        else:
            st.session_state[last_key] = {"status": done.status, "breakdown": None}
            st.rerun()
    with st.expander("Keyboard shortcuts"):
        st.table([{"keys": k, "does": d} for k, d in keyboard.SHORTCUTS])
    st.markdown("**Tools offered**")
    render_tools(dp)
    mode = st.session_state.get(f"{form_key}::mode::{blind_item.id}", "call")
    keyboard.on_new_item(f"{assignment.id}-{'m' if mode != CALL else 'c'}")
