"""A decision point's context as the SDK's role-tagged messages, and its tools as the SDK's tool specs.

The messages are built from the exact OpenAI request the workbench sends a model (`request.context_to_openai`:
call ids, placeholders for unanswered calls, unlinked tool replies, reasoning left out), re-shaped into the
SDK's blocks under its placement rules (Anthropic semantics, `openreward.environments.types`):

- system and user messages: one text block each (an empty `tool_calling` system prompt stays an empty text);
- an assistant message: its text (when it has any), then one `tool_call` block per call, `input` the parsed
  arguments. A call whose recorded arguments are not a JSON object cannot be a `tool_call` block (its
  `input` must be an object), so it is shown as text, `[tool_call NAME] <arguments as recorded>`, and the
  reply to it as text too (a `tool_result` must answer a `tool_call`): nothing the data holds is hidden;
- tool replies: `tool_result` blocks, which ride in *user* turns; consecutive replies share one user turn
  (in the SDK's `format="openai"` each becomes its own `tool` message again).

So `session.get_messages(format="openai")` gives back the workbench's request messages (arguments re-encoded
by the SDK), and `get_prompt()` is the SDK's flattening of these messages.

Tools: the task's tools exactly as the workbench offers them (`records.normalise_tools`: one definition per
name, the first wins, parameters given `"type": "object"` when missing, a task tool named `submit_message`
dropped because it would clash with the shared tool): same names, descriptions and JSON schemas.
"""

from __future__ import annotations

import json
from typing import Any

from openreward.environments import ListToolsOutput, Message, TextBlock, ToolCallBlock, ToolResultBlock, ToolSpec

from ..data.records import SUBMIT_MESSAGE_TOOL, ToolSet
from ..grading.request import context_to_openai


def _arguments_object(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def context_messages(context: list[dict[str, Any]]) -> list[Message]:
    """The context (`messages[:i]` of the conversation) as SDK messages (see the module docstring)."""
    out: list[Message] = []
    text_calls: dict[str, str] = {}  # id -> name of the calls shown as text (arguments not an object)
    pending_results: list[Any] = []

    def close_results() -> None:
        if pending_results:
            out.append(Message(role="user", blocks=list(pending_results)))
            pending_results.clear()

    for msg in context_to_openai(context):
        role = msg["role"]
        if role == "tool":
            call_id, text = msg["tool_call_id"], msg["content"]
            if call_id in text_calls:
                pending_results.append(TextBlock(text=f"[tool_result {text_calls[call_id]}] {text}",
                                                 detail={"type": "tool_result", "tool_call_id": call_id}))
            else:
                pending_results.append(ToolResultBlock(tool_call_id=call_id, blocks=[TextBlock(text=text)]))
            continue
        close_results()
        if role == "assistant":
            blocks: list[Any] = []
            if msg.get("content"):
                blocks.append(TextBlock(text=msg["content"]))
            for call in msg.get("tool_calls") or []:
                name, arguments = call["function"]["name"], call["function"]["arguments"]
                parsed = _arguments_object(arguments)
                if parsed is None:
                    text_calls[call["id"]] = name
                    blocks.append(TextBlock(text=f"[tool_call {name}] {arguments}",
                                            detail={"type": "tool_call", "id": call["id"],
                                                    "note": "arguments are not a JSON object"}))
                else:
                    blocks.append(ToolCallBlock(id=call["id"], name=name, input=parsed))
            out.append(Message(role="assistant", blocks=blocks or [TextBlock(text="")]))
        else:  # system, user (an unlinked tool reply is a user message already)
            out.append(Message(role=role, blocks=[TextBlock(text=msg["content"])]))
    close_results()
    return out


def task_tool_specs(toolset: ToolSet) -> list[ToolSpec]:
    """The task's tools as SDK tool specs (`submit_message`, the shared tool, is the environment's own)."""
    return [ToolSpec(name=t["function"]["name"], description=t["function"]["description"],
                     input_schema=t["function"]["parameters"]) for t in toolset.task_tools]


def task_tools_output(toolset: ToolSet) -> ListToolsOutput:
    return ListToolsOutput(tools=task_tool_specs(toolset))


SUBMIT_MESSAGE_DESCRIPTION: str = SUBMIT_MESSAGE_TOOL["function"]["description"]
SUBMIT_MESSAGE_SCHEMA: dict[str, Any] = SUBMIT_MESSAGE_TOOL["function"]["parameters"]
