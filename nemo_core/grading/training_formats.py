"""A decision point as a training line: OpenAI chat fine-tuning (`openai-ft`) and NeMo Gym (`nemo-gym`).

Both start from the request a model receives (`request.context_to_openai`: the dataset's history made into
a valid OpenAI chat history), so a model is trained on exactly what the workbench later asks it, and change
only what the target format itself refuses.

**openai-ft** (`openai_ft_line`): `{"messages": context + the expected assistant turn, "tools": [...]}`,
checked line by line against OpenAI's format checks (`ft_format_check.py`). The dataset's odd shapes, and
what becomes of each:
- tool replies without `tool_call_id` (`tool_calling`), calls without ids, object arguments, JSON (not
  string) tool content, calls with no recorded reply, replies that answer no call: converted as for a model
  request (see `request.py`: ids synthesised, arguments and content JSON-encoded, a placeholder reply, an
  unlinked reply as a user message).
- list arguments (7 calls in `tool_calling`) and arguments strings that are not JSON: in the context they
  are sent as the request sends them (a JSON-encoded string); in the trained turn the decision point is
  flagged `ungradeable` and skipped (a model must not learn to write them).
- an assistant message that calls tools and has no text: `content` null, which the fine-tuning schema
  allows beside `tool_calls`.
- the empty system message (every `tool_calling` row), an empty user message, an earlier empty assistant
  reply: dropped (the format check wants a non-empty `content`; an empty message carries nothing).
- an empty tool reply: `content` becomes `EMPTY_TOOL_RESULT` (a tool message must have content, and
  dropping it would leave its call unanswered).
- earlier assistant turns: `"weight": 0`, so each line trains its own decision point only (a conversation
  gives one line per assistant turn; without it every earlier turn would be trained again in each later line).
- parallel calls: the expected turn keeps all its calls, in order (`parallel_tool_calls` is left at its
  default, true).
- the expected call's arguments: compact JSON of the parsed object; ids `call_<turn>_<position>` unless the
  data recorded an unused one; any text beside the calls is left out (the action is the calls).
- tools: the task's (one per name, `parameters` an object schema, as the request offers them), with
  `"properties": {}` added where a definition has none; a text reply is an assistant message, or with
  `submit_message_tool=True` a call of `submit_message` offered among the tools.
- skipped, each counted by reason (`SKIP_REASONS`): an ungradeable expected turn, an empty expected
  message, an expected call of a tool the task does not offer, a task tool named `submit_message`, a tool
  name OpenAI refuses, and (a safety net, never seen on the demo data) any line the format check refuses.

**nemo-gym** (`nemo_gym_row`): a row of NeMo Gym's `single_step_tool_use_with_argument_comparison` resources
server, matched to its `task_data.py` (`TaskData.expected_action`: `message {content}`, `function_call
{name, arguments: JSON-encoded object string}`, `function_call_batch {calls: [function_call, ...]}` with at
least one call) and to the `responses_create_params` its tests build (`tests/test_app.py`: Responses API
`input` items and flat `FunctionTool`s; NVIDIA-NeMo/Gym, `resources_servers/
single_step_tool_use_with_argument_comparison/`). The input items are the request's messages as Responses
items: `{"type": "message", "role", "content"}` for system, user and assistant text,
`{"type": "function_call", "call_id", "name", "arguments"}` per call, `{"type": "function_call_output",
"call_id", "output"}` per tool reply. Tools are the task's, `strict: false` (the dataset's schemas are not
written for strict mode). `parallel_tool_calls` is true on every row (OpenAI's default: setting it only on
parallel turns would tell the policy the answer). A single expected call is a `function_call`, a parallel
turn a `function_call_batch`, a text reply the `message` action (whatever its text: the server rewards any
chat message there). Skipped: ungradeable expected turns (the server parses the arguments as an object), an
expected call of a tool not offered, a task tool named `submit_message`, a tool name OpenAI refuses.
Extra keys are allowed by `TaskData` (`extra="allow"`): each row carries its decision point `id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..base.config import SUBMIT_MESSAGE
from .ft_format_check import FUNCTION_NAME, check_line
from ..data.jsontext import dumps
from ..data.records import SUBMIT_MESSAGE_TOOL
from .request import context_to_openai

EMPTY_TOOL_RESULT = "(the tool returned an empty result)"

SKIP_REASONS: dict[str, str] = {
    "ungradeable": "the expected call's arguments are not an object (flag ungradeable)",
    "empty_expected": "the expected message is empty (flag empty_expected)",
    "expected_tool_not_offered": "the expected call names a tool the task does not offer",
    "tool_name_clash": "a task tool is named submit_message (flag tool_name_clash)",
    "invalid_tool_name": "a task tool's name is not one OpenAI accepts (^[a-zA-Z0-9_-]{1,64}$)",
    "format_check": "the line fails OpenAI's format checks (ft_format_check.py)",
}


@dataclass(frozen=True, slots=True)
class Skipped:
    """A decision point left out of a training export, and why (a key of `SKIP_REASONS`)."""

    reason: str
    detail: str = ""


def _unusable(dp: Any, *, empty_message_ok: bool) -> Skipped | None:
    flags = dp.flags
    if "ungradeable" in flags:
        return Skipped("ungradeable")
    if "tool_name_clash" in flags:
        return Skipped("tool_name_clash")
    if dp.action_type == "function_call" and "expected_tool_not_offered" in flags:
        return Skipped("expected_tool_not_offered")
    if dp.action_type == "message" and "empty_expected" in flags and not empty_message_ok:
        return Skipped("empty_expected")
    for name in dp.toolset.task_names:
        if not FUNCTION_NAME.match(name):
            return Skipped("invalid_tool_name", name[:80])
    return None


def _task_tools(dp: Any) -> list[dict[str, Any]]:
    """The task's tools as offered, with `properties` present in every parameters schema."""
    out = []
    for tool in dp.toolset.task_tools:
        params = tool["function"]["parameters"]
        if "properties" not in params:
            tool = {**tool, "function": {**tool["function"], "parameters": {**params, "properties": {}}}}
        out.append(tool)
    return out


def _expected_calls(dp: Any, used_ids: set[str]) -> list[dict[str, Any]]:
    """The expected turn's calls in OpenAI form (ids unique in the line, arguments compact JSON)."""
    calls = []
    for call in dp.expected_calls:
        call_id = call.call_id if call.call_id and call.call_id not in used_ids else f"call_{dp.turn_index}_{call.position}"
        used_ids.add(call_id)
        calls.append({"id": call_id, "type": "function",
                      "function": {"name": call.name, "arguments": dumps(call.arguments)}})
    return calls


def _ft_context(context: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in context_to_openai(context):
        role, content = message["role"], message.get("content")
        if role == "tool":
            if content == "":
                message["content"] = EMPTY_TOOL_RESULT
        elif role == "assistant":
            if not content and not message.get("tool_calls"):
                continue
            message["weight"] = 0
        elif not content:
            continue
        out.append(message)
    return out


def openai_ft_line(dp: Any, *, submit_message_tool: bool = False) -> dict[str, Any] | Skipped:
    """One OpenAI chat fine-tuning line for `dp` (a `DecisionPoint`), or why it is left out."""
    skipped = _unusable(dp, empty_message_ok=False)
    if skipped is not None:
        return skipped
    messages = _ft_context(dp.context)
    used = {c["id"] for m in messages for c in m.get("tool_calls") or ()}
    if dp.action_type == "function_call":
        target: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": _expected_calls(dp, used)}
    elif submit_message_tool:
        call_id = f"call_{dp.turn_index}_0" if f"call_{dp.turn_index}_0" not in used else f"call_{dp.turn_index}_reply"
        target = {"role": "assistant", "content": None, "tool_calls": [{
            "id": call_id, "type": "function",
            "function": {"name": SUBMIT_MESSAGE, "arguments": dumps({"message": dp.expected_content or ""})}}]}
    else:
        target = {"role": "assistant", "content": dp.expected_content or ""}
    line: dict[str, Any] = {"messages": [*messages, target]}
    tools = _task_tools(dp) + ([SUBMIT_MESSAGE_TOOL] if submit_message_tool else [])
    if tools:
        line["tools"] = tools
    errors = check_line(line)
    if errors:
        return Skipped("format_check", errors[0])
    return line


def _responses_input(context: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request's messages as Responses API input items (see the module docstring)."""
    items: list[dict[str, Any]] = []
    for message in context_to_openai(context):
        role = message["role"]
        if role == "tool":
            items.append({"type": "function_call_output", "call_id": message["tool_call_id"],
                          "output": message["content"]})
            continue
        calls = message.get("tool_calls") or []
        if message.get("content") is not None and (message["content"] or not calls):
            items.append({"type": "message", "role": role, "content": message["content"]})
        for call in calls:
            items.append({"type": "function_call", "call_id": call["id"], "name": call["function"]["name"],
                          "arguments": call["function"]["arguments"]})
    return items


def nemo_gym_row(dp: Any) -> dict[str, Any] | Skipped:
    """One NeMo Gym `single_step_tool_use_with_argument_comparison` row for `dp`, or why it is left out."""
    skipped = _unusable(dp, empty_message_ok=True)
    if skipped is not None:
        return skipped
    tools = [{"type": "function", "name": t["function"]["name"], "description": t["function"]["description"],
              "parameters": t["function"]["parameters"], "strict": False} for t in _task_tools(dp)]
    if dp.action_type == "function_call":
        calls = [{"type": "function_call", "name": c.name, "arguments": dumps(c.arguments)} for c in dp.expected_calls]
        expected = calls[0] if len(calls) == 1 else {"type": "function_call_batch", "calls": calls}
    else:
        expected = {"type": "message", "content": dp.expected_content or ""}
    return {
        "id": dp.id,
        "responses_create_params": {"input": _responses_input(dp.context), "tools": tools,
                                    "parallel_tool_calls": True},
        "expected_action": expected,
    }
