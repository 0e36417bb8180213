"""Offline baseline policies: the reward a policy earns without really reading the conversation.

Why: a reward means little until you know what a trivial policy gets. On this environment's reward (0.5 for
the right tool name alone, keyword F1 for messages) trivial policies score far above zero, and that floor is
what spots reward hacking. These are not the *human* baseline (`people/baseline.py`, campaign statistics).

Each policy is a pure function of the decision point's context (`messages[:i]`) and offered tools, plus a
seed; it never calls anything outside this process. One sentence each (the README says the same):

- `always-message`: sends the fixed polite reply `POLITE_REPLY` as a message, whatever the conversation.
- `first-tool`: calls the first task tool (in the order the task lists them) with empty arguments, or sends
  the polite reply when the task has no tool of its own.
- `keyword-router`: calls the task tool whose name and description share the most keywords with the last
  user message (ties broken by the seed), its arguments filled from values in the conversation whose keys
  match the tool's parameter names; when no tool shares a keyword, it sends a message made of the last user
  message's keywords (the polite reply when there are none).
- `copy-last-call`: repeats the most recent tool call in the conversation (name and arguments as recorded),
  or sends the polite reply when the conversation has none.

The keyword-router, precisely:
- keywords are the keyword grader's (`keyword_grader.keywords`: lower-cased `\\w+` tokens minus English
  stopwords and one-character tokens); a tool's are those of its name split into words (at `_`, `-`, `.`,
  spaces and lower-to-upper case changes: `getOrder_status` -> get order status) and of its description;
- the last user message is the last context message with role `user` (none: no keywords);
- the score of a tool is the number of keywords it shares with that message; the highest score wins; tools
  tied on it are drawn from with `random.Random(f"{seed}:{decision point id}")`, so a seed gives the same
  choice every time, whatever order or process the decision points are answered in;
- arguments: for each property of the tool's parameter schema, the value of the *same key* found in the
  conversation, keys compared case-insensitively with everything but letters and digits removed
  (`user_id` = `userId` = `USER-ID`). The values come from (a) the arguments of earlier tool calls, (b) tool
  results that are a JSON object (or a string holding one), at any depth, and (c) `key: value` and
  `key=value` in user messages (the key one word, the value a quoted string or one word, trailing punctuation
  dropped; turned into an integer, a number or a boolean when the property's schema says so and the text is
  exactly one). The most recent message holding the key wins; within one message, the shallowest occurrence,
  then the first in document order. Properties with no value are left out. The system prompt and assistant
  text are not read.

Nothing here raises for odd data: every policy returns an `Action` (`actions.parse_action` accepts its
`to_json()`) and a note saying why it chose it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..base.config import SUBMIT_MESSAGE
from ..base.errors import NemoError
from ..data.jsontext import loads_json
from ..data.records import ToolSet, content_text, parse_tool_calls
from ..grading.actions import Action, ActionError
from ..grading.keyword_grader import keywords, keywords_in_order

PREFIX = "baseline:"
POLITE_REPLY = "Thank you for your message! I am happy to help you with that."

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[_\-.\s]+")
# `key: value` / `key=value` in user text: a one-word key, then a quoted value or one word.
_PAIR = re.compile(r"""(?<![\w-])([A-Za-z_][\w-]*)\s*[:=]\s*(?:"([^"\n]*)"|'([^'\n]*)'|([^\s,;"']+))""")
_TRAILING = ".!?)]}"
_INTEGER = re.compile(r"[-+]?\d+")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """What a policy sees: the context messages, the task's tools (normalised), the seed and the id (which,
    with the seed, keys any random choice)."""

    context: list[dict[str, Any]]
    toolset: ToolSet
    seed: int = 0
    dp_id: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy's action and a one-line note saying why (shown in the Try panel, stored with a prediction)."""

    action: Action
    note: str


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    description: str  # the one sentence the README and the Try panel show
    decide: Callable[[PolicyInput], Decision]


class UnknownPolicy(NemoError):
    """A `baseline:NAME` that names no policy."""


# ---- helpers -----------------------------------------------------------------------------------------------
def _polite(why: str) -> Decision:
    return Decision(Action.message(POLITE_REPLY), f"{why}: the polite reply")


def _task_tools(toolset: ToolSet) -> list[dict[str, Any]]:
    return [t for t in toolset.task_tools if t["function"]["name"] != SUBMIT_MESSAGE]


def identifier_words(name: str) -> str:
    """`getOrder_status` -> `get Order status`: a tool name as words the keyword tokenizer can split."""
    return _SEPARATORS.sub(" ", _CAMEL.sub(" ", name)).strip()


def tool_keywords(tool: dict[str, Any]) -> set[str]:
    fn = tool["function"]
    description = fn.get("description") if isinstance(fn.get("description"), str) else ""
    return keywords(identifier_words(fn["name"]) + " " + description)


def last_user_text(context: list[dict[str, Any]]) -> str:
    for msg in reversed(context):
        if msg.get("role") == "user":
            return content_text(msg.get("content"))
    return ""


def normalise_key(key: str) -> str:
    """Keys compare with case and everything but letters and digits ignored: `user_id` = `userId`."""
    return "".join(ch for ch in key.casefold() if ch.isalnum())


def _json_object(content: Any) -> dict | None:
    """A tool result as a JSON object: an object, or a string holding one (leading whitespace allowed)."""
    if isinstance(content, dict):
        return content
    if isinstance(content, str) and content.lstrip().startswith("{"):
        try:
            value = loads_json(content.strip())
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    return None


def _object_pairs(obj: dict) -> dict[str, Any]:
    """normalised key -> value over every object inside `obj` (arrays included), the shallowest occurrence of a
    key first, then the first in document order (breadth-first)."""
    found: dict[str, Any] = {}
    level: list[Any] = [obj]
    while level:
        below: list[Any] = []
        for value in level:
            if isinstance(value, dict):
                for key, inner in value.items():
                    norm = normalise_key(str(key))
                    if norm and norm not in found:
                        found[norm] = inner
                    if isinstance(inner, (dict, list)):
                        below.append(inner)
            elif isinstance(value, list):
                below.extend(v for v in value if isinstance(v, (dict, list)))
        level = below
    return found


def _text_pairs(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _PAIR.finditer(text):
        key, double, single, bare = match.groups()
        value = double if double is not None else single if single is not None else bare.rstrip(_TRAILING)
        norm = normalise_key(key)
        if norm and value and norm not in found:
            found[norm] = value
    return found


@dataclass(frozen=True, slots=True)
class Found:
    """A value found in the conversation for a key, and where (for the note)."""

    value: Any
    source: str  # "call arguments" | "tool result" | "user text"
    message: int


def conversation_values(context: list[dict[str, Any]]) -> dict[str, Found]:
    """normalised key -> the value the keyword-router would use (the most recent message holding the key wins;
    see the module docstring for the three sources)."""
    found: dict[str, Found] = {}
    for i, msg in enumerate(context):
        role = msg.get("role")
        pairs: dict[str, Any] = {}
        source = ""
        if role == "assistant":
            source = "call arguments"
            for call in parse_tool_calls(msg.get("tool_calls")):
                if call.arguments is not None:
                    for key, value in _object_pairs(call.arguments).items():
                        pairs.setdefault(key, value)
        elif role == "tool":
            source = "tool result"
            obj = _json_object(msg.get("content"))
            if obj is not None:
                pairs = _object_pairs(obj)
        elif role == "user":
            source = "user text"
            pairs = _text_pairs(content_text(msg.get("content")))
        for key, value in pairs.items():
            found[key] = Found(value, source, i)
    return found


def _coerce(value: Any, schema: Any) -> Any:
    """A value read from user text, as the property's schema type when the text is exactly one."""
    if not isinstance(value, str) or not isinstance(schema, dict):
        return value
    kind = schema.get("type")
    text = value.strip()
    if kind == "integer" and _INTEGER.fullmatch(text):
        return int(text)
    if kind == "number" and _NUMBER.fullmatch(text):
        return int(text) if _INTEGER.fullmatch(text) else float(text)
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return value


def fill_arguments(schema: Any, values: dict[str, Found]) -> tuple[dict[str, Any], list[str]]:
    """The arguments for a parameter schema from the conversation's values, and a note per filled key."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return {}, []
    args: dict[str, Any] = {}
    notes = []
    for name, prop in props.items():
        hit = values.get(normalise_key(str(name)))
        if hit is None:
            continue
        args[name] = _coerce(hit.value, prop) if hit.source == "user text" else hit.value
        notes.append(f"{name} from the {hit.source} of message {hit.message}")
    return args, notes


# ---- the policies ----------------------------------------------------------------------------------------
def always_message(inp: PolicyInput) -> Decision:
    return Decision(Action.message(POLITE_REPLY), "always-message: the polite reply")


def first_tool(inp: PolicyInput) -> Decision:
    tools = _task_tools(inp.toolset)
    if not tools:
        return _polite("first-tool: the task offers no tool of its own")
    name = tools[0]["function"]["name"]
    return Decision(Action.call(name, {}), f"first-tool: {name}, the first of {len(tools)} task tools, "
                                           "with empty arguments")


def keyword_router(inp: PolicyInput) -> Decision:
    text = last_user_text(inp.context)
    user = keywords(text)
    tools = _task_tools(inp.toolset)
    scored = [(len(tool_keywords(t) & user), t) for t in tools]
    best = max((s for s, _ in scored), default=0)
    if best == 0:
        ordered = keywords_in_order(text)
        if not ordered:
            return _polite("keyword-router: the last user message has no keywords")
        why = "no task tool shares a keyword with the last user message" if tools else "the task offers no tool"
        return Decision(Action.message(" ".join(ordered)), f"keyword-router: {why}: a message of its "
                                                           f"{len(ordered)} keywords")
    tied = [t for s, t in scored if s == best]
    tool = tied[0] if len(tied) == 1 else random.Random(f"{inp.seed}:{inp.dp_id}").choice(tied)
    name = tool["function"]["name"]
    args, filled = fill_arguments(tool["function"].get("parameters"), conversation_values(inp.context))
    shared = sorted(tool_keywords(tool) & user)
    note = f"keyword-router: {name} shares {best} keyword{'s' if best != 1 else ''} ({', '.join(shared[:8])}) " \
           "with the last user message"
    if len(tied) > 1:
        note += f", tied with {len(tied) - 1} other{'s' if len(tied) > 2 else ''} (drawn with seed {inp.seed})"
    note += "; arguments: " + ("; ".join(filled) if filled else "none found in the conversation")
    return Decision(Action.call(name, args), note)


def copy_last_call(inp: PolicyInput) -> Decision:
    for i in range(len(inp.context) - 1, -1, -1):
        msg = inp.context[i]
        if msg.get("role") != "assistant":
            continue
        calls = [c for c in parse_tool_calls(msg.get("tool_calls")) if c.name]
        if not calls:
            continue
        call = calls[-1]
        try:
            action = Action.call(call.name, call.arguments_raw)
        except ActionError:  # a recorded call of submit_message without a string message: nothing to repeat
            break
        return Decision(action, f"copy-last-call: {call.name}, the most recent call (message {i})")
    return _polite("copy-last-call: no earlier tool call in the conversation")


POLICIES: dict[str, Policy] = {p.name: p for p in (
    Policy("always-message", "sends a fixed polite reply as a message, whatever the conversation", always_message),
    Policy("first-tool", "calls the first task tool with empty arguments (the polite reply when the task has none)",
           first_tool),
    Policy("keyword-router", "calls the tool whose name and description share most keywords with the last user "
           "message, arguments filled from same-named keys in the conversation; else a message of the user's "
           "keywords", keyword_router),
    Policy("copy-last-call", "repeats the most recent tool call of the conversation (the polite reply when there "
           "is none)", copy_last_call),
)}


def is_baseline(model: str | None) -> bool:
    """Whether a model name names a baseline policy (`baseline:NAME`)."""
    return bool(model) and model.strip().startswith(PREFIX)


def get_policy(model_or_name: str) -> Policy:
    """The policy of `baseline:NAME` (or `NAME`); `UnknownPolicy` naming the ones there are otherwise."""
    name = model_or_name.strip()
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if name not in POLICIES:
        raise UnknownPolicy(f"unknown baseline {name!r}",
                            "one of " + ", ".join(f"{PREFIX}{n}" for n in POLICIES))
    return POLICIES[name]


def decide(policy: str, context: list[dict[str, Any]], toolset: ToolSet, *, seed: int = 0, dp_id: str = "") -> Decision:
    """The action of `policy` (a name, with or without `baseline:`) for this context and these tools."""
    return get_policy(policy).decide(PolicyInput(context, toolset, seed, dp_id))
