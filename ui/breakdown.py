"""The one component that shows a grade (a `grading.Breakdown`), used wherever a score appears.

It shows the total, the action type, the name match, every argument key with its status and the expected
and submitted values side by side (rows coloured by status, with a marker so colour is not needed to read
it), the hints, the notes, the schema check, and for messages the grader that ran, its reason and the
keyword overlap. Every value here can be dataset or model text, so nothing goes through
`unsafe_allow_html`: tables are `st.dataframe` (drawn on a canvas), text is `st.text` or escaped Markdown.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from nemo_core.grading.grade import Breakdown

from .formats import reward as reward_text
from .safe import code_span, escape_markdown

STATUS_MARK = {"match": "✅ match", "mismatch": "❌ mismatch", "missing": "➖ missing", "extra": "➕ extra"}
STATUS_COLOUR = {"match": "#e6f4ea", "mismatch": "#fce8e6", "missing": "#fef7e0", "extra": "#fef7e0"}
ABSENT = "—"

REASONS = {
    "exact_match": "the name and every argument match",
    "wrong_name": "the tool name differs (the arguments still count for half)",
    "argument_mismatch": "the name matches; some argument keys do not",
    "invalid_arguments": "the submitted arguments are not a JSON object: argument match 0, the name still counts",
    "wrong_action_type": "a call where a message was expected, or the reverse: reward 0",
    "ungradeable_reference": "the expected action itself cannot be graded: no reward (this is not a 0)",
    "keyword_f1": "message graded by keyword overlap (F1 of the keyword sets)",
    "llm": "message graded by the LLM grader",
    "llm_fallback": "the LLM grader failed; the keyword grader answered",
}


def reason_code(reason: str | None) -> str:
    """The rule name at the start of a reason (`wrong_name: expected ...` -> `wrong_name`)."""
    return (reason or "").split(":", 1)[0].strip()


def _json_cell(value: Any, present: bool) -> str:
    if not present:
        return ABSENT
    return json.dumps(value, ensure_ascii=False)


def keys_frame(breakdown: Breakdown) -> pd.DataFrame:
    """One row per argument key: status, key, expected and submitted (JSON text), hint."""
    rows = []
    for k in breakdown.keys:
        rows.append({
            "status": STATUS_MARK.get(k.status, k.status),
            "key": k.key,
            "expected": _json_cell(k.expected, k.status != "extra"),
            "submitted": _json_cell(k.submitted, k.status != "missing"),
            "hint": k.hint or "",
        })
    return pd.DataFrame(rows, columns=["status", "key", "expected", "submitted", "hint"])


def _styled(frame: pd.DataFrame, statuses: list[str]) -> Any:
    colours = [STATUS_COLOUR.get(s, "") for s in statuses]

    def paint(row: pd.Series) -> list[str]:
        colour = colours[row.name]
        return [f"background-color: {colour}" if colour else ""] * len(row)

    return frame.style.apply(paint, axis=1)


def _fmt(value: float | None) -> str:
    """3 decimals, as everywhere else (ui.formats): 0.5 -> "0.500"; None -> "not graded"."""
    return "not graded" if value is None else reward_text(value)


def render_breakdown(breakdown: Breakdown | dict[str, Any], *, key: str = "breakdown", title: str | None = None,
                     narrow: bool = False) -> None:
    """Draw one breakdown. `key` must be unique on the page when several are shown. `narrow` for a side
    column: four metrics side by side would each be cut to a few letters there, so only the reward is a
    metric and the other three numbers follow as a line of text that wraps."""
    b = breakdown if isinstance(breakdown, Breakdown) else Breakdown.from_json(breakdown)
    with st.container(border=True, key=f"{key}::box"):
        if title:
            st.markdown(f"**{escape_markdown(title)}**")
        is_call = b.expected_type == "function_call"
        type_ok = b.action_type_match
        numbers = [
            ("Action type", "—" if type_ok is None else ("✅ match" if type_ok else "❌ mismatch"),
             f"expected {b.expected_type or '?'}, submitted {b.submitted_type or '?'}"),
            *([("Name match", "—" if b.name_match is None else ("✅ 1" if b.name_match else "❌ 0"), None),
               ("Argument match", _fmt(b.arg_match), "matching keys ÷ keys in expected ∪ submitted (both empty: 1)")]
              if is_call else [("Grader", b.grader or "—", None), ("Grader model", b.grader_model or "—", None)]),
        ]
        # a metric's value is Markdown: the grader's names are text from elsewhere, so they go in escaped
        text_metrics = {"Grader", "Grader model"}
        reward_help = "0.5 × name match + 0.5 × argument match" if is_call else "score of the message grader"
        if narrow:
            st.metric("Reward", _fmt(b.reward), help=reward_help)
            st.markdown(" · ".join(f"**{label}:** {escape_markdown(value)}" for label, value, _ in numbers))
        else:
            columns = st.columns(4)
            columns[0].metric("Reward", _fmt(b.reward), help=reward_help)
            for column, (label, value, help_text) in zip(columns[1:], numbers):
                column.metric(label, escape_markdown(value) if label in text_metrics else value, help=help_text)
        code = reason_code(b.reason)
        explained = REASONS.get(code)
        st.markdown("**Reason:** " + code_span(b.reason or "—", 300)
                    + (f" — {escape_markdown(explained)}" if explained else ""))
        if b.expected_type and b.submitted_type and b.expected_type != b.submitted_type:
            st.markdown(f"Expected a {code_span(b.expected_type)}, submitted a {code_span(b.submitted_type)}.")
        if is_call and (b.expected_name or b.submitted_name):
            mark = "✅" if b.expected_name == b.submitted_name else "❌"
            st.markdown(f"{mark} Expected tool {code_span(b.expected_name or ABSENT)} · submitted "
                        f"{code_span(b.submitted_name or ABSENT)}"
                        + (f" · matched expected call #{b.matched_call + 1}" if b.matched_call is not None else ""))
        if b.keys:
            frame = keys_frame(b)
            st.dataframe(_styled(frame, [k.status for k in b.keys]), hide_index=True, width="stretch",
                         key=f"{key}::keys")
            counts = {s: sum(1 for k in b.keys if k.status == s) for s in STATUS_MARK}
            st.caption(" · ".join(f"{STATUS_MARK[s]}: {n}" for s, n in counts.items() if n)
                       + "  (values compared as JSON: numbers by value, strings trimmed, arrays in order)")
            hinted = [k for k in b.keys if k.hint]
            if hinted:  # in full: the table's last column is cut in a narrow column or at 1280 px
                st.caption("Hints: " + " · ".join(f"{code_span(k.key)}: {escape_markdown(k.hint)}" for k in hinted))
        elif is_call and type_ok and b.arg_match is not None and b.reward is not None:
            # only when a call was compared with a call: after a message where a call was expected there is
            # nothing to compare, and "no keys on either side" would be false
            st.caption("No argument keys on either side.")
        if b.schema_valid is True:
            st.caption("✅ The submitted arguments are valid under the tool's JSON schema (a hint; it does not score).")
        elif b.schema_valid is False:
            st.markdown("⚠️ **Not valid under the tool's JSON schema** (a hint; it does not score):")
            st.text("\n".join(b.schema_errors[:20]))
        if b.expected_type == "message" and b.action_type_match:
            _message_details(b, key)
        for note in b.notes:
            st.caption("ℹ️ " + escape_markdown(note))
        st.caption(f"rule version {escape_markdown(b.rule_version)} · grader {escape_markdown(b.grader or '—')}"
                   + (f" ({escape_markdown(b.grader_model)})" if b.grader_model else ""))


def _message_details(b: Breakdown, key: str) -> None:
    if b.grader == "llm":
        st.markdown(f"**LLM grader** {code_span(b.grader_model or '')}: "
                    f"{b.llm_score if b.llm_score is not None else '?'}/10"
                    + (" (cached)" if b.llm_cached else ""))
        if b.llm_reason:
            st.text(b.llm_reason)
        return
    if b.llm_error:
        st.warning("The LLM grader failed, so the keyword grader answered: " + escape_markdown(b.llm_error))
    kw = b.keyword or {}
    if not kw:
        return
    shared = set(kw.get("shared") or [])
    expected_only = [w for w in kw.get("expected_keywords") or [] if w not in shared]
    submitted_only = [w for w in kw.get("candidate_keywords") or [] if w not in shared]
    st.markdown(
        f"**Keyword overlap:** {kw.get('n_shared', 0)} shared of {kw.get('n_expected', 0)} expected and "
        f"{kw.get('n_candidate', 0)} submitted keywords; F1 = 2·shared ÷ (expected + submitted)"
    )
    table = pd.DataFrame({
        "": ["✅ shared", "➖ only in the expected reply", "➕ only in the submitted reply"],
        "keywords": [", ".join(sorted(shared)) or ABSENT, ", ".join(expected_only) or ABSENT,
                     ", ".join(submitted_only) or ABSENT],
    })
    st.dataframe(table, hide_index=True, width="stretch", key=f"{key}::keywords")
    st.caption("Keywords: lower-cased words minus English stopwords and one-letter words; lists are cut at "
               "60 words, the counts are complete.")
