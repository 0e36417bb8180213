"""Grading one action at one decision point: the one result type (`Breakdown`) every page and command uses.

`grade_action(store, dp, action)` applies SPEC §4: wrong action type -> 0.0; function calls by `reward.py`;
messages by the LLM grader (when configured) or the keyword grader. Every breakdown records the rule
version, the grader and the grader model, so an old score stays explainable after the rules move on.

`load_targets` is the fast path for grading many predictions: it reads the rows of a batch of ids in one
query and decompresses each conversation and each tool list once, instead of one `store.get` per line.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..base.config import SUBMIT_MESSAGE
from ..base.errors import NemoError, UnknownDecisionPoint
from ..data.compression import decompress_json
from ..data.extract import FLAGS
from ..data.grading_view import read_views
from ..data.records import ToolCall, ToolSet, content_text, normalise_tool, normalise_tools, parse_tool_calls
from ..data.store import Store
from .actions import Action, parse_action
from .keyword_grader import keyword_score
from .endpoint import EndpointConfig
from .llm_grader import LLMGrader, LLMGradeFailed, LLMNotConfigured
from .reward import UNGRADEABLE_REFERENCE, WRONG_ACTION_TYPE, KeyResult, score_function_call

RULE_VERSION = "2025-11-spec-v1"
GRADERS = ("auto", "keyword", "llm")
FUNCTION_CALL_GRADER = "function_call"


class GraderChoiceError(NemoError):
    """An unknown grader name."""

    hint = "choose auto, keyword or llm"


@dataclass(slots=True, kw_only=True)
class Breakdown:
    """A grade and everything needed to understand it.

    `reward` is None when the decision point could not be graded (`ungradeable_reference`, or an action
    that was rejected): never a silent 0. `name_match` and `arg_match` are None on message tasks.
    Built through the named constructors below (one per way a grade comes about), or `from_json`; every field is
    keyword-only, so a breakdown is never built by position.
    """

    reward: float | None
    action_type_match: int | None
    name_match: int | None
    arg_match: float | None
    grader: str
    grader_model: str | None
    reason: str
    rule_version: str = RULE_VERSION
    keys: list[KeyResult] = field(default_factory=list)
    matched_call: int | None = None
    notes: list[str] = field(default_factory=list)
    expected_type: str | None = None
    submitted_type: str | None = None
    expected_name: str | None = None
    submitted_name: str | None = None
    schema_valid: bool | None = None
    schema_errors: list[str] = field(default_factory=list)
    keyword: dict[str, Any] | None = None
    llm_score: int | None = None
    llm_reason: str | None = None
    llm_error: str | None = None
    llm_cached: bool | None = None

    # ---- the ways a grade comes about -------------------------------------------------------------------
    @classmethod
    def not_graded(cls, reason: str, *, expected_type: str | None = None, notes: list[str] | None = None) -> "Breakdown":
        """Something that could not be graded at all (reward None), with the reason."""
        return cls(reward=None, action_type_match=None, name_match=None, arg_match=None, grader="none",
                   grader_model=None, reason=reason, expected_type=expected_type, notes=list(notes or []))

    @classmethod
    def ungradeable_reference(cls, *, expected_type: str, submitted_type: str, submitted_name: str | None,
                              notes: list[str]) -> "Breakdown":
        """SPEC §4: a decision point flagged ungradeable gets reward None, whatever was submitted."""
        return cls(reward=None, action_type_match=int(submitted_type == expected_type), name_match=None,
                   arg_match=None, grader=FUNCTION_CALL_GRADER, grader_model=None, reason=UNGRADEABLE_REFERENCE,
                   notes=notes, expected_type=expected_type, submitted_type=submitted_type,
                   submitted_name=submitted_name)

    @classmethod
    def wrong_action_type(cls, *, expected_type: str, submitted_type: str, expected_name: str | None,
                          submitted_name: str | None, notes: list[str]) -> "Breakdown":
        """A call where a message was expected, or the reverse: 0.0 (on a call task, name and arguments 0 too)."""
        message_task = expected_type == "message"
        return cls(reward=0.0, action_type_match=0, name_match=None if message_task else 0,
                   arg_match=None if message_task else 0.0, grader="rule", grader_model=None,
                   reason=WRONG_ACTION_TYPE, notes=notes, expected_type=expected_type, submitted_type=submitted_type,
                   expected_name=expected_name, submitted_name=submitted_name)

    @classmethod
    def graded_call(cls, *, reward: float | None, name_match: int | None, arg_match: float | None, reason: str,
                    keys: list[KeyResult] | None = None, matched_call: int | None = None,
                    notes: list[str] | None = None, expected_name: str | None = None,
                    submitted_name: str | None = None, schema_valid: bool | None = None,
                    schema_errors: list[str] | None = None) -> "Breakdown":
        """A call graded against the expected call(s) (`reward.score_function_call`)."""
        return cls(reward=reward, action_type_match=1 if reward is not None else None, name_match=name_match,
                   arg_match=arg_match, grader=FUNCTION_CALL_GRADER, grader_model=None, reason=reason,
                   keys=list(keys or []), matched_call=matched_call, notes=list(notes or []),
                   expected_type="function_call", submitted_type="function_call", expected_name=expected_name,
                   submitted_name=submitted_name, schema_valid=schema_valid, schema_errors=list(schema_errors or []))

    @classmethod
    def graded_by_llm(cls, *, score: int, reason: str | None, model: str | None, cached: bool | None = None,
                      notes: list[str] | None = None) -> "Breakdown":
        """A message graded by the LLM grader: its integer 0-10 score / 10."""
        return cls(reward=score / 10, action_type_match=1, name_match=None, arg_match=None, grader="llm",
                   grader_model=model, reason=f"llm: {reason or ''}", notes=list(notes or []),
                   expected_type="message", submitted_type="message", llm_score=score, llm_reason=reason,
                   llm_cached=cached)

    @classmethod
    def graded_by_keyword(cls, *, score: float, reason: str, detail: dict[str, Any] | None = None,
                          notes: list[str] | None = None, llm_error: str | None = None) -> "Breakdown":
        """A message graded by the keyword grader (`detail`: its `KeywordScore.to_json()`), perhaps after the
        LLM grader failed (`llm_error`)."""
        return cls(reward=score, action_type_match=1, name_match=None, arg_match=None, grader="keyword",
                   grader_model=None, reason=reason, notes=list(notes or []), expected_type="message",
                   submitted_type="message", keyword=detail, llm_error=llm_error)

    def to_json(self, dp_id: str | None = None) -> dict[str, Any]:
        """The result line of `grade` (issue 3): the listed keys (always present), `grader_model` and
        `rule_version`, then the details that apply (empty ones are left out; `from_json` restores them)."""
        out: dict[str, Any] = {} if dp_id is None else {"id": dp_id}
        out.update(
            reward=self.reward,
            action_type_match=self.action_type_match,
            name_match=self.name_match,
            arg_match=self.arg_match,
            grader=self.grader,
            reason=self.reason,
            keys=[k.to_json() for k in self.keys],
            grader_model=self.grader_model,
            rule_version=self.rule_version,
        )
        for name in _DETAIL_FIELDS:
            value = getattr(self, name)
            if value is not None and value != []:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Breakdown":
        """Back from `to_json` (stored breakdowns are read with this)."""
        names = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in names and k != "keys"}
        kwargs.setdefault("grader", "")
        kwargs.setdefault("grader_model", None)
        kwargs.setdefault("reason", "")
        for k in ("reward", "action_type_match", "name_match", "arg_match"):
            kwargs.setdefault(k, None)
        keys = [KeyResult(**{f: k.get(f) for f in ("key", "status", "expected", "submitted", "hint")})
                for k in data.get("keys") or []]
        return cls(keys=keys, **kwargs)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_DETAIL_FIELDS = (
    "matched_call", "notes", "expected_type", "submitted_type", "expected_name", "submitted_name", "schema_valid",
    "schema_errors", "keyword", "llm_score", "llm_reason", "llm_error", "llm_cached",
)


# ---- what grading needs from a decision point -------------------------------------------------------------
class Gradeable(Protocol):
    id: str
    split: str
    action_type: str
    expected_calls: list[ToolCall]
    expected_content: str | None
    toolset: ToolSet
    context: list[dict[str, Any]] | None

    @property
    def gradeable(self) -> bool: ...


@dataclass(slots=True)
class GradingTarget:
    """The parts of a decision point grading reads; `DecisionPoint` has the same attributes."""

    id: str
    split: str
    action_type: str
    flags: list[str]
    expected_calls: list[ToolCall]
    expected_content: str | None
    toolset: ToolSet
    context: list[dict[str, Any]] | None  # None when loaded without it (`TargetLoader(with_context=False)`)
    ungradeable_reason: str | None = None

    @property
    def gradeable(self) -> bool:
        return "ungradeable" not in self.flags


class LazyToolSet:
    """A conversation's tools, normalised only for the names asked about.

    Grading needs one schema per prediction; normalising every tool of every conversation (a deep copy
    each) cost more than the grading itself. Same rules as `records.normalise_tools`: the first valid
    definition of a name wins and `submit_message` is never a task tool. Anything else a `ToolSet` offers
    is computed in full on first use."""

    def __init__(self, raw_tools: Any):
        self.raw = raw_tools if isinstance(raw_tools, list) else []
        self._schemas: dict[str, dict | None] = {}
        self._full: ToolSet | None = None

    def schema_of(self, name: str) -> dict | None:
        if name in self._schemas:
            return self._schemas[name]
        schema = None
        if name != SUBMIT_MESSAGE:
            for index, raw in enumerate(self.raw):
                if not isinstance(raw, dict):
                    continue
                fn = raw.get("function") if isinstance(raw.get("function"), dict) else raw
                if fn.get("name") != name:
                    continue
                tool, _note = normalise_tool(raw, index)
                if tool is not None:
                    schema = tool["function"]["parameters"]
                    break
        self._schemas[name] = schema
        return schema

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        if self._full is None:
            self._full = normalise_tools(self.raw)
        return getattr(self._full, attr)


class TargetLoader:
    """Loads grading targets for batches of ids with few queries and bounded caches.

    Each conversation is read once per batch (and kept in a small LRU cache across batches, which is what
    makes a prediction file sorted by id cheap). With `with_context=False` (the keyword grader, which reads
    only the expected turn and the tools) it reads the conversation's grading view (`grading_view.py`),
    about a fifth of the bytes to decompress and parse, and the whole conversation only where a database
    from before views has none; targets then have `context=None`."""

    def __init__(self, store: Store, conversation_cache: int = 4096, *, with_context: bool = True):
        self.store = store
        self._flags = list(FLAGS)
        # conversation id -> (messages or None, {turn: (raw tool_calls, raw content)} or None, tools)
        self._conversations: OrderedDict[int, tuple[list[dict] | None, dict | None, LazyToolSet]] = OrderedDict()
        self._conv_max = conversation_cache
        self._with_context = with_context
        self.n_from_conversations = 0  # conversations read whole although a view was wanted (no view stored)

    def _read_conversations(self, conv_ids: list[int]) -> None:
        if not self._with_context:
            for conv_id, (tools, turns) in read_views(self.store, conv_ids).items():
                self._conversations[conv_id] = (None, turns, LazyToolSet(tools))
            conv_ids = [c for c in conv_ids if c not in self._conversations]
            self.n_from_conversations += len(conv_ids)
        for conv_id, body in self.store.fetch_in("SELECT id, body FROM conversations WHERE id IN ({marks})", conv_ids):
            raw = decompress_json(body)
            self._conversations[conv_id] = (raw["messages"], None, LazyToolSet(raw.get("tools")))

    def load(self, ids: list[str]) -> dict[str, GradingTarget]:
        """Targets for the ids that exist (unknown ids are simply absent from the result)."""
        flag_cols = ", ".join(f"flag_{n}" for n in self._flags)
        unique = list(dict.fromkeys(i for i in ids if isinstance(i, str)))
        rows = self.store.fetch_in(
            f"SELECT id, split, action_type, turn_index, conversation_id, ungradeable_reason, {flag_cols} "
            "FROM decision_points WHERE id IN ({marks})", unique)
        self._read_conversations(sorted({r[4] for r in rows if r[4] not in self._conversations}))
        out: dict[str, GradingTarget] = {}
        for row in rows:
            dp_id, split, action_type, turn_index, conv_id, ungradeable_reason = row[:6]
            flags = [name for name, v in zip(self._flags, row[6:]) if v]
            messages, turns, toolset = self._conversations[conv_id]
            self._conversations.move_to_end(conv_id)
            if turns is not None:
                raw_calls, raw_content = turns[turn_index]
            else:
                msg = messages[turn_index]  # type: ignore[index]
                raw_calls, raw_content = msg.get("tool_calls"), msg.get("content")
            calls = parse_tool_calls(raw_calls)
            out[dp_id] = GradingTarget(
                id=dp_id, split=split, action_type=action_type, flags=flags, expected_calls=calls,
                expected_content=None if calls else content_text(raw_content), toolset=toolset,
                context=messages[:turn_index] if self._with_context else None,  # type: ignore[index]
                ungradeable_reason=ungradeable_reason,
            )
        while len(self._conversations) > self._conv_max:
            self._conversations.popitem(last=False)
        return out


def load_target(store: Store, dp_id: str) -> GradingTarget:
    """One target (raises `UnknownDecisionPoint` like `store.get`)."""
    found = TargetLoader(store, 4).load([dp_id])
    if dp_id not in found:
        store.decision_point_row(dp_id)  # raises with the usual message and hint
        raise UnknownDecisionPoint(f"no decision point {dp_id!r}")
    return found[dp_id]


# ---- choosing the grader -----------------------------------------------------------------------------------
def resolve_grader(grader: str = "auto", config: EndpointConfig | None = None) -> str:
    """`auto` -> `llm` when a key is configured, else `keyword`; `llm` without a key is an error."""
    if grader not in GRADERS:
        raise GraderChoiceError(f"unknown grader {grader!r}")
    configured = config is not None and config.configured
    if grader == "auto":
        return "llm" if configured else "keyword"
    if grader == "llm" and not configured:
        raise LLMNotConfigured("--grader llm needs an OpenAI API key and none is configured")
    return grader


# ---- grading -----------------------------------------------------------------------------------------------
def grade_action(store: Store | None, dp: Gradeable, action: Action | dict | str, grader: str = "auto",
                 llm: LLMGrader | EndpointConfig | None = None) -> Breakdown:
    """Grade one action at one decision point (SPEC §4).

    `action` in any accepted form (`ActionError` otherwise). `grader` decides message tasks: `auto`
    uses the LLM when `llm` is configured, else the keyword grader. `llm` is a ready `LLMGrader`
    (sharing its client and cache) or an `EndpointConfig`; `store` holds the LLM cache (None: no cache).
    """
    act = parse_action(action)
    config = llm.config if isinstance(llm, LLMGrader) else llm
    chosen = resolve_grader(grader, config)
    notes = [f"{act.ignored_calls} extra tool call{'s' if act.ignored_calls != 1 else ''} ignored "
             "(an assistant message is graded on its first call)"] if act.ignored_calls else []
    expected_type = dp.action_type
    if not dp.gradeable:  # SPEC §4: whatever was submitted, a flagged decision point is not graded
        why = getattr(dp, "ungradeable_reason", None) or "the expected call's arguments are not an object"
        return Breakdown.ungradeable_reference(expected_type=expected_type, submitted_type=act.type,
                                               submitted_name=act.name,
                                               notes=notes + [f"the reference cannot be graded: {why}"])
    if act.type != expected_type:
        return Breakdown.wrong_action_type(
            expected_type=expected_type, submitted_type=act.type,
            expected_name=dp.expected_calls[0].name if dp.expected_calls else None, submitted_name=act.name,
            notes=notes + [f"expected a {expected_type.replace('_', ' ')}, got a {act.type.replace('_', ' ')}"])
    if expected_type == "function_call":
        score = score_function_call(dp.expected_calls, act.name or "", act.arguments, act.arguments_error, dp.toolset)
        return Breakdown.graded_call(
            reward=score.reward, name_match=score.name_match, arg_match=score.arg_match, reason=score.reason,
            keys=score.keys, matched_call=score.matched_call, notes=notes + score.notes,
            expected_name=score.expected_name, submitted_name=act.name, schema_valid=score.schema_valid,
            schema_errors=score.schema_errors)
    return _grade_message(store, dp, act.content or "", chosen, llm, notes)


def _grade_message(store: Store | None, dp: Gradeable, candidate: str, chosen: str,
                   llm: LLMGrader | EndpointConfig | None, notes: list[str]) -> Breakdown:
    reference = dp.expected_content or ""
    llm_error = None
    if chosen == "llm":
        grader = llm if isinstance(llm, LLMGrader) else LLMGrader(llm, store)  # type: ignore[arg-type]
        if dp.context is None:
            raise ValueError(f"{dp.id}: the LLM grader needs the conversation; load it with with_context=True")
        try:
            result = grader.grade(dp.id, dp.context, reference, candidate)
        except LLMGradeFailed as exc:
            llm_error = grader.redact(str(exc))
        else:
            return Breakdown.graded_by_llm(score=result.score, reason=result.reason, model=result.model,
                                 cached=result.cached, notes=notes)
    kw = keyword_score(reference, candidate)
    reason = kw.reason
    if llm_error:
        reason = f"llm_fallback: {llm_error}; {reason}"
        notes = notes + [f"the LLM grader failed ({llm_error}); the keyword grader answered"]
    return Breakdown.graded_by_keyword(score=kw.score, reason=reason, detail=kw.to_json(), notes=notes, llm_error=llm_error)
