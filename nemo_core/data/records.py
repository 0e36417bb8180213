"""Reading one raw dataset row: validate it and normalise its messy shapes (SPEC §1).

The raw row is stored unchanged; everything here is a *view* computed from it, the same way at ingest
time (for the indexed columns) and at read time (for pages and graders). Keeping one normaliser means
the columns people filter on can never disagree with what a page shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..base.config import SUBMIT_MESSAGE
from ..base.errors import BadRow
from .jsontext import (JSONLimitError, check_depth, dumps, dumps_bytes, has_long_digit_run, loads_json,
                       loads_json_counted)

VALID_ROLES = frozenset({"system", "user", "assistant", "tool"})

SUBMIT_MESSAGE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": SUBMIT_MESSAGE,
        "description": (
            "Submit a text message response. Use when no function call is appropriate and the agent "
            "should respond directly to the user."
        ),
        "parameters": {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "The text reply to the user."}},
            "required": ["message"],
        },
    },
}


def content_text(value: Any) -> str:
    """Message content as text: strings as they are, `None` as "", OpenAI content parts joined, anything
    else (tool replies are often JSON objects, lists or booleans) as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list) and value and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value
    ):  # OpenAI content parts; a tool's JSON list that merely has "text" keys stays JSON (nothing hidden)
        return "".join(p["text"] for p in value)
    return dumps(value)


def parse_arguments(raw: Any) -> tuple[dict | None, str | None]:
    """Arguments as an object, or the reason they are not one.

    Accepted: an object, or a JSON string holding an object (SPEC §2). A list, a string of a list, invalid
    JSON or null are *not* guessed at: the turn is flagged ungradeable and the raw value stays visible.
    A string is read under `jsontext`'s strict rules (no NaN, integers exact, nesting limited), like a
    prediction line: what is inside it is graded the same way as what is outside.
    """
    if isinstance(raw, dict):
        return raw, None
    if isinstance(raw, str):
        try:
            parsed = loads_json(raw, exact=True, strict=True)
            check_depth(parsed, raw)
        except JSONLimitError as exc:
            return None, f"arguments string cannot be read: {exc}"
        except ValueError as exc:
            return None, f"arguments string is not valid JSON ({exc})"
        if isinstance(parsed, dict):
            return parsed, None
        return None, f"arguments string holds a JSON {json_kind(parsed)}, not an object"
    return None, f"arguments are a JSON {json_kind(raw)}, not an object or a JSON string of one"


def json_kind(value: Any) -> str:
    """The JSON type name of a Python value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


@dataclass(slots=True)
class ToolCall:
    """One call in an assistant message, normalised; `arguments` is None when `error` says why."""

    position: int
    name: str | None
    arguments: dict | None
    arguments_raw: Any
    call_id: str | None = None
    error: str | None = None

    def as_expected(self) -> dict[str, Any]:
        """The public form used by `show --json` and the graders: gradeable arguments as an object,
        otherwise the raw value so a user sees what the data holds."""
        return {"name": self.name, "arguments": self.arguments if self.error is None else self.arguments_raw}


def parse_tool_calls(raw_calls: Any) -> list[ToolCall]:
    """Every call of an assistant message, in order. Accepts OpenAI's `{type, id, function: {name,
    arguments}}` and the flat `{name, arguments}`; a stray `index` key is ignored."""
    if not raw_calls:
        return []
    calls: list[ToolCall] = []
    for position, raw in enumerate(raw_calls):
        if not isinstance(raw, dict):
            calls.append(ToolCall(position, None, None, raw, None, f"tool call is a JSON {json_kind(raw)}, not an object"))
            continue
        fn = raw.get("function") if isinstance(raw.get("function"), dict) else raw
        name = fn.get("name")
        raw_args = fn.get("arguments")
        call_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        if not isinstance(name, str) or not name:
            calls.append(ToolCall(position, None, None, raw_args, call_id, "tool call has no function name"))
            continue
        arguments, error = parse_arguments(raw_args)
        calls.append(ToolCall(position, name, arguments, raw_args, call_id, error))
    return calls


@dataclass
class ToolSet:
    """A conversation's tool definitions, normalised for offering to a model.

    `task_tools` has one definition per name (the first one wins, as an API would reject duplicates),
    each in OpenAI form with object parameters. What was changed on the way is listed so the ingest report
    and the tools panel can say so.
    """

    task_tools: list[dict] = field(default_factory=list)
    task_names: list[str] = field(default_factory=list)
    duplicate_names: list[str] = field(default_factory=list)
    conflicting_names: list[str] = field(default_factory=list)
    odd: list[str] = field(default_factory=list)
    name_clash: bool = False

    @property
    def names(self) -> list[str]:
        return list(self.task_names)

    def offered(self) -> list[dict]:
        """Task tools plus the shared `submit_message` (SPEC §2)."""
        return [*self.task_tools, SUBMIT_MESSAGE_TOOL]

    def schema_of(self, name: str) -> dict | None:
        for tool in self.task_tools:
            if tool["function"]["name"] == name:
                return tool["function"]["parameters"]
        return None


def _tool_parts(raw: Any, index: int) -> tuple[dict | None, str | None, str | None]:
    """(function object, name, reason) of a raw tool definition; name is None when it cannot be offered."""
    if not isinstance(raw, dict):
        return None, None, f"tool {index} is a JSON {json_kind(raw)}, not an object"
    fn = raw.get("function") if isinstance(raw.get("function"), dict) else raw
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        return fn, None, f"tool {index} has no name"
    return fn, name, None


def _normalise_parameters(fn: dict, name: str) -> tuple[dict, str | None]:
    """A definition's parameters as an object schema, and a note when something had to change."""
    params = fn.get("parameters")
    note = None
    if params is None:
        params = {"type": "object", "properties": {}}
    elif not isinstance(params, dict):
        note = f"tool {name!r}: parameters are a JSON {json_kind(params)}; offered with no parameters"
        params = {"type": "object", "properties": {}}
    else:
        params = dict(params)  # only top-level keys change; nested schemas are shared, never mutated
        root_type = params.get("type")
        if root_type is None:
            params["type"] = "object"
        elif root_type != "object":
            note = f"tool {name!r}: root type {root_type!r} is not 'object'; offered with no parameters"
            params = {"type": "object", "properties": {}}
        if isinstance(fn.get("required"), list) and "required" not in params:
            params["required"] = fn["required"]
            note = note or f"tool {name!r}: 'required' moved from the function into its parameters"
    return params, note


def normalise_tool(raw: Any, index: int) -> tuple[dict | None, str | None]:
    """One tool definition in OpenAI form, or the reason it cannot be offered."""
    fn, name, reason = _tool_parts(raw, index)
    if name is None:
        return None, reason
    params, note = _normalise_parameters(fn, name)
    description = fn.get("description")
    tool = {
        "type": "function",
        "function": {
            "name": name,
            "description": description if isinstance(description, str) else "",
            "parameters": params,
        },
    }
    return tool, note


def normalise_tools(raw_tools: Any, *, build: bool = True) -> ToolSet:
    """The tool list as offered. With `build=False` (ingest: only names and flags are needed) the
    normalised definitions are not built, which halves the cost of reading a row."""
    toolset = ToolSet()
    if not raw_tools:
        return toolset
    seen: dict[str, Any] = {}
    for index, raw in enumerate(raw_tools):
        fn, name, reason = _tool_parts(raw, index)
        if name is None:
            toolset.odd.append(reason)
            continue
        if name == SUBMIT_MESSAGE:
            toolset.name_clash = True
            toolset.odd.append("a task tool is named 'submit_message'; the shared tool is offered instead")
            continue
        if name in seen:
            if name not in toolset.duplicate_names:
                toolset.duplicate_names.append(name)
            if seen[name] != raw and name not in toolset.conflicting_names:
                toolset.conflicting_names.append(name)
            continue
        seen[name] = raw
        toolset.task_names.append(name)
        if build:
            tool, note = normalise_tool(raw, index)
        else:
            tool, note = None, _parameters_note(fn, name)
        if note:
            toolset.odd.append(note)
        if tool is not None:
            toolset.task_tools.append(tool)
    return toolset


def _parameters_note(fn: dict, name: str) -> str | None:
    """What `_normalise_parameters` would say about a definition, without building anything."""
    params = fn.get("parameters")
    if params is None:
        return None
    if not isinstance(params, dict) or params.get("type", "object") != "object":
        return _normalise_parameters(fn, name)[1]
    if isinstance(fn.get("required"), list) and "required" not in params:
        return f"tool {name!r}: 'required' moved from the function into its parameters"
    return None


def validate_row(obj: Any) -> None:
    """Raise `BadRow` with the reason when a parsed line cannot be used as a conversation.

    Only what makes the row unusable is rejected; quirks the data really has (SPEC §1) pass and are
    normalised later. Unknown extra keys are kept.
    """
    if not isinstance(obj, dict):
        raise BadRow(f"line is a JSON {json_kind(obj)}, not an object")
    uuid = obj.get("uuid")
    if not isinstance(uuid, str) or not uuid.strip():
        raise BadRow("no 'uuid' (a non-empty string is required)")
    if "/" in uuid:
        raise BadRow(f"uuid {uuid[:60]!r} contains '/', which would break decision point ids")
    messages = obj.get("messages")
    if messages is None:
        raise BadRow("no 'messages'")
    if not isinstance(messages, list):
        raise BadRow(f"'messages' is a JSON {json_kind(messages)}, not an array")
    if not messages:
        raise BadRow("'messages' is empty")
    tools = obj.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise BadRow(f"'tools' is a JSON {json_kind(tools)}, not an array")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise BadRow(f"messages[{i}] is a JSON {json_kind(msg)}, not an object")
        role = msg.get("role")
        if role is None:
            raise BadRow(f"messages[{i}] has no 'role'")
        if not isinstance(role, str) or role not in VALID_ROLES:  # a list or object role is unhashable
            raise BadRow(f"messages[{i}] has unknown role {str(role)[:40]!r} (expected system, user, assistant or tool)")
        tool_calls = msg.get("tool_calls")
        if tool_calls is not None and not isinstance(tool_calls, list):
            raise BadRow(f"messages[{i}].tool_calls is a JSON {json_kind(tool_calls)}, not an array or null")


def link_tool_results(messages: list[dict], calls_by_message: list[list[ToolCall] | None] | None = None) -> list[tuple[int, int] | None]:
    """For each message, the (assistant message index, call position) a tool reply answers, else None.

    By `tool_call_id` when it names a call; otherwise by position: tool messages answer the calls of the
    latest assistant message in order (`tool_calling` has no ids). A reply with nothing left to answer stays
    unlinked, and calls can stay unanswered; both happen in the real data. `calls_by_message` passes calls
    already parsed (extraction has them) so they are not parsed twice.
    """
    links: list[tuple[int, int] | None] = [None] * len(messages)
    by_id: dict[str, tuple[int, int]] = {}
    pending: list[tuple[int, int]] = []
    answered: set[tuple[int, int]] = set()
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role == "assistant":
            calls = calls_by_message[i] if calls_by_message is not None else parse_tool_calls(msg.get("tool_calls"))
            calls = calls or []
            pending = [(i, c.position) for c in calls]
            for c in calls:
                if c.call_id:
                    by_id[c.call_id] = (i, c.position)
        elif role == "tool":
            target = None
            tcid = msg.get("tool_call_id")
            if isinstance(tcid, str) and tcid in by_id and by_id[tcid] not in answered:
                target = by_id[tcid]
            else:
                while pending and pending[0] in answered:
                    pending.pop(0)
                if pending:
                    target = pending[0]
            if target is not None:
                answered.add(target)
                if target in pending:
                    pending.remove(target)
                links[i] = target
        else:
            pending = []
    return links
