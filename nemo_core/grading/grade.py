"""Grading one action at one decision point: the one result type (`Breakdown`) every page and command uses.

`grade_action(store, dp, action)` applies SPEC §4: wrong action type -> 0.0; function calls by `reward.py`;
messages by the LLM grader (when configured) or the keyword grader. Every breakdown records the rule
version, the grader and the grader model, so an old score stays explainable after the rules move on.

`load_targets` is the fast path for grading many predictions: it reads the rows of a batch of ids in one
query and decompresses each conversation and each tool list once, instead of one `store.get` per line.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson

from .actions import Action, ActionError, parse_action
from .answer_formats import parse_answer, prediction_object, problem_text
from ..base.errors import NemoError
from .keyword_grader import keyword_score
from .llm_grader import LLMConfig, LLMGrader, LLMGradeFailed, LLMNotConfigured
from ..base.config import SUBMIT_MESSAGE
from ..data.records import (JSONLimitError, ToolCall, ToolSet, check_depth, content_text, dumps_bytes,
                            loads_json_counted, normalise_tool, normalise_tools, parse_tool_calls)
from ..runs.run import PREDICTION_COLUMNS, prediction_row
from .reward import UNGRADEABLE_REFERENCE, WRONG_ACTION_TYPE, KeyResult, score_function_call
from ..data.compression import decompress_json
from ..data.store import Store
from ..runs.taxonomy import classification_fields, classify, needs_tool_names

RULE_VERSION = "2025-11-spec-v1"
GRADERS = ("auto", "keyword", "llm")
FUNCTION_CALL_GRADER = "function_call"


class GraderChoiceError(NemoError):
    """An unknown grader name."""

    hint = "choose auto, keyword or llm"


@dataclass(slots=True)
class Breakdown:
    """A grade and everything needed to understand it.

    `reward` is None when the decision point could not be graded (`ungradeable_reference`, or an action
    that was rejected): never a silent 0. `name_match` and `arg_match` are None on message tasks.
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


def not_graded(reason: str, *, expected_type: str | None = None, note: str | None = None) -> Breakdown:
    """A breakdown for something that could not be graded (reward None), with the reason."""
    return Breakdown(None, None, None, None, "none", None, reason, expected_type=expected_type,
                     notes=[note] if note else [])


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
        from ..data.extract import FLAGS

        self.store = store
        self._flags = list(FLAGS)
        # conversation id -> (messages or None, {turn: (raw tool_calls, raw content)} or None, tools)
        self._conversations: OrderedDict[int, tuple[list[dict] | None, dict | None, LazyToolSet]] = OrderedDict()
        self._conv_max = conversation_cache
        self._with_context = with_context
        self.n_from_conversations = 0  # conversations read whole although a view was wanted (no view stored)

    def _read_conversations(self, conv_ids: list[int]) -> None:
        from ..data.grading_view import read_views

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
    from ..base.errors import UnknownDecisionPoint

    found = TargetLoader(store, 4).load([dp_id])
    if dp_id not in found:
        store.decision_point_row(dp_id)  # raises with the usual message and hint
        raise UnknownDecisionPoint(f"no decision point {dp_id!r}")
    return found[dp_id]


# ---- choosing the grader -----------------------------------------------------------------------------------
def resolve_grader(grader: str = "auto", config: LLMConfig | None = None) -> str:
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
                 llm: LLMGrader | LLMConfig | None = None) -> Breakdown:
    """Grade one action at one decision point (SPEC §4).

    `action` in any accepted form (`ActionError` otherwise). `grader` decides message tasks: `auto`
    uses the LLM when `llm` is configured, else the keyword grader. `llm` is a ready `LLMGrader`
    (sharing its client and cache) or an `LLMConfig`; `store` holds the LLM cache (None: no cache).
    """
    act = parse_action(action)
    config = llm.config if isinstance(llm, LLMGrader) else llm
    chosen = resolve_grader(grader, config)
    notes = [f"{act.ignored_calls} extra tool call{'s' if act.ignored_calls != 1 else ''} ignored "
             "(an assistant message is graded on its first call)"] if act.ignored_calls else []
    expected_type = dp.action_type
    if not dp.gradeable:  # SPEC §4: whatever was submitted, a flagged decision point is not graded
        why = getattr(dp, "ungradeable_reason", None) or "the expected call's arguments are not an object"
        return Breakdown(None, int(act.type == expected_type), None, None, FUNCTION_CALL_GRADER, None,
                         UNGRADEABLE_REFERENCE, notes=notes + [f"the reference cannot be graded: {why}"],
                         expected_type=expected_type, submitted_type=act.type, submitted_name=act.name)
    if act.type != expected_type:
        is_message_task = expected_type == "message"
        return Breakdown(
            0.0, 0, None if is_message_task else 0, None if is_message_task else 0.0,
            "rule", None, WRONG_ACTION_TYPE,
            notes=notes + [f"expected a {expected_type.replace('_', ' ')}, got a {act.type.replace('_', ' ')}"],
            expected_type=expected_type, submitted_type=act.type,
            expected_name=dp.expected_calls[0].name if dp.expected_calls else None, submitted_name=act.name,
        )
    if expected_type == "function_call":
        score = score_function_call(dp.expected_calls, act.name or "", act.arguments, act.arguments_error, dp.toolset)
        return Breakdown(
            score.reward, 1 if score.reward is not None else None, score.name_match, score.arg_match,
            FUNCTION_CALL_GRADER, None, score.reason, keys=score.keys, matched_call=score.matched_call,
            notes=notes + score.notes, expected_type=expected_type, submitted_type=act.type,
            expected_name=score.expected_name, submitted_name=act.name, schema_valid=score.schema_valid,
            schema_errors=score.schema_errors,
        )
    return _grade_message(store, dp, act.content or "", chosen, llm, notes)


def _grade_message(store: Store | None, dp: Gradeable, candidate: str, chosen: str,
                   llm: LLMGrader | LLMConfig | None, notes: list[str]) -> Breakdown:
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
            reward = result.score / 10
            return Breakdown(reward, 1, None, None, "llm", result.model, f"llm: {result.reason}", notes=notes,
                             expected_type="message", submitted_type="message", llm_score=result.score,
                             llm_reason=result.reason, llm_cached=result.cached)
    kw = keyword_score(reference, candidate)
    reason = kw.reason
    if llm_error:
        reason = f"llm_fallback: {llm_error}; {reason}"
        notes = notes + [f"the LLM grader failed ({llm_error}); the keyword grader answered"]
    return Breakdown(kw.score, 1, None, None, "keyword", None, reason, notes=notes, expected_type="message",
                     submitted_type="message", keyword=kw.to_json(), llm_error=llm_error)


# ---- grading a prediction file -------------------------------------------------------------------------------
BATCH_LINES = 2000
COMMIT_ROWS = 100_000  # predictions stored per write transaction by `grade_file`
LOW_MEMORY_COMMIT_ROWS = 10_000  # the same with `low_memory` (pending rows cost about 1 kB each)
MAX_PRINTED_PROBLEMS = 20
# Files larger than this are graded by worker processes (keyword grader only; the LLM grader uses threads).
PARALLEL_MIN_BYTES = 4_000_000
# Batches handed to each worker process ahead of the one being stored: enough that the workers keep grading
# while this process commits (a 100,000-prediction commit takes seconds); 2 left them idle for part of that.
IN_FLIGHT_PER_WORKER = 8


@dataclass
class FileGradeResult:
    """What `grade_file` did: counts, the problems met (with line numbers), and the run it stored."""

    run_id: int
    run_name: str
    grader: str
    grader_model: str | None
    n_lines: int = 0
    n_blank: int = 0
    n_graded: int = 0
    n_ungraded: int = 0  # stored, but reward None (ungradeable reference)
    problems: list[dict[str, Any]] = field(default_factory=list)  # malformed / unknown / duplicate / invalid action
    n_problems: int = 0
    seconds: float = 0.0
    model: str | None = None
    workers: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per phase (main process), for benchmarks

    @property
    def n_not_graded(self) -> int:
        return self.n_ungraded + self.n_problems

    cpu_timings: dict[str, float] = field(default_factory=dict)  # CPU seconds of this process per phase

    def _add(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        cpu = time.process_time()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - since
        self.cpu_timings[phase] = self.cpu_timings.get(phase, 0.0) + cpu - getattr(self, "_cpu_mark", cpu)
        self._cpu_mark = cpu
        return now


def _error_line(line: int, dp_id: Any, message: str) -> dict[str, Any]:
    return {"id": dp_id if isinstance(dp_id, str) else None, "line": line, "reward": None, "action_type_match": None,
            "name_match": None, "arg_match": None, "grader": None, "reason": "not_graded", "keys": [], "error": message}


@dataclass(slots=True)
class LineResult:
    """One input line after grading, ready for the main process: its output line and its stored row."""

    line: int
    dp_id: str | None
    problem: str | None = None  # why it was not graded (None when graded)
    encoded: bytes | None = None  # the result line (None for problem lines: built by the main process)
    # a `predictions` row without the run id (graded, or a rejected action); its breakdown column is
    # `_IN_RESULT_LINE` when `encoded` holds it (the result line is the breakdown: `stored_row` puts it in)
    row: tuple | None = None
    reward_none: bool = False
    model: str | None = None
    dedup: bool = True  # False when the line is known not to be a decision point (malformed, unknown id)
    taxonomy: tuple | None = None  # with `row`: its failure taxonomy (`classification_fields`)


# the breakdown column of a graded row until `stored_row` fills it from the result line (not sent twice)
_IN_RESULT_LINE = ""


@dataclass(slots=True)
class PredictionLine:
    """One input line of `grade` or an upload, read: the object, why it cannot be graded (None when it can),
    its extra keys, and how many lone surrogates were repaired in it (said in its breakdown's notes)."""

    obj: Any
    error: str | None
    extra: dict
    repaired: int = 0

    @property
    def dp_id(self) -> str | None:
        dp_id = self.obj.get("id") if isinstance(self.obj, dict) else None
        return dp_id if isinstance(dp_id, str) else None


UTF8_BOM = b"\xef\xbb\xbf"


def read_prediction_line(raw: bytes) -> PredictionLine:
    """The one reader of a prediction line (`grade`, the upload's check and its grading).

    JSON under `jsontext`'s strict rules: lone surrogates are repaired to U+FFFD (counted), while NaN,
    Infinity, numbers beyond a double, integers over 4,300 digits and nesting deeper than `MAX_JSON_DEPTH`
    make the line's error, as do a line that is not an object or lacks "id" or "action". Any JSON value is
    accepted in any other field: what the grader cannot use becomes that line's error later, never the run's.
    """
    try:
        obj, repaired = loads_json_counted(raw, exact=True, strict=True)
        check_depth(obj, raw)
    except JSONLimitError as exc:
        return PredictionLine(None, f"cannot read the line: {exc}", {})
    except (ValueError, UnicodeDecodeError) as exc:
        return PredictionLine(None, f"malformed line: not JSON ({str(exc)[:120]})", {})
    obj = prediction_object(obj)  # an OpenAI Batch output line, or "response" for "action" (answer_formats)
    if not isinstance(obj, dict):
        return PredictionLine(obj, "malformed line: not a JSON object (expected {\"id\": ..., \"action\": {...}})", {})
    dp_id = obj.get("id")
    if not isinstance(dp_id, str) or not dp_id:
        return PredictionLine(obj, "malformed line: no \"id\" string", {})
    if "action" not in obj:
        return PredictionLine(obj, "malformed line: no \"action\"", {})
    return PredictionLine(obj, None, {k: v for k, v in obj.items() if k not in ("id", "action")}, repaired)


def repaired_note(n: int) -> str:
    return f"{n} lone UTF-16 surrogate{'s' if n != 1 else ''} in the line read as U+FFFD"


def unexpected_problem(exc: BaseException) -> str:
    """A line's error for what no check foresaw: one line, bounded, storable as UTF-8."""
    if isinstance(exc, RecursionError):
        return "could not be graded: the values are nested too deeply to compare"
    text = " ".join(f"could not be graded: {type(exc).__name__}: {exc}".split())
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:300]


def grade_lines(store: Store, loader: "TargetLoader", lines: list[tuple[int, bytes]], *, grader: str,
                llm: LLMGrader | None = None, thread_pool: Any = None, seen: dict[str, int] | None = None,
                timings: FileGradeResult | None = None) -> list[LineResult]:
    """Grade a batch of raw prediction lines (line number, bytes). Pure with respect to the run: it reads
    the store and returns results; the caller writes them. `seen` (id -> first line) drops repeated ids
    before grading; without it the caller must do that on the results."""
    t = time.perf_counter()
    parsed = [(line_no, read_prediction_line(raw)) for line_no, raw in lines]
    targets = loader.load([p.obj["id"] for _, p in parsed if p.error is None])
    if timings is not None:
        t = timings._add("read and load decision points", t)
    out: list[LineResult] = []
    work: list[tuple[int, Any, Any, dict, int]] = []
    for line_no, pred in parsed:
        if pred.error is not None:
            out.append(LineResult(line_no, pred.dp_id, pred.error, dedup=False))
            continue
        obj = pred.obj
        dp_id = obj["id"]
        target = targets.get(dp_id)
        if target is None:
            out.append(LineResult(line_no, dp_id, f"unknown decision point id {dp_id[:200]!r}", dedup=False))
            continue
        if seen is not None:
            first = seen.get(dp_id)
            if first is not None:
                out.append(LineResult(line_no, dp_id, f"duplicate id (first on line {first}); not graded again", dedup=False))
                continue
            seen[dp_id] = line_no
        work.append((len(out), target, obj["action"], pred.extra, pred.repaired))
        out.append(LineResult(line_no, dp_id))

    def grade_one(item: tuple) -> tuple[Breakdown | None, Action | None, str | None]:
        _slot, target, raw_action, _extra, _repaired = item
        try:
            action = parse_answer(raw_action)  # any harness's answer shape (answer_formats)
            return grade_action(store, target, action, grader=grader, llm=llm), action, None
        except ActionError as exc:
            return None, None, problem_text(exc)
        except Exception as exc:  # noqa: BLE001 - whatever one line raises is that line's error, not the run's
            return None, None, unexpected_problem(exc)

    graded = list(thread_pool.map(grade_one, work)) if thread_pool is not None else [grade_one(w) for w in work]
    if timings is not None:
        t = timings._add("grade", t)
    for (slot, target, raw_action, extra, repaired), (breakdown, action, error) in zip(work, graded):
        res = out[slot]
        try:
            _finish_line(res, target, raw_action, extra, repaired, breakdown, action, error)
        except Exception as exc:  # noqa: BLE001 - a result that cannot be encoded is that line's error
            _finish_line(res, target, None, {}, 0, None, None, unexpected_problem(exc))
    if timings is not None:
        timings._add("encode results", t)
    return out


def _latency(value: Any) -> float | None:
    """`latency_ms` when it is a finite number a float can hold, else None (any JSON value may be sent)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        latency = float(value)
    except OverflowError:  # an integer beyond a double
        return None
    return latency if math.isfinite(latency) else None


def _finish_line(res: LineResult, target: GradingTarget, raw_action: Any, extra: dict, repaired: int,
                 breakdown: Breakdown | None, action: Action | None, error: str | None) -> None:
    """Fill a graded line's result: its output line, its `predictions` row and its taxonomy."""
    latency = _latency(extra.get("latency_ms"))
    model = extra.get("model")
    res.model = model if isinstance(model, str) else None
    expected_tool = target.expected_calls[0].name if target.expected_calls else None
    if breakdown is None or action is None:
        res.problem = error or "not graded"
        res.reward_none = True
        res.encoded = None
        res.row = _row_fields(target, None, raw_action if isinstance(raw_action, dict) else {"raw": raw_action},
                              extra, res.problem, latency, res.line, None)
        res.taxonomy = classification_fields(classify(None, error=res.problem), expected_tool)
        return
    if repaired:
        breakdown.notes.append(repaired_note(repaired))
    line = breakdown.to_json(target.id)
    # the failure taxonomy, from the breakdown in hand (the task's tool names only when they decide it)
    taxonomy = classification_fields(
        classify(line, target.toolset.names if needs_tool_names(line) else None), expected_tool)
    line["line"] = res.line
    encoded = dumps_bytes(line)
    row = _row_fields(target, breakdown, action.to_json(), extra, None, latency, res.line, _IN_RESULT_LINE)
    res.taxonomy, res.encoded, res.row, res.reward_none = taxonomy, encoded, row, breakdown.reward is None


def _row_fields(target: Any, breakdown: Breakdown | None, action: Any, extra: dict, error: str | None,
                latency: float | None, line: int, encoded: str | None) -> tuple:
    return prediction_row(0, target.id, breakdown, action=action, extra=extra, split=target.split,
                          action_type=target.action_type, error=error, latency_ms=latency, line=line,
                          breakdown_json=encoded)[1:]


# Worker processes: each opens the store read-only once and grades whole batches.
_WORKER: dict[str, Any] = {}


def _worker_init(db_path: str, grader: str) -> None:
    import gc

    gc.disable()  # see grade_file
    store = Store.open(db_path, readonly=True)
    _WORKER.update(store=store, loader=TargetLoader(store, with_context=grader == "llm"), grader=grader)


# where a column sits in the rows graded here (`PREDICTION_COLUMNS` without the run id)
_BREAKDOWN_COLUMN, _DP_ID, _SPLIT, _ACTION_TYPE, _REWARD = (
    PREDICTION_COLUMNS.index(c) - 1 for c in ("breakdown", "dp_id", "split", "action_type", "reward"))


def _worker_grade(lines: list[tuple[int, bytes]]) -> list[tuple]:
    """Grade a batch in a worker; results as plain tuples (cheaper to pickle back than objects)."""
    return [(r.line, r.dp_id, r.problem, r.encoded, r.row, r.reward_none, r.model, r.dedup, r.taxonomy)
            for r in grade_lines(_WORKER["store"], _WORKER["loader"], lines, grader=_WORKER["grader"])]


def stored_row(res: LineResult) -> tuple:
    """The result's `predictions` row (without ids), its breakdown column filled from the result line."""
    row = res.row
    assert row is not None
    if res.encoded is None:
        return row
    assert row[_BREAKDOWN_COLUMN] == _IN_RESULT_LINE
    return (*row[:_BREAKDOWN_COLUMN], res.encoded.decode(), *row[_BREAKDOWN_COLUMN + 1:])


def _source(source: Any) -> tuple[Any, Any, int]:
    """(path or None, open binary file or None, size in bytes) of what `grade_file` reads: a path, or a binary
    file object (an upload), read from its start."""
    from pathlib import Path

    if hasattr(source, "read"):
        source.seek(0, 2)
        size = source.tell()
        source.seek(0)
        return None, source, size
    path = Path(source)
    return path, None, path.stat().st_size


def grade_file(store: Store, path: Any, *, run_name: str, grader: str = "auto", llm: LLMGrader | None = None,
               out: Any = None, concurrency: int = 8, progress: bool = False, kind: str = "grade",
               workers: int | None = None, low_memory: bool = False) -> FileGradeResult:
    """Grade every line of a predictions JSONL file (`{"id", "action", ...extra}`) into a new run. `path` is
    a path, or a seekable binary file object (an upload: read as a stream, never held whole).

    Streams the file in batches: one query loads a batch's decision points and each conversation is
    decompressed once; results are written in input order to `out` (a binary file object, optional)
    and stored in one transaction per batch. A line that cannot be graded (malformed, unknown id,
    duplicate id, invalid action) is reported with its line number and the rest is still graded.

    With the keyword grader a large file is graded by `workers` processes (default: one per core) while
    this process writes; the LLM grader runs `concurrency` requests at a time in threads.

    `low_memory` (the app's uploads: the server process lives on) trades some speed for a smaller peak:
    SQLite's page cache stays at its default instead of 256 MB, and predictions are committed every
    `LOW_MEMORY_COMMIT_ROWS` instead of `COMMIT_ROWS`.
    """
    import gc
    import multiprocessing
    import os
    import threading
    import time
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from ..runs.run import create_run, finish_run, insert_numbered_predictions, next_prediction_id
    from ..runs.taxonomy import add_classified, start_taxonomy, taxonomy_row

    path, fh_given, size = _source(path)
    if workers is not None and workers < 0:  # before the run exists: a run is never left `running` by this
        raise ValueError(f"workers must be 0 or more, not {workers}")
    config = llm.config if llm is not None else None
    chosen = resolve_grader(grader, config)
    if chosen == "llm" and llm is None:
        raise LLMNotConfigured("the LLM grader was chosen but no grader was given")
    grader_model = llm.model if chosen == "llm" and llm is not None else None
    if workers is None:
        # Forking a process that runs other threads (the app's server) can deadlock the child on a lock one
        # of them held, so the default is worker processes only from a single-threaded program (the CLI).
        big = size >= PARALLEL_MIN_BYTES
        workers = (os.cpu_count() or 1) if chosen != "llm" and big and threading.active_count() == 1 else 0
    if chosen == "llm" or (os.cpu_count() or 1) < 2:
        workers = 0
    run_id = create_run(store, run_name, kind=kind, grader=chosen, grader_model=grader_model,
                        rule_version=RULE_VERSION, source_file=str(path) if fh_given is None else None,
                        settings={"concurrency": concurrency, "requested_grader": grader, "workers": workers})
    with store.transaction() as conn:  # classified as graded (taxonomy.py), indexed when the run finishes
        start_taxonomy(conn, run_id)
    result = FileGradeResult(run_id, run_name, chosen, grader_model, workers=workers)
    started = time.perf_counter()
    result._cpu_mark = time.process_time()
    seen: dict[str, int] = {}
    process_pool = None
    if workers:  # forked before any thread of ours starts (the progress bar's monitor, the LLM pool)
        store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        ctx = multiprocessing.get_context("fork" if os.name != "nt" else "spawn")
        process_pool = ctx.Pool(workers, initializer=_worker_init, initargs=(str(store.path), chosen))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=size, unit="B", unit_scale=True, desc="grade", dynamic_ncols=True)
    thread_pool = ThreadPoolExecutor(max_workers=max(1, concurrency)) if chosen == "llm" else None
    loader = TargetLoader(store, with_context=chosen == "llm")
    old_cache_size = store.scalar("PRAGMA cache_size")
    if not low_memory:
        store.conn.execute("PRAGMA cache_size = -262144")  # 256 MB: the (run, id) index grows by a million keys
    commit_rows = LOW_MEMORY_COMMIT_ROWS if low_memory else COMMIT_ROWS
    # checkpoint every 64 MB of WAL instead of every 4 MB: fewer copies of the same hot index pages
    old_checkpoint = store.scalar("PRAGMA wal_autocheckpoint")
    store.conn.execute("PRAGMA wal_autocheckpoint = 16384")

    pending: list[tuple[tuple, tuple]] = []  # (prediction row without ids, taxonomy fields), not stored yet

    def store_pending() -> None:
        """One transaction: the pending predictions, numbered here, and their taxonomy rows beside them."""
        t = time.perf_counter()
        if pending:
            with store.transaction() as conn:
                first = next_prediction_id(conn)
                insert_numbered_predictions(conn, [(first + i, run_id, *row) for i, (row, _) in enumerate(pending)])
                add_classified(conn, run_id, [
                    taxonomy_row(first + i, row[_DP_ID], tax, row[_SPLIT], row[_ACTION_TYPE], row[_REWARD])
                    for i, (row, tax) in enumerate(pending)])
            pending.clear()
        result._add("store predictions", t)

    def absorb(results: list[LineResult], dedup: bool) -> None:
        t = time.perf_counter()
        encoded: list[bytes] = []
        for res in results:
            if dedup and res.dedup and res.dp_id is not None:
                first = seen.get(res.dp_id)
                if first is not None:
                    res = LineResult(res.line, res.dp_id, f"duplicate id (first on line {first}); not graded again")
                else:
                    seen[res.dp_id] = res.line
            if res.problem is not None:
                result.n_problems += 1
                if len(result.problems) < 1000:
                    result.problems.append({"line": res.line, "id": res.dp_id, "problem": res.problem})
                encoded.append(orjson.dumps(_error_line(res.line, res.dp_id, res.problem)))
            else:
                encoded.append(res.encoded or b"{}")
                if res.reward_none:
                    result.n_ungraded += 1
                else:
                    result.n_graded += 1
            if res.row is not None:
                pending.append((stored_row(res), res.taxonomy))
            if result.model is None and res.model:
                result.model = res.model
        t = result._add("dedup", t)
        # Few large transactions: each commit rewrites every index page it touched, and the (run, id)
        # index is filled in random order, so small ones write the same pages again and again.
        if len(pending) >= commit_rows:
            store_pending()
            t = time.perf_counter()
        if out is not None:
            out.write(b"\n".join(encoded) + b"\n" if encoded else b"")
            result._add("write results", t)

    def batches():
        batch: list[tuple[int, bytes]] = []
        with (path.open("rb") if fh_given is None else contextlib.nullcontext(fh_given)) as fh:
            for line_no, raw in enumerate(fh, start=1):
                if bar is not None:
                    bar.update(len(raw))
                if line_no == 1 and raw.startswith(UTF8_BOM):  # as ingest does: a byte-order mark opens the file
                    raw = raw[len(UTF8_BOM):]
                if not raw.strip():
                    result.n_blank += 1
                    continue
                result.n_lines += 1
                batch.append((line_no, raw))
                if len(batch) >= BATCH_LINES:
                    yield batch
                    batch = []
        if batch:
            yield batch

    status = "failed"
    gc_was_enabled = gc.isenabled()
    # Parsed conversations are kept in a cache of thousands of objects; with the cyclic GC on, every few
    # thousand allocations it walks them all (measured: grading ran at half speed). Nothing here makes cycles.
    gc.disable()
    try:
        if process_pool is not None:
            in_flight: deque = deque()
            for batch in batches():
                in_flight.append(process_pool.apply_async(_worker_grade, (batch,)))
                while len(in_flight) > IN_FLIGHT_PER_WORKER * workers:
                    t = time.perf_counter()
                    done = [LineResult(*item) for item in in_flight.popleft().get()]
                    result._add("wait for workers", t)
                    absorb(done, dedup=True)
            while in_flight:
                t = time.perf_counter()
                done = [LineResult(*item) for item in in_flight.popleft().get()]
                result._add("wait for workers", t)
                absorb(done, dedup=True)
        else:
            for batch in batches():
                absorb(grade_lines(store, loader, batch, grader=chosen, llm=llm, thread_pool=thread_pool, seen=seen,
                                   timings=result), dedup=False)
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if process_pool is not None:
            process_pool.terminate() if status != "completed" else process_pool.close()
            process_pool.join()
        store_error = None
        try:  # what was graded is kept, also when interrupted (its result lines are written)
            store_pending()
        except Exception as exc:  # noqa: BLE001 - still finish the run (as failed), then raise it below
            if status == "completed":  # otherwise the exception already on its way is the one to see
                store_error = exc
            status = "failed"
        if thread_pool is not None:
            thread_pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
        result.problems.sort(key=lambda p: p["line"])
        t_finish = time.perf_counter()
        finish_run(store, run_id, status=status, n_lines=result.n_lines, problems=result.problems,
                   n_problems=result.n_problems)
        if result.model:
            with store.transaction() as conn:
                conn.execute("UPDATE runs SET model = ? WHERE id = ?", (result.model, run_id))
        result._add("finish run (counts, taxonomy)", t_finish)
        store.conn.execute(f"PRAGMA wal_autocheckpoint = {int(old_checkpoint)}")
        # give back the 256 MB page cache: the app's connection lives on after an upload is graded
        store.conn.execute(f"PRAGMA cache_size = {int(old_cache_size)}")
        result.seconds = time.perf_counter() - started
        if gc_was_enabled:
            gc.enable()
        if store_error is not None:
            raise store_error
    return result
