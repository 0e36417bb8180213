"""The exact OpenAI chat request a model receives for a decision point (`messages` + `tools`).

The stored context is the dataset's messages unchanged (SPEC §2), and those are not always a valid
OpenAI request: `tool_calling` calls have no ids and object arguments, its tool replies have no
`tool_call_id` and often JSON (not string) content, some calls get no reply and some replies answer no
call. An OpenAI-compatible server rejects such a history, so this module converts it, the same way for
the decision point page (which shows the request) and for the model runner (which sends it).

Conversion rules (every one of them is deliberate; tests pin each):
- system / user messages: `content` as text (`records.content_text`: OpenAI content parts are joined,
  anything else JSON-encoded). An empty system prompt (every `tool_calling` row) is kept as `""`.
- assistant messages: `content` as text, or `null` when the message makes tool calls and has no text.
  Calls become `{"id", "type": "function", "function": {"name", "arguments"}}`:
  - the id is the recorded one, else synthesised as `call_<message index>_<call position>` (unique in a
    conversation, stable across runs); a recorded id already used earlier is replaced the same way;
  - `arguments` is always a JSON string: a recorded string is passed through unchanged (even when it is
    not valid JSON: the model sees what the data holds), anything else is JSON-encoded;
  - a call without a function name (never seen in the real data) is sent as `unnamed_call`.
  Earlier `reasoning_content` is dropped unless `include_reasoning=True`, in which case it is sent as the
  assistant message's `reasoning_content` key (the field vLLM / DeepSeek-style servers accept).
- tool messages: `tool_call_id` of the call they answer, found by `records.link_tool_results` (by id,
  else by position); non-string content is JSON-encoded.
- A call with no recorded reply gets a placeholder tool message (`NO_RESULT_PLACEHOLDER`) right after
  the replies that were recorded, because the API rejects an assistant tool call that is not answered
  before the next message. The placeholder says plainly that nothing was recorded, so it does not invent
  a result.
- A tool reply that answers no call (or whose call was already closed by a placeholder) becomes a *user*
  message starting with `UNLINKED_TOOL_RESULT_PREFIX`: a `tool` message without a matching call is
  invalid, and dropping it would hide context the original conversation had.
- `tools`: the decision point's offered tools (the task's, normalised, plus `submit_message`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..data.records import content_text, link_tool_results, parse_tool_calls

NO_RESULT_PLACEHOLDER = "(no result was recorded for this tool call in the dataset)"
UNLINKED_TOOL_RESULT_PREFIX = "[unlinked tool result: this tool reply answers no tool call in the conversation]\n"
UNNAMED_CALL = "unnamed_call"


def _json_text(value: Any) -> str:
    """A value as message text: strings unchanged, anything else as JSON (so `True` is `true`)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _arguments_text(raw: Any) -> str:
    return raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)


@dataclass
class _OpenBlock:
    """The calls of the latest assistant message that still expect tool messages."""

    ids: dict[tuple[int, int], str]
    answered: set[tuple[int, int]]


def context_to_openai(context: list[dict[str, Any]], *, include_reasoning: bool = False) -> list[dict[str, Any]]:
    """The context messages in valid OpenAI chat form (see the module docstring for every rule)."""
    links = link_tool_results(context)
    out: list[dict[str, Any]] = []
    used_ids: set[str] = set()
    block: _OpenBlock | None = None

    def close_block() -> None:
        nonlocal block
        if block is None:
            return
        for key, call_id in block.ids.items():
            if key not in block.answered:
                out.append({"role": "tool", "tool_call_id": call_id, "content": NO_RESULT_PLACEHOLDER})
        block = None

    for i, msg in enumerate(context):
        role = msg.get("role")
        if role == "tool":
            link = links[i]
            if block is not None and link in block.ids and link not in block.answered:
                block.answered.add(link)
                out.append({"role": "tool", "tool_call_id": block.ids[link], "content": _json_text(msg.get("content"))})
                continue
            close_block()
            out.append({"role": "user", "content": UNLINKED_TOOL_RESULT_PREFIX + _json_text(msg.get("content"))})
            continue

        close_block()
        if role == "assistant":
            calls = parse_tool_calls(msg.get("tool_calls"))
            text = content_text(msg.get("content"))
            converted: dict[str, Any] = {"role": "assistant", "content": text if (text or not calls) else None}
            if calls:
                ids: dict[tuple[int, int], str] = {}
                tool_calls = []
                for call in calls:
                    call_id = call.call_id if call.call_id and call.call_id not in used_ids else f"call_{i}_{call.position}"
                    used_ids.add(call_id)
                    ids[(i, call.position)] = call_id
                    tool_calls.append({
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name or UNNAMED_CALL, "arguments": _arguments_text(call.arguments_raw)},
                    })
                converted["tool_calls"] = tool_calls
                block = _OpenBlock(ids=ids, answered=set())
            reasoning = msg.get("reasoning_content")
            if include_reasoning and isinstance(reasoning, str) and reasoning:
                converted["reasoning_content"] = reasoning
            out.append(converted)
        else:
            out.append({"role": role, "content": content_text(msg.get("content"))})
    close_block()
    return out


def build_request(dp: Any, include_reasoning: bool = False) -> dict[str, Any]:
    """`{"messages": [...], "tools": [...]}`: exactly what a model is sent for this decision point.

    `dp` is a `DecisionPoint` (anything with `.context` and `.tools`). The expected message itself, and
    so its own reasoning, is never part of the context.
    """
    return {
        "messages": context_to_openai(dp.context, include_reasoning=include_reasoning),
        "tools": dp.tools,
    }


def request_json(dp: Any, include_reasoning: bool = False) -> str:
    """The request as indented JSON text, ready to copy into a script or a curl call."""
    return json.dumps(build_request(dp, include_reasoning), indent=2, ensure_ascii=False)
