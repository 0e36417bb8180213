"""A decision point as pages, graders and the CLI see it: context, offered tools, expected action.

Built from the stored raw conversation with the same helpers as extraction (`records.py`), so what a page
shows is what the indexed columns were computed from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .records import (SUBMIT_MESSAGE_TOOL, ToolCall, ToolSet, content_text, link_tool_results, normalise_tools,
                      parse_tool_calls)


@dataclass
class DecisionPoint:
    id: str
    split: str
    conversation_uuid: str
    turn_index: int
    assistant_turn: int
    action_type: str
    flags: list[str]
    ungradeable_reason: str | None
    context: list[dict[str, Any]]
    toolset: ToolSet
    expected_calls: list[ToolCall] = field(default_factory=list)
    expected_content: str | None = None
    expected_reasoning: str | None = None
    raw_tools: list[Any] = field(default_factory=list)
    n_messages: int = 0
    source_file: str | None = None
    source_line: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, row: dict[str, Any], conv: dict[str, Any], toolset: ToolSet | None = None) -> "DecisionPoint":
        """`toolset`: the conversation's `normalise_tools(raw["tools"])` when the caller already has it (an
        export builds it once per conversation, not once per decision point)."""
        raw = conv["raw"]
        messages = raw["messages"]
        i = row["turn_index"]
        msg = messages[i]
        calls = parse_tool_calls(msg.get("tool_calls"))
        extra = {k: v for k, v in raw.items() if k not in ("uuid", "messages", "tools")}
        return cls(
            id=row["id"],
            split=row["split"],
            conversation_uuid=row["conversation_uuid"],
            turn_index=i,
            assistant_turn=row["assistant_turn"],
            action_type=row["action_type"],
            flags=row["flags"],
            ungradeable_reason=row.get("ungradeable_reason"),
            context=messages[:i],
            toolset=toolset if toolset is not None else normalise_tools(raw.get("tools")),
            expected_calls=calls,
            expected_content=None if calls else content_text(msg.get("content")),
            expected_reasoning=msg.get("reasoning_content") if isinstance(msg.get("reasoning_content"), str) else None,
            raw_tools=raw.get("tools") or [],
            n_messages=len(messages),
            source_file=conv.get("source_file"),
            source_line=conv.get("source_line"),
            extra=extra,
        )

    @property
    def gradeable(self) -> bool:
        return "ungradeable" not in self.flags

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools offered: the task's (normalised, one per name) plus `submit_message`."""
        return self.toolset.offered()

    def expected(self) -> dict[str, Any]:
        if self.action_type == "function_call":
            return {"type": "function_call", "calls": [c.as_expected() for c in self.expected_calls]}
        return {"type": "message", "content": self.expected_content or ""}

    def context_links(self) -> list[tuple[int, int] | None]:
        """For each context message, the (assistant index, call position) a tool reply answers."""
        return link_tool_results(self.context)

    def to_json(self) -> dict[str, Any]:
        """The public JSON (`show --json`): exactly these keys."""
        return {
            "id": self.id,
            "split": self.split,
            "conversation_uuid": self.conversation_uuid,
            "turn_index": self.turn_index,
            "action_type": self.action_type,
            "flags": list(self.flags),
            "context": self.context,
            "tools": self.tools,
            "expected": self.expected(),
        }


__all__ = ["DecisionPoint", "SUBMIT_MESSAGE_TOOL"]
