"""From one validated conversation to its decision points (SPEC §2).

Every assistant message at index i is a decision point `{split}/{uuid}/{i}`; its context is messages[:i]
and its expected action is read from the message itself. This module produces the *indexed columns* the
store keeps per decision point; the full context and expected action are re-derived from the stored raw
conversation by `decision_point.py`, with the same helpers, when one is opened.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .records import ToolSet, content_text, dumps, link_tool_results, normalise_tools, parse_tool_calls

# name -> what it means; the store has one 0/1 column `flag_<name>` for each, users filter on them.
FLAGS: dict[str, str] = {
    "parallel": "the expected turn has several tool calls (graded against the best-matching one)",
    "empty_expected": "the expected message is empty or only whitespace",
    "ungradeable": "the expected call cannot be graded (its arguments are not an object or a JSON string of one)",
    "no_task_tools": "the conversation offers no task tools (only submit_message)",
    "duplicate_tool_names": "the tool list repeats a name (the first definition is offered)",
    "tool_name_clash": "a task tool is named submit_message (the shared tool is offered instead)",
    "expected_tool_not_offered": "the expected call names a tool that is not in the task's tool list",
}

DP_COLUMNS: tuple[str, ...] = (
    "id",
    "split",
    "conversation_uuid",
    "turn_index",
    "assistant_turn",
    "action_type",
    "expected_tool",
    "expected_tools",
    "n_expected_calls",
    "n_tools",
    "context_chars",
    "expected_chars",
    "preview",
    "ungradeable_reason",
    *(f"flag_{name}" for name in FLAGS),
)

PREVIEW_CHARS = 120
FTS_MAX_CHARS = 32_000
FTS_TOOL_REPLY_CHARS = 2_000  # tool replies can be huge JSON; their start is what people search for
_SPACES = re.compile(r"\s+")


def preview_text(text: str, limit: int = PREVIEW_CHARS) -> str:
    text = _SPACES.sub(" ", text[: limit * 4]).strip()  # only the start can be shown: don't scan the rest
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class ExtractedConversation:
    uuid: str
    split: str
    n_messages: int
    toolset: ToolSet
    rows: list[tuple] = field(default_factory=list)
    fts_text: str = ""
    notes: Counter = field(default_factory=Counter)


def _note_tools(toolset: ToolSet, notes: Counter) -> None:
    """What the report counts about a conversation's tool list."""
    if not toolset.task_names:
        notes["conversations without task tools"] += 1
    if toolset.duplicate_names:
        notes["conversations repeating a tool name"] += 1
    if toolset.conflicting_names:
        notes["conversations repeating a tool name with conflicting definitions"] += 1
    if toolset.odd:
        notes["odd tool definitions normalised"] += len(toolset.odd)
    if toolset.name_clash:
        notes["task tools named submit_message"] += 1


def extract_conversation(obj: dict[str, Any], split: str, *, with_fts: bool = True) -> ExtractedConversation:
    """Decision point rows (in `DP_COLUMNS` order, without the conversation key) for a validated row."""
    uuid = obj["uuid"]
    messages: list[dict] = obj["messages"]
    toolset = normalise_tools(obj.get("tools"), build=False)
    task_names = set(toolset.names)
    n_tools = len(toolset.task_names)
    out = ExtractedConversation(uuid=uuid, split=split, n_messages=len(messages), toolset=toolset)
    notes = out.notes
    _note_tools(toolset, notes)
    calls_by_message = [parse_tool_calls(m.get("tool_calls")) if m["role"] == "assistant" else None for m in messages]
    links = link_tool_results(messages, calls_by_message)
    answered = Counter(link[0] for link in links if link is not None)
    flag_base = dict.fromkeys(FLAGS, 0)
    flag_base["no_task_tools"] = int(not toolset.task_names)
    flag_base["duplicate_tool_names"] = int(bool(toolset.duplicate_names))
    flag_base["tool_name_clash"] = int(toolset.name_clash)
    fts_parts: list[str] = []
    context_chars = 0
    assistant_turn = 0
    for i, msg in enumerate(messages):
        role = msg["role"]
        text = content_text(msg.get("content"))
        calls = calls_by_message[i] or []
        # each call's arguments as text, once: for the context length, the preview and the search index
        args_texts = [c.arguments_raw if isinstance(c.arguments_raw, str) else dumps(c.arguments_raw) for c in calls]
        if role == "tool" and links[i] is None:
            notes["tool replies not linked to a call"] += 1
        if role == "assistant":
            if "reasoning_content" not in msg:
                notes["assistant messages without reasoning_content"] += 1
            flags = dict(flag_base)
            ungradeable_reason = None
            if calls:
                action_type = "function_call"
                expected_tool = calls[0].name
                flags["parallel"] = int(len(calls) > 1)
                errors = [f"call {c.position}: {c.error}" for c in calls if c.error]
                if errors:
                    flags["ungradeable"] = 1
                    ungradeable_reason = "; ".join(errors)
                    notes["ungradeable decision points"] += 1
                if any(c.name and c.name not in task_names for c in calls):
                    flags["expected_tool_not_offered"] = 1
                expected_text = " ".join(f"{c.name}({a})" for c, a in zip(calls, args_texts))
                preview = preview_text(expected_text)
                expected_chars = len(expected_text)
                expected_tools = " ".join(c.name or "" for c in calls)
                if len(calls) > 1:
                    notes["parallel turns"] += 1
                if answered[i] < len(calls):
                    notes["expected calls without a tool reply"] += len(calls) - answered[i]
            else:
                action_type = "message"
                expected_tool = None
                expected_tools = None
                preview = preview_text(text)
                expected_chars = len(text)
                if not text.strip():
                    flags["empty_expected"] = 1
                    notes["empty expected messages"] += 1
            out.rows.append((f"{split}/{uuid}/{i}", split, uuid, i, assistant_turn, action_type, expected_tool,
                             expected_tools, len(calls), n_tools, context_chars, expected_chars, preview,
                             ungradeable_reason, *flags.values()))  # `DP_COLUMNS` order
            assistant_turn += 1
        context_chars += len(text) + sum(map(len, args_texts))
        if with_fts and role != "system":
            if text:
                fts_parts.append(text if role != "tool" else text[:FTS_TOOL_REPLY_CHARS])
            fts_parts.extend(f"{c.name or ''} {a}" for c, a in zip(calls, args_texts))
    if with_fts:
        text = "\n".join(fts_parts)
        out.fts_text = text[:FTS_MAX_CHARS]
    return out
