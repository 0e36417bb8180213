"""OpenAI's format checks for chat fine-tuning lines, as a validator the `openai-ft` export and its tests use.

Source: the OpenAI Cookbook notebook "Data preparation and analysis for chat model fine-tuning"
(`examples/Chat_finetuning_data_prep.ipynb`, openai/openai-cookbook), whose "Format validation" cell counts
seven kinds of error. Its rules predate tool calling (it knows `function_call`, not `tool_calls` or the
`tool` role), so for the keys and roles of tool-calling lines they are read against the fine-tuning input
schema of OpenAI's API reference (`FineTuneChatRequestInput`: `messages`, `tools`, `parallel_tool_calls`;
an assistant message's `content` is "required unless tool_calls or function_call is specified"; `weight`
is 0 or 1 and only on assistant messages; a tool message has `content` and `tool_call_id`). The checks,
with the cookbook's error names where it has one:

1. `data_type`: the line is a JSON object.
2. `missing_messages_list`: it has a non-empty `messages` list (and no top-level key but `messages`,
   `tools`, `parallel_tool_calls`: `example_unrecognized_key`).
3. `message_missing_key`: every message has `role`, and `content` unless it is an assistant message with
   `tool_calls`; a tool message also needs `tool_call_id`.
4. `message_unrecognized_key`: no key outside its role's (system/user: role, content, name; assistant:
   role, content, name, tool_calls, weight, refusal; tool: role, content, tool_call_id).
5. `unrecognized_role`: role is system, user, assistant or tool (`function` is the deprecated form of tool
   calling: never written here, so refused).
6. `missing_content`: `content` is a non-empty string; an assistant message with `tool_calls` may have
   `content` null (or a string).
7. `example_missing_assistant_message`: at least one assistant message is trained (its weight is not 0).

And for the tool-calling parts the cookbook does not cover (each from the API's types):
- `invalid_weight`: `weight` is 0 or 1.
- `invalid_tool_call`: each call is `{"id": str, "type": "function", "function": {"name", "arguments": str}}`
  with a function name OpenAI accepts (`^[a-zA-Z0-9_-]{1,64}$`); a trained call's arguments are a JSON
  object (the model learns to write them).
- `tool_call_id_unknown` / `tool_call_unanswered`: a tool message answers a call of the latest assistant
  message that is still open, and every call is answered before the next non-tool message (what the chat API
  itself requires of a history; the trained last turn needs no answers).
- `invalid_tool` / `duplicate_tool_name`: `tools` is a list of `{"type": "function", "function": {"name",
  "parameters": {"type": "object", ...}}}` with distinct, valid names.
- `tool_call_not_in_tools`: a trained call names a tool in `tools` (ours: a line that trains a model to call a
  tool it was not offered teaches nothing useful).

`check_line(obj)` returns the error names found with where they are (empty: the line passes).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOP_LEVEL_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
ROLE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "weight", "refusal"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}


def _json_object(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return isinstance(orjson.loads(text), dict)
    except orjson.JSONDecodeError:
        return False


def _check_tools(tools: Any) -> tuple[list[str], set[str]]:
    errors: list[str] = []
    names: set[str] = set()
    if not isinstance(tools, list):
        return ["invalid_tool: tools is not a list"], names
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        params = fn.get("parameters") if isinstance(fn, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(name, str) or not FUNCTION_NAME.match(name) \
                or not isinstance(params, dict) or params.get("type") != "object":
            errors.append(f"invalid_tool: tools[{i}]")
            continue
        if name in names:
            errors.append(f"duplicate_tool_name: tools[{i}] {name}")
        names.add(name)
    return errors, names


def _check_calls(calls: Any, where: str, trained: bool, tool_names: set[str] | None) -> list[str]:
    if not isinstance(calls, list) or not calls:
        return [f"invalid_tool_call: {where} tool_calls is not a non-empty list"]
    errors = []
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(call.get("id"), str) or call.get("type") != "function" \
                or not isinstance(fn, dict) or not isinstance(fn.get("name"), str) \
                or not FUNCTION_NAME.match(fn["name"]) or not isinstance(fn.get("arguments"), str):
            errors.append(f"invalid_tool_call: {where} tool_calls[{j}]")
            continue
        if trained and not _json_object(fn["arguments"]):
            errors.append(f"invalid_tool_call: {where} tool_calls[{j}] arguments are not a JSON object")
        if trained and tool_names is not None and fn["name"] not in tool_names:
            errors.append(f"tool_call_not_in_tools: {where} tool_calls[{j}] {fn['name']}")
    return errors


def _check_message(message: Any, where: str, tool_names: set[str] | None) -> list[str]:
    if not isinstance(message, dict):
        return [f"message_missing_key: {where} is not an object"]
    role = message.get("role")
    if role not in ROLE_KEYS:
        return [f"unrecognized_role: {where} role {str(role)[:20]!r}"]
    errors = []
    calls = message.get("tool_calls") if role == "assistant" else None
    if any(k not in ROLE_KEYS[role] for k in message):
        errors.append(f"message_unrecognized_key: {where} {sorted(set(message) - ROLE_KEYS[role])}")
    if "content" not in message and calls is None:
        errors.append(f"message_missing_key: {where} content")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        errors.append(f"message_missing_key: {where} tool_call_id")
    content = message.get("content")
    if calls is not None:
        if content is not None and not isinstance(content, str):
            errors.append(f"missing_content: {where} content is neither a string nor null")
    elif not isinstance(content, str) or not content:
        errors.append(f"missing_content: {where}")
    if "weight" in message and message["weight"] not in (0, 1):
        errors.append(f"invalid_weight: {where}")
    if calls is not None:
        errors += _check_calls(calls, where, message.get("weight", 1) != 0, tool_names)
    return errors


def _check_links(messages: list[Any]) -> list[str]:
    """Tool messages answer the open calls of the latest assistant message; every call is answered before the
    next message that is not a tool reply (the trained last turn excepted)."""
    errors: list[str] = []
    open_ids: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_ids:
                errors.append(f"tool_call_id_unknown: messages[{i}]")
            open_ids.discard(call_id)
            continue
        if open_ids:
            errors.append(f"tool_call_unanswered: before messages[{i}]")
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        open_ids = {c.get("id") for c in calls if isinstance(c, dict)} if isinstance(calls, list) else set()
    return errors


def check_line(obj: Any) -> list[str]:
    """The format errors of one fine-tuning line (see the module docstring); [] when it passes."""
    if not isinstance(obj, dict):
        return ["data_type"]
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["missing_messages_list"]
    errors = [f"example_unrecognized_key: {k}" for k in obj if k not in TOP_LEVEL_KEYS]
    tool_names: set[str] | None = None
    if "tools" in obj:
        tool_errors, tool_names = _check_tools(obj["tools"])
        errors += tool_errors
    if "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
        errors.append("example_unrecognized_key: parallel_tool_calls is not a boolean")
    for i, message in enumerate(messages):
        errors += _check_message(message, f"messages[{i}]", tool_names or set())
    errors += _check_links(messages)
    if not any(isinstance(m, dict) and m.get("role") == "assistant" and m.get("weight", 1) != 0 for m in messages):
        errors.append("example_missing_assistant_message")
    return errors
