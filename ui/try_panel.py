"""The "Try" panel of the decision point page: answer yourself or ask a model, see the grade, keep attempts.

- Your answer: call one of the task's tools through a form generated from its JSON schema (`schema_form`),
  or send a message. Graded with `grading.grade_action`, exactly as `grade` grades a prediction file.
- A model's answer: any OpenAI-compatible endpoint, asked with `model_runner` and exactly the request the
  page shows above (so the "include reasoning" choice there applies). The server's key (OPENAI_API_KEY or
  the `openai_api_key` secret) is sent only to the base URL it is configured with (`keys.choose_key`);
  any other URL gets a key typed here, or none. A typed key lives only in this browser session's
  `st.session_state`, and is never written to the database, a log or the URL. Every key (the server's and
  the typed one) is taken out of the answer before it is shown or saved (`ModelRunner.redact_answer`).
- A baseline's answer: one of the offline baseline policies (`nemo_core/runs/policies.py`), through the same
  runner interface (`policy_runner.PolicyRunner`): nothing is sent anywhere, the same seed gives the same
  answer. Typing `baseline:NAME` as the model name does the same.
- Each answer is saved as an attempt (who, the action, the breakdown, the time) and listed below.

Messages are graded by the LLM grader when a key is configured (env or secret), else by keyword overlap.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import streamlit as st

from nemo_core.grading.actions import parse_action
from nemo_core.people.attempts import list_attempts, save_attempt
from nemo_core.base.config import SUBMIT_MESSAGE
from nemo_core.base.errors import NemoError
from nemo_core.grading.grade import Breakdown, grade_action
from nemo_core.grading.keys import OPENAI_DEFAULT_URL, KeyChoice, choose_key
from nemo_core.grading.llm_grader import LLMGrader
from nemo_core.grading.endpoint import EndpointConfig
from nemo_core.runs.policies import POLICIES, PREFIX
from nemo_core.runs.policy_runner import PolicyRunner, runner_for

from . import formats as fmt
from .breakdown import render_breakdown
from .safe import escape_markdown, show_text
from .schema_form import render_schema_form
from .secrets import grader_config, server_base_url, server_key

WHO_KEY = "try::who"
MODEL_KEY_FIELD = "try::api_key"  # the typed key: session state only
DEFAULT_MODEL = "gpt-5-mini"
CALL, MESSAGE = "Call a tool", "Send a message"
ENDPOINT, BASELINE = "A model at an endpoint", "An offline baseline policy"


def grade(store: Any, dp: Any, action: dict[str, Any]) -> Breakdown:
    config = grader_config()
    llm = LLMGrader(config, store) if config.configured else None
    return grade_action(store, dp, action, grader="auto", llm=llm)


def _result_key(dp_id: str, who: str) -> str:
    return f"try::result::{who}::{dp_id}"


# ---- a person's answer ---------------------------------------------------------------------------------
def answer_form(dp: Any, *, key: str = "try", call_label: str = "Grade this call",
                message_label: str = "Grade this message", shortcut: str | None = None) -> dict[str, Any] | None:
    """The answer form: call one of the task's tools (a form generated from its schema) or write a message.
    Returns the action on the run it is submitted, else None; grading is left to the caller, so the
    annotation page (issue 6) embeds the same form and stores the answer its own way. `key` keeps the
    widgets of different callers apart (the Try panel's keys are `try::...`). `shortcut` (say "Ctrl+Enter")
    submits whichever form is shown."""
    tools = [t for t in dp.toolset.task_tools if t["function"]["name"] != SUBMIT_MESSAGE]
    # with no task tool the only answer is a message: start there (the keyboard lands in its text box)
    mode = st.radio("Answer with", [CALL, MESSAGE], index=0 if tools else 1, horizontal=True,
                    key=f"{key}::mode::{dp.id}")
    if mode == CALL:
        if not tools:
            st.info("This task offers no tools of its own: the only possible answer is a message.")
            return None
        names = [t["function"]["name"] for t in tools]
        name = st.selectbox("Tool", names, key=f"{key}::tool::{dp.id}")
        fn = tools[names.index(name)]["function"]
        if fn.get("description"):
            with st.expander("What this tool does", expanded=False):
                show_text(fn["description"], limit=1_500)
        result = render_schema_form(fn.get("parameters"), key=f"{key}::form::{dp.id}::{name}",
                                    submit_label=call_label, shortcut=shortcut)
        if result is not None and result.ok:
            return {"type": "function_call", "name": name, "arguments": result.arguments}
        return None
    with st.form(f"{key}::message_form::{dp.id}"):
        text = st.text_area("Your message to the user", key=f"{key}::message::{dp.id}", height=140)
        sent = st.form_submit_button(message_label, type="primary", shortcut=shortcut)
    return {"type": "message", "content": text} if sent else None


def _human(store: Any, dp: Any) -> None:
    who = st.text_input("Your name (saved with each attempt)", key=WHO_KEY, placeholder="anonymous")
    action = answer_form(dp)
    if action is not None:
        name = (who or "").strip() or "anonymous"
        try:
            breakdown = grade(store, dp, action)
            stored = parse_action(action).to_json()
            attempt_id = save_attempt(store, dp.id, who=name, kind="human", action=stored, breakdown=breakdown)
        except NemoError as exc:
            st.error(escape_markdown(exc.one_line()))
        else:
            st.session_state[_result_key(dp.id, "human")] = {"attempt_id": attempt_id, "action": stored,
                                                               "breakdown": breakdown.to_json()}
    last = st.session_state.get(_result_key(dp.id, "human"))
    if last:
        st.markdown(f"**Your last answer** (saved as attempt #{last['attempt_id']})")
        st.json(last["action"], expanded=True)
        render_breakdown(last["breakdown"], key="try_human_breakdown")


# ---- a model's answer -----------------------------------------------------------------------------------
def _key_choice(base_url: str, typed: str) -> KeyChoice:
    """The key for `base_url`: the typed one, else the server's only if this is its configured base URL."""
    return choose_key(base_url, typed_key=typed, server_key=server_key(), server_url=server_base_url())


def _ask(store: Any, dp: Any, runner: Any, request: dict[str, Any], slot: str) -> None:
    """Ask `runner` (a model's or a baseline's), grade the answer, save it as an attempt, keep it to show."""
    with st.spinner(f"Asking {escape_markdown(runner.config.model)}…"):  # a spinner's text is Markdown
        answer = runner.answer(dp, request=request)
    breakdown = None
    if answer.action is not None:
        try:
            breakdown = grade(store, dp, answer.action)
        except NemoError as exc:
            st.error(escape_markdown(exc.one_line()))
    extra = answer.extra()
    # a call that brought back no action (a refused request, a timeout, no server) is shown, not saved:
    # an attempt is an answer to the decision point, and a failed call is not one
    attempt_id = None if answer.action is None else save_attempt(
        store, dp.id, who=answer.model, kind="model", action=answer.action_json(), breakdown=breakdown, extra=extra)
    st.session_state[_result_key(dp.id, slot)] = {
        "attempt_id": attempt_id, "action": answer.action_json(), "extra": extra,
        "raw_response": answer.raw_response, "breakdown": breakdown.to_json() if breakdown else None,
    }


def _baseline(store: Any, dp: Any, request: dict[str, Any]) -> None:
    c1, c2 = st.columns([3, 1])
    name = c1.selectbox("Baseline policy", list(POLICIES), key="try::policy")
    seed = c2.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="try::policy_seed",
                           help="Breaks the keyword-router's ties; the same seed gives the same answer.")
    st.caption(f"{PREFIX}{name}: {POLICIES[name].description}. Offline: nothing is sent anywhere "
               "(`run-model --model baseline:NAME` runs it over many decision points).")
    if st.button("Ask the baseline", type="primary", key="try::ask_baseline"):
        _ask(store, dp, PolicyRunner(name, seed=int(seed)), request, "baseline")
    last = st.session_state.get(_result_key(dp.id, "baseline"))
    if last:
        _show_model_answer(last)


def _model(store: Any, dp: Any, request: dict[str, Any]) -> None:
    source = st.radio("Ask", [ENDPOINT, BASELINE], horizontal=True, key="try::source",
                      help="A baseline policy answers without a model: the floor a model should clear.")
    if source == BASELINE:
        _baseline(store, dp, request)
        return
    configured_url = server_base_url()
    default_model = os.environ.get("NEMO_MODEL") or DEFAULT_MODEL
    with st.form("try::model_form"):
        c1, c2 = st.columns(2)
        base_url = c1.text_input("Base URL", value=configured_url or "", key="try::base_url",
                                 placeholder="empty = OpenAI; e.g. http://127.0.0.1:8000/v1",
                                 help="Any OpenAI-compatible /v1 endpoint.")
        model = c2.text_input("Model", value=default_model, key="try::model")
        c3, c4 = st.columns([3, 1])
        typed = c3.text_input("API key for this base URL (optional)", type="password", key=MODEL_KEY_FIELD,
                              help="Kept in this browser session only: never written to the database, a log or "
                                   "the URL. Empty = the server's key, but only for the base URL the server's "
                                   "key is configured with; any other base URL is asked with no key.")
        timeout = c4.number_input("Timeout (s)", min_value=1.0, max_value=600.0, value=60.0, step=5.0,
                                  key="try::timeout")
        asked = st.form_submit_button("Ask the model", type="primary")
    url = base_url.strip() or OPENAI_DEFAULT_URL  # explicit: the client must not pick another from the env
    choice = _key_choice(url, typed)
    if choice.server_key_withheld:
        st.info("This base URL is not the one the server's key is configured for, so the server's key is not "
                "sent to it. If it needs a key, type one above: a typed key is kept in this browser session "
                "only and is never written anywhere.")
    st.caption(f"Sends the request shown above ({len(request['messages'])} messages, {len(request['tools'])} "
               f"tools) with tool_choice=\"required\" (\"auto\" if the server refuses it). Key: {choice.source}.")
    if asked:
        try:
            # every key this session knows (and OPENAI_API_KEY) is taken out of the answer before it is shown or saved
            others = tuple(k for k in (server_key(), (typed or "").strip()) if k)
            # `baseline:NAME` typed as the model gets the offline policy (seed 0), like `run-model --model`
            runner = runner_for(EndpointConfig(model=model.strip(), base_url=url, api_key=choice.key,
                                               timeout=float(timeout), redact_keys=others))
        except NemoError as exc:
            st.error(escape_markdown(exc.one_line()))
            return
        _ask(store, dp, runner, request, "model")
    last = st.session_state.get(_result_key(dp.id, "model"))
    if last:
        _show_model_answer(last)


def _show_model_answer(last: dict[str, Any]) -> None:
    extra = last["extra"]
    saved = (f"saved as attempt #{last['attempt_id']}" if last["attempt_id"] is not None
             else "no answer came back, so nothing was saved")
    st.markdown(f"**{escape_markdown(extra.get('model') or 'model')}'s answer** ({saved})")
    if str(extra.get("model") or "").startswith(PREFIX):  # a baseline: no request, so no latency or tokens
        _show_answer_body(last)
        return
    c1, c2, c3, c4 = st.columns(4)
    latency = extra.get("latency_ms")
    c1.metric("Latency", f"{latency / 1000:.2f} s" if latency is not None else "—")
    c2.metric("Prompt tokens", f"{extra['prompt_tokens']:,}" if extra.get("prompt_tokens") is not None else "—")
    c3.metric("Completion tokens",
              f"{extra['completion_tokens']:,}" if extra.get("completion_tokens") is not None else "—")
    c4.metric("tool_choice", extra.get("tool_choice") or "—", help=f"{extra.get('attempts', 0)} request(s)")
    _show_answer_body(last)


def _show_answer_body(last: dict[str, Any]) -> None:
    extra = last["extra"]
    if extra.get("error"):
        failed = last["action"] is None
        (st.error if failed else st.warning)(
            f"{'Failed' if failed else 'Graded, but'}: {escape_markdown(extra.get('error_kind') or '')} — "
            f"{escape_markdown(extra['error'])}")
    for note in extra.get("notes") or []:
        st.caption("ℹ️ " + escape_markdown(note))
    if last["action"] is not None:
        st.markdown("**Parsed action**")
        st.json(last["action"], expanded=True)
    if last.get("raw_response") is not None:
        with st.expander("Raw response"):
            st.json(last["raw_response"], expanded=2)
    if last["breakdown"]:
        render_breakdown(last["breakdown"], key="try_model_breakdown")


# ---- attempts ------------------------------------------------------------------------------------------
def _attempts(store: Any, dp: Any) -> None:
    attempts = list_attempts(store, dp.id)
    st.markdown(f"**Attempts at this decision point ({len(attempts)})**")
    if not attempts:
        st.caption("None yet: answers graded here are saved and listed.")
        return
    frame = pd.DataFrame([{
        "#": a.id, "time": fmt.when(a.created_at), "who": a.who, "kind": a.kind,
        "answer": a.summary(), "reward": a.reward, "reason": a.reason or (a.extra.get("error") or ""),
    } for a in attempts])
    st.dataframe(fmt.table(frame), hide_index=True, width="stretch", key=f"try::attempts_table::{dp.id}",
                 column_config={"reward": st.column_config.NumberColumn(format=fmt.REWARD_FORMAT)})
    by_id = {a.id: a for a in attempts}

    def label(attempt_id: int) -> str:
        a = by_id[attempt_id]
        return f"#{a.id} · {a.who} · " + ("not graded" if a.reward is None else fmt.reward(a.reward))

    # the key changes with the count, so a new attempt is the one shown
    chosen = st.selectbox("Show an attempt's breakdown", list(by_id), format_func=label,
                          key=f"try::attempt_pick::{dp.id}::{len(attempts)}")
    picked = by_id[chosen]
    shown_above = {(st.session_state.get(_result_key(dp.id, kind)) or {}).get("attempt_id")
                   for kind in ("human", "model", "baseline")}
    if chosen in shown_above:
        # the answer just given is drawn above already: the same breakdown twice made a long page
        st.caption("This attempt's breakdown is shown above.")
        return
    if picked.action is not None:
        with st.expander("The action", expanded=False):
            st.json(picked.action, expanded=True)
    if picked.breakdown:
        render_breakdown(picked.breakdown, key="try_attempt_breakdown")
    elif picked.error:
        st.caption("Not graded: " + escape_markdown(picked.error))


def render_try_panel(store: Any, dp: Any, request: dict[str, Any]) -> None:
    """The whole panel (called by the decision point page, below the request)."""
    st.subheader("Try an answer")
    st.caption("Answer this decision point yourself, or ask a model. The answer is graded against the expected "
               "action (this shows it, so answer first if you work blind) and saved as an attempt.")
    human, model = st.tabs(["Your answer", "A model's answer"])
    with human:
        _human(store, dp)
    with model:
        _model(store, dp, request)
    _attempts(store, dp)
