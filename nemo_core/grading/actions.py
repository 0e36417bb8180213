"""The one action an agent submits for a decision point (SPEC §3), whatever form it arrived in.

Accepted, and converted to one `Action`:
- `{"type": "function_call", "name": str, "arguments": object | JSON string}`
- `{"type": "message", "content": str}`
- an OpenAI assistant message (`{"role": "assistant", "content": ..., "tool_calls": [...]}`): graded on
  its first tool call (the rest are counted, and the breakdown says they were ignored), else its content
- an OpenAI tool-call object (`{"type": "function", "id": ..., "function": {"name", "arguments"}}`), or
  the dataset's own flat `{"name", "arguments"}` call
A call of `submit_message` is the message action. Anything else raises `ActionError`, which says what was
expected: a malformed action is never silently graded as 0.

Arguments that are present but not an object (a list, invalid JSON, a JSON string of a list) are *not* an
action error: the action is graded and scores `invalid_arguments` (SPEC §4), because that is a real model
mistake worth counting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..base.config import SUBMIT_MESSAGE
from ..base.errors import NemoError
from ..data.records import json_kind, parse_arguments

ACCEPTED_FORMS = (
    '{"type": "function_call", "name": "...", "arguments": {...} or "<JSON string>"}, '
    '{"type": "message", "content": "..."}, an OpenAI assistant message {"role": "assistant", "content", '
    '"tool_calls"}, or an OpenAI tool call {"type": "function", "function": {"name", "arguments"}}'
)


class ActionError(NemoError):
    """A submitted action in none of the accepted forms; the message says what was wrong."""

    hint = "accepted: " + ACCEPTED_FORMS


@dataclass(frozen=True, slots=True)
class Action:
    """One submitted action, normalised.

    `arguments` is the parsed object, or None when `arguments_error` says why the submitted arguments are
    not one; `arguments_raw` keeps what was submitted so the breakdown can show it.
    """

    type: str  # "function_call" | "message"
    name: str | None = None
    arguments: dict | None = None
    arguments_raw: Any = None
    arguments_error: str | None = None
    content: str | None = None
    ignored_calls: int = 0
    form: str = "action"  # action | assistant_message | tool_call | submit_message

    def to_json(self) -> dict[str, Any]:
        """The canonical form (what is stored): a message, or a call with the arguments as submitted."""
        if self.type == "message":
            return {"type": "message", "content": self.content}
        args = self.arguments if self.arguments_error is None else self.arguments_raw
        return {"type": "function_call", "name": self.name, "arguments": args}

    @classmethod
    def message(cls, content: str, *, form: str = "action", ignored_calls: int = 0) -> "Action":
        return cls(type="message", content=content, form=form, ignored_calls=ignored_calls)

    @classmethod
    def call(cls, name: str, arguments: Any, *, form: str = "action", ignored_calls: int = 0) -> "Action":
        """A function call; `submit_message` becomes the message action (SPEC §3)."""
        parsed, error = parse_arguments(arguments)
        if name == SUBMIT_MESSAGE:
            if parsed is None:
                raise ActionError(f"a call of {SUBMIT_MESSAGE} needs arguments {{\"message\": string}}: {error}")
            message = parsed.get("message")
            if not isinstance(message, str):
                raise ActionError(
                    f"a call of {SUBMIT_MESSAGE} needs arguments {{\"message\": string}}; "
                    f"'message' is {'missing' if 'message' not in parsed else 'a JSON ' + json_kind(message)}"
                )
            return cls.message(message, form="submit_message", ignored_calls=ignored_calls)
        return cls(type="function_call", name=name, arguments=parsed, arguments_raw=arguments,
                   arguments_error=error, form=form, ignored_calls=ignored_calls)


def _call_from_function(fn: dict, where: str, *, form: str, ignored_calls: int = 0) -> Action:
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        shown = "missing" if name is None else f"a JSON {json_kind(name)}" if not isinstance(name, str) else "empty"
        raise ActionError(f"{where}: 'name' must be a non-empty string (it is {shown})")
    if "arguments" not in fn:
        raise ActionError(f"{where}: no 'arguments' (an object, or a JSON string of one; {{}} for none)")
    return Action.call(name, fn["arguments"], form=form, ignored_calls=ignored_calls)


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)  # OpenAI content parts
    raise ActionError(f"{where}: 'content' must be a string (it is a JSON {json_kind(value)})")


def decode_action(obj: Any) -> Any:
    """The first step of reading any submitted action, shared by `parse_action` and the answer formats'
    `parse_answer`: an `Action` passes through as it is, a string is decoded as JSON (`ActionError` when it is
    not JSON), anything else is returned unchanged for the caller to read."""
    if isinstance(obj, str):
        try:
            return json.loads(obj)
        except ValueError:
            raise ActionError("the action is a string that is not JSON") from None
    return obj


def parse_action(obj: Any) -> Action:
    """Any accepted form -> `Action`; `ActionError` (saying what was expected) otherwise."""
    obj = decode_action(obj)
    if isinstance(obj, Action):
        return obj
    if not isinstance(obj, dict):
        raise ActionError(f"the action is a JSON {json_kind(obj)}, not an object")
    kind = obj.get("type")
    if kind == "function_call":
        return _call_from_function(obj, "function_call action", form="action")
    if kind == "message":
        if "content" not in obj:
            raise ActionError("message action: no 'content'")
        return Action.message(_content(obj["content"], "message action"))
    if "role" in obj:
        if obj["role"] != "assistant":
            raise ActionError(f"an OpenAI message with role {str(obj['role'])[:40]!r}; only an assistant message is an action")
        calls = obj.get("tool_calls")
        if calls:
            if not isinstance(calls, list):
                raise ActionError(f"assistant message: 'tool_calls' is a JSON {json_kind(calls)}, not an array")
            first = calls[0]
            if not isinstance(first, dict):
                raise ActionError(f"assistant message: tool_calls[0] is a JSON {json_kind(first)}, not an object")
            fn = first.get("function") if isinstance(first.get("function"), dict) else first
            return _call_from_function(fn, "assistant message tool_calls[0]", form="assistant_message",
                                       ignored_calls=len(calls) - 1)
        content = obj.get("content")
        if content is None:
            raise ActionError("assistant message with neither tool_calls nor content")
        return Action.message(_content(content, "assistant message"), form="assistant_message")
    if isinstance(obj.get("function"), dict) and kind in (None, "function"):
        return _call_from_function(obj["function"], "tool call", form="tool_call")
    if kind is None and "name" in obj and "arguments" in obj:
        return _call_from_function(obj, "tool call", form="tool_call")
    if kind is not None:
        raise ActionError(f"unknown action type {str(kind)[:40]!r} (expected 'function_call' or 'message')")
    raise ActionError(f"an object with keys {sorted(obj)[:8]} is not an action")
