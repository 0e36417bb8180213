"""The conversation up to a decision point, replayed with one `st.chat_message` per message.

Dataset order is kept (that is what a model sees); each tool reply says which call it answers (linked by
id, else by position, as `records.link_tool_results` decides), and each call without a reply says so.
All dataset text goes through `ui.safe`.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from nemo_core.data.records import content_text, link_tool_results, parse_tool_calls

from .safe import code_span, escape_markdown, show_text, show_value

AVATARS = {"user": "🧑", "assistant": "🤖", "tool": "🛠️"}


def call_titles(context: list[dict[str, Any]]) -> dict[tuple[int, int], str]:
    """`(message index, call position) -> "name"` for every call in the context."""
    out: dict[tuple[int, int], str] = {}
    for i, msg in enumerate(context):
        if msg.get("role") == "assistant":
            for call in parse_tool_calls(msg.get("tool_calls")):
                out[(i, call.position)] = call.name or "(no name)"
    return out


def render_call(call: Any, answered: bool) -> None:
    """One tool call: its name, then its arguments as JSON (or the raw value and why it is not JSON)."""
    st.markdown(f"**Tool call {call.position + 1}:** {code_span(call.name or '(no function name)')}")
    if call.error:
        st.warning("Arguments cannot be graded: " + escape_markdown(call.error))
        show_value(call.arguments_raw)
    else:
        st.json(call.arguments, expanded=True)
    if not answered:
        st.caption("No tool reply was recorded for this call.")


def render_reasoning(text: str, label: str = "Reasoning") -> None:
    with st.expander(f"{label} ({len(text):,} characters)"):
        show_text(text, limit=4_000)


def render_conversation(context: list[dict[str, Any]]) -> None:
    links = link_tool_results(context)
    answered = {link for link in links if link is not None}
    names = call_titles(context)
    if not context:
        st.caption("The context is empty.")
    for i, msg in enumerate(context):
        role = msg.get("role")
        content = msg.get("content")
        if role == "system":
            text = content_text(content)
            if text.strip():
                with st.expander(f"System prompt ({len(text):,} characters)"):
                    show_text(text, limit=20_000)
            else:
                st.caption("System prompt: empty.")
            continue
        with st.chat_message(role if role in ("user", "assistant") else "tool", avatar=AVATARS.get(role, "❔")):
            st.caption(f"#{i} · {escape_markdown(str(role))}")
            if role == "assistant":
                reasoning = msg.get("reasoning_content")
                if isinstance(reasoning, str) and reasoning.strip():
                    render_reasoning(reasoning)
                text = content_text(content)
                if text.strip():
                    show_text(text)
                calls = parse_tool_calls(msg.get("tool_calls"))
                for call in calls:
                    render_call(call, (i, call.position) in answered)
                if not text.strip() and not calls:
                    st.caption("(empty message)")
            elif role == "tool":
                link = links[i]
                if link is None:
                    st.warning("This tool reply answers no tool call (nothing was left to answer).")
                else:
                    name = names.get(link, "?")
                    how = "by tool_call_id" if msg.get("tool_call_id") else "by position"
                    st.markdown(
                        f"Result of {code_span(name)} (call {link[1] + 1} of message #{link[0]}, linked {how})"
                    )
                show_value(content)
            elif isinstance(content, str):
                show_text(content)
            else:
                show_value(content)
