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

import orjson

from .actions import Action, parse_action
from .errors import NemoError
from .keyword_grader import keyword_score
from .llm_grader import LLMConfig, LLMGrader, LLMGradeFailed, LLMNotConfigured
from .records import ToolCall, ToolSet, content_text, normalise_tools, parse_tool_calls
from .reward import UNGRADEABLE_REFERENCE, WRONG_ACTION_TYPE, KeyResult, score_function_call
from .store import Store, decompress_json

RULE_VERSION = "2025-11-spec-v1"
GRADERS = ("auto", "keyword", "llm")
FUNCTION_CALL_GRADER = "function_call"


class GraderChoiceError(NemoError):
    """An unknown grader name."""

    hint = "choose auto, keyword or llm"


@dataclass
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
        """The result line of `grade` (issue 3): the listed keys first, then the details."""
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
            matched_call=self.matched_call,
            notes=self.notes,
            expected_type=self.expected_type,
            submitted_type=self.submitted_type,
            expected_name=self.expected_name,
            submitted_name=self.submitted_name,
            schema_valid=self.schema_valid,
            schema_errors=self.schema_errors,
            keyword=self.keyword,
            llm_score=self.llm_score,
            llm_reason=self.llm_reason,
            llm_error=self.llm_error,
            llm_cached=self.llm_cached,
        )
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
    context: list[dict[str, Any]]

    @property
    def gradeable(self) -> bool: ...


@dataclass
class GradingTarget:
    """The parts of a decision point grading reads; `DecisionPoint` has the same attributes."""

    id: str
    split: str
    action_type: str
    flags: list[str]
    expected_calls: list[ToolCall]
    expected_content: str | None
    toolset: ToolSet
    context: list[dict[str, Any]]
    ungradeable_reason: str | None = None

    @property
    def gradeable(self) -> bool:
        return "ungradeable" not in self.flags


class TargetLoader:
    """Loads grading targets for batches of ids with few queries and bounded caches.

    Each conversation is decompressed once per batch (and kept in a small LRU cache across batches, which
    is what makes a prediction file sorted by id cheap). Tool lists are normalised once per distinct list,
    so conversations sharing tools share one `ToolSet` (and its compiled schema validators)."""

    def __init__(self, store: Store, conversation_cache: int = 4096, toolset_cache: int = 4096):
        from .extract import FLAGS

        self.store = store
        self._flags = list(FLAGS)
        self._conversations: OrderedDict[int, tuple[list[dict], ToolSet]] = OrderedDict()
        self._toolsets: OrderedDict[bytes, ToolSet] = OrderedDict()
        self._conv_max = conversation_cache
        self._toolset_max = toolset_cache

    def load(self, ids: list[str]) -> dict[str, GradingTarget]:
        """Targets for the ids that exist (unknown ids are simply absent from the result)."""
        flag_cols = ", ".join(f"flag_{n}" for n in self._flags)
        rows: list[tuple] = []
        unique = list(dict.fromkeys(i for i in ids if isinstance(i, str)))
        with self.store._lock:
            for start in range(0, len(unique), 900):
                chunk = unique[start : start + 900]
                marks = ",".join("?" * len(chunk))
                rows.extend(self.store.conn.execute(
                    f"SELECT id, split, action_type, turn_index, conversation_id, ungradeable_reason, {flag_cols} "
                    f"FROM decision_points WHERE id IN ({marks})", chunk).fetchall())
        need = sorted({r[4] for r in rows if r[4] not in self._conversations})
        for start in range(0, len(need), 900):
            chunk = need[start : start + 900]
            with self.store._lock:
                fetched = self.store.conn.execute(
                    f"SELECT id, body FROM conversations WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            for conv_id, body in fetched:
                raw = decompress_json(body)
                self._conversations[conv_id] = (raw["messages"], self._toolset(raw.get("tools")))
        out: dict[str, GradingTarget] = {}
        for row in rows:
            dp_id, split, action_type, turn_index, conv_id, ungradeable_reason = row[:6]
            flags = [name for name, v in zip(self._flags, row[6:]) if v]
            messages, toolset = self._conversations[conv_id]
            self._conversations.move_to_end(conv_id)
            msg = messages[turn_index]
            calls = parse_tool_calls(msg.get("tool_calls"))
            out[dp_id] = GradingTarget(
                id=dp_id, split=split, action_type=action_type, flags=flags, expected_calls=calls,
                expected_content=None if calls else content_text(msg.get("content")),
                toolset=toolset, context=messages[:turn_index], ungradeable_reason=ungradeable_reason,
            )
        while len(self._conversations) > self._conv_max:
            self._conversations.popitem(last=False)
        return out

    def _toolset(self, raw_tools: Any) -> ToolSet:
        key = orjson.dumps(raw_tools or [])
        hit = self._toolsets.get(key)
        if hit is None:
            hit = self._toolsets[key] = normalise_tools(raw_tools)
            while len(self._toolsets) > self._toolset_max:
                self._toolsets.popitem(last=False)
        return hit


def load_target(store: Store, dp_id: str) -> GradingTarget:
    """One target (raises `UnknownDecisionPoint` like `store.get`)."""
    from .errors import UnknownDecisionPoint

    found = TargetLoader(store, 4, 4).load([dp_id])
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
        if not dp.gradeable:
            why = getattr(dp, "ungradeable_reason", None) or "the expected call's arguments are not an object"
            return Breakdown(None, 1, None, None, FUNCTION_CALL_GRADER, None, UNGRADEABLE_REFERENCE,
                             notes=notes + [f"the reference cannot be graded: {why}"], expected_type=expected_type,
                             submitted_type=act.type, submitted_name=act.name)
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
BATCH_LINES = 5000
MAX_PRINTED_PROBLEMS = 20


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

    @property
    def n_not_graded(self) -> int:
        return self.n_ungraded + self.n_problems


def _error_line(line: int, dp_id: Any, message: str) -> dict[str, Any]:
    return {"id": dp_id if isinstance(dp_id, str) else None, "line": line, "reward": None, "action_type_match": None,
            "name_match": None, "arg_match": None, "grader": None, "reason": "not_graded", "keys": [], "error": message}


def grade_file(store: Store, path: Any, *, run_name: str, grader: str = "auto", llm: LLMGrader | None = None,
               out: Any = None, concurrency: int = 8, progress: bool = False, kind: str = "grade") -> FileGradeResult:
    """Grade every line of a predictions JSONL file (`{"id", "action", ...extra}`) into a new run.

    Streams the file in batches: one query loads the batch's decision points, each conversation is
    decompressed once, results are written in input order to `out` (a binary file object, optional)
    and stored in one transaction per batch. A line that cannot be graded (malformed, unknown id,
    duplicate id, invalid action) is reported with its line number and the rest is still graded.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from .actions import ActionError
    from .records import loads_json
    from .runs import create_run, finish_run, insert_predictions, prediction_row

    path = Path(path)
    config = llm.config if llm is not None else None
    chosen = resolve_grader(grader, config)
    if chosen == "llm" and llm is None:
        raise LLMNotConfigured("the LLM grader was chosen but no grader was given")
    grader_model = llm.model if chosen == "llm" and llm is not None else None
    run_id = create_run(store, run_name, kind=kind, grader=chosen, grader_model=grader_model,
                        rule_version=RULE_VERSION, source_file=str(path),
                        settings={"concurrency": concurrency, "requested_grader": grader})
    result = FileGradeResult(run_id, run_name, chosen, grader_model)
    started = time.perf_counter()
    loader = TargetLoader(store)
    seen: dict[str, int] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc="grade", dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency)) if chosen == "llm" else None

    def problem(line_no: int, dp_id: Any, message: str) -> dict[str, Any]:
        result.n_problems += 1
        if len(result.problems) < 1000:
            result.problems.append({"line": line_no, "id": dp_id if isinstance(dp_id, str) else None, "problem": message})
        return _error_line(line_no, dp_id, message)

    def grade_one(item: tuple) -> tuple[Breakdown | None, str | None]:
        target, action = item
        try:
            return grade_action(store, target, action, grader=chosen, llm=llm), None
        except ActionError as exc:
            return None, f"invalid action: {exc}"

    def flush(batch: list[tuple[int, Any, Any, dict]]) -> None:
        # batch items: (line number, parsed object or None, error message or None, extra)
        targets = loader.load([obj["id"] for _, obj, err, _ in batch if err is None])
        lines: list[dict[str, Any]] = []
        work: list[tuple[int, tuple]] = []
        slots: list[Any] = []
        for line_no, obj, err, _extra in batch:
            if err is not None:
                slots.append(problem(line_no, obj.get("id") if isinstance(obj, dict) else None, err))
                continue
            dp_id = obj["id"]
            target = targets.get(dp_id)
            if target is None:
                slots.append(problem(line_no, dp_id, f"unknown decision point id {dp_id[:200]!r}"))
                continue
            first = seen.get(dp_id)
            if first is not None:
                slots.append(problem(line_no, dp_id, f"duplicate id (first on line {first}); not graded again"))
                continue
            seen[dp_id] = line_no
            work.append((len(slots), (target, obj["action"])))
            slots.append(None)
        graded = list(pool.map(grade_one, [w[1] for w in work])) if pool is not None else [grade_one(w[1]) for w in work]
        rows = []
        for (slot, (target, _action)), (breakdown, error) in zip(work, graded):
            line_no, obj, _err, extra = batch[slot]
            latency = extra.get("latency_ms")
            latency = float(latency) if isinstance(latency, (int, float)) and not isinstance(latency, bool) else None
            if result.model is None and isinstance(extra.get("model"), str):
                result.model = extra["model"]
            action = obj["action"]
            if breakdown is None:
                slots[slot] = problem(line_no, target.id, error or "not graded")
                rows.append(prediction_row(run_id, target.id, None, action=action if isinstance(action, dict) else {"raw": action},
                                           extra=extra, split=target.split, action_type=target.action_type,
                                           error=error, latency_ms=latency, line=line_no))
                continue
            if breakdown.reward is None:
                result.n_ungraded += 1
            else:
                result.n_graded += 1
            line = breakdown.to_json(target.id)
            line["line"] = line_no
            slots[slot] = line
            stored_action = parse_action(action).to_json()
            rows.append(prediction_row(run_id, target.id, breakdown, action=stored_action, extra=extra,
                                       split=target.split, action_type=target.action_type, latency_ms=latency,
                                       line=line_no))
        insert_predictions(store, rows)
        if out is not None:
            out.write(b"".join(orjson.dumps(s, option=orjson.OPT_NON_STR_KEYS) + b"\n" for s in slots))

    status = "failed"
    try:
        batch: list[tuple[int, Any, Any, dict]] = []
        with path.open("rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
                if bar is not None:
                    bar.update(len(raw))
                if not raw.strip():
                    result.n_blank += 1
                    continue
                result.n_lines += 1
                batch.append(_parse_prediction_line(line_no, raw, loads_json))
                if len(batch) >= BATCH_LINES:
                    flush(batch)
                    batch = []
            if batch:
                flush(batch)
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
        result.seconds = time.perf_counter() - started
        result.problems.sort(key=lambda p: p["line"])
        finish_run(store, run_id, status=status, n_lines=result.n_lines, problems=result.problems,
                   n_problems=result.n_problems)
        if result.model:
            with store.transaction() as conn:
                conn.execute("UPDATE runs SET model = ? WHERE id = ?", (result.model, run_id))
    return result


def _parse_prediction_line(line_no: int, raw: bytes, loads: Any) -> tuple[int, Any, str | None, dict]:
    """(line number, object, error or None, extra keys) for one input line."""
    try:
        obj = loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return line_no, None, f"malformed line: not JSON ({str(exc)[:120]})", {}
    if not isinstance(obj, dict):
        return line_no, obj, "malformed line: not a JSON object (expected {\"id\": ..., \"action\": {...}})", {}
    dp_id = obj.get("id")
    if not isinstance(dp_id, str) or not dp_id:
        return line_no, obj, "malformed line: no \"id\" string", {}
    if "action" not in obj:
        return line_no, obj, "malformed line: no \"action\"", {}
    extra = {k: v for k, v in obj.items() if k not in ("id", "action")}
    return line_no, obj, None, extra
