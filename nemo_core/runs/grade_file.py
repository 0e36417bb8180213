"""Grading a predictions file into a run: `grade`, uploads, and human answers saved as a run.

A predictions file is JSONL, one `{"id", "action", ...extra}` object a line. `grade_file` streams it in batches:
one query loads a batch's decision points and each conversation is decompressed once (`grade.TargetLoader`);
each line is graded by `grade.grade_action` (the one grading of one action) and classified in the failure
taxonomy from the breakdown in hand; results are written in input order to `out` and stored through the run's
owner (`owner.RunOwner`: few large transactions, the run finished however the work ends). A line that cannot
be graded (malformed, unknown id, duplicate id, invalid action) is reported with its line number and the rest is
still graded.

The work runs on the one executor (`executor.Executor`): with the keyword grader, a large file is graded by
worker processes (one per core) while this process stores; the LLM grader runs `concurrency` requests at a time
on threads; otherwise one batch after the other here. Process settings for the bulk work (the collector off, a
large page cache) are set and restored by `data.tuning.tuned`.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..data.records import JSONLimitError, check_depth, dumps_bytes, loads_json_counted
from ..data.store import Store
from ..data.tuning import BULK_CACHE_KIB, BULK_WAL_AUTOCHECKPOINT, gc_off_for_this_process, tuned
from ..grading.actions import Action, ActionError
from ..grading.answer_formats import parse_answer, prediction_object, problem_text
from ..grading.grade import RULE_VERSION, Breakdown, GradingTarget, TargetLoader, grade_action, resolve_grader
from ..grading.llm_grader import LLMGrader, LLMNotConfigured
from .executor import Executor
from .owner import COMMIT_ROWS, LOW_MEMORY_COMMIT_ROWS, RunOutcome, RunOwner
from .run import PREDICTION_COLUMNS, prediction_row
from .taxonomy import classification_fields, classify, classify_graded

BATCH_LINES = 2000
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

    def outcome(self) -> RunOutcome:
        """What the run records when it finishes (the problems in line order)."""
        self.problems.sort(key=lambda p: p["line"])
        return RunOutcome(n_lines=self.n_lines, problems=self.problems, n_problems=self.n_problems, model=self.model)

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


def grade_lines(store: Store, loader: TargetLoader, lines: list[tuple[int, bytes]], *, grader: str,
                llm: LLMGrader | None = None, executor: Executor | None = None, seen: dict[str, int] | None = None,
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

    if executor is not None:  # requests as they finish (a slow one holds up no other), put back in line order
        by_slot = dict(executor.map(lambda item: (item[0], grade_one(item)), work, ordered=False))
        graded = [by_slot[item[0]] for item in work]
    else:
        graded = [grade_one(w) for w in work]
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
    taxonomy = classify_graded(line, target.toolset, expected_tool)  # the failure taxonomy, from the breakdown in hand
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
    gc_off_for_this_process()  # see `data.tuning`
    store = Store.open(db_path, readonly=True)
    _WORKER.update(store=store, loader=TargetLoader(store, with_context=grader == "llm"), grader=grader)


# where the breakdown sits in the rows graded here (`PREDICTION_COLUMNS` without the run id)
_BREAKDOWN_COLUMN = PREDICTION_COLUMNS.index("breakdown") - 1


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
    if hasattr(source, "read"):
        source.seek(0, 2)
        size = source.tell()
        source.seek(0)
        return None, source, size
    path = Path(source)
    return path, None, path.stat().st_size




@dataclass
class _Plan:
    """How a file is graded, decided before its run exists (so a bad option never leaves a run `running`)."""

    path: Path | None  # None for a file object (an upload)
    fh: Any
    size: int
    grader: str
    grader_model: str | None
    workers: int


def _plan(source: Any, *, grader: str, llm: LLMGrader | None, workers: int | None) -> _Plan:
    path, fh, size = _source(source)
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be 0 or more, not {workers}")
    chosen = resolve_grader(grader, llm.config if llm is not None else None)
    if chosen == "llm" and llm is None:
        raise LLMNotConfigured("the LLM grader was chosen but no grader was given")
    if workers is None:
        # Forking a process that runs other threads (the app's server) can deadlock the child on a lock one
        # of them held, so the default is worker processes only from a single-threaded program (the CLI).
        big = size >= PARALLEL_MIN_BYTES
        workers = (os.cpu_count() or 1) if chosen != "llm" and big and threading.active_count() == 1 else 0
    if chosen == "llm" or (os.cpu_count() or 1) < 2:
        workers = 0
    return _Plan(path, fh, size, chosen, llm.model if chosen == "llm" and llm is not None else None, workers)


def _executor(store: Store, plan: _Plan, concurrency: int) -> Executor:
    """Worker processes (forked now, before any thread of ours starts: the progress bar's monitor, the LLM's
    pool), threads for the LLM grader, or this thread."""
    if plan.workers:
        store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return Executor(plan.workers, processes=True, window=IN_FLIGHT_PER_WORKER * plan.workers,
                        initializer=_worker_init, initargs=(str(store.path), plan.grader))
    return Executor(max(1, concurrency) if plan.grader == "llm" else 0, name="grade-llm")


def _batches(plan: _Plan, result: FileGradeResult, bar: Any) -> Iterator[list[tuple[int, bytes]]]:
    """The file's non-blank lines, numbered from 1, in batches of `BATCH_LINES` (a byte-order mark opening
    the file is dropped, as ingest drops one)."""
    batch: list[tuple[int, bytes]] = []
    with (plan.path.open("rb") if plan.fh is None else contextlib.nullcontext(plan.fh)) as fh:
        for line_no, raw in enumerate(fh, start=1):
            if bar is not None:
                bar.update(len(raw))
            if line_no == 1 and raw.startswith(UTF8_BOM):
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


class _Absorber:
    """Takes graded lines in input order: counts them, drops repeated ids (worker processes cannot see each
    other's), hands the rows to the run's owner and writes the result lines."""

    def __init__(self, run: RunOwner, result: FileGradeResult, out: Any):
        self.run, self.result, self.out = run, result, out
        self.seen: dict[str, int] = {}

    def __call__(self, results: list[LineResult], *, dedup: bool) -> None:
        result, t = self.result, time.perf_counter()
        encoded: list[bytes] = []
        rows: list[tuple[tuple, tuple | None]] = []
        for res in results:
            if dedup and res.dedup and res.dp_id is not None:
                first = self.seen.get(res.dp_id)
                if first is not None:
                    res = LineResult(res.line, res.dp_id, f"duplicate id (first on line {first}); not graded again")
                else:
                    self.seen[res.dp_id] = res.line
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
                rows.append((stored_row(res), res.taxonomy))
            if result.model is None and res.model:
                result.model = res.model
        self.run.extend(rows)
        t = result._add("dedup", t)
        if self.run.commit_due:
            self.run.commit()
            t = result._add("store predictions", t)
        if self.out is not None:
            self.out.write(b"\n".join(encoded) + b"\n" if encoded else b"")
            result._add("write results", t)


def grade_file(store: Store, path: Any, *, run_name: str, grader: str = "auto", llm: LLMGrader | None = None,
               out: Any = None, concurrency: int = 8, progress: bool = False, kind: str = "grade",
               workers: int | None = None, low_memory: bool = False) -> FileGradeResult:
    """Grade every line of a predictions JSONL file into a new run (see the module docstring). `path` is a path,
    or a seekable binary file object (an upload: read as a stream, never held whole); `out` a binary file object
    for the result lines. `workers`: processes for the keyword grader (default: one per core for files over
    `PARALLEL_MIN_BYTES`, from a single-threaded program only); `concurrency`: the LLM grader's requests at once.

    `low_memory` (the app's uploads: the server process lives on) trades some speed for a smaller peak:
    SQLite's page cache stays at its default instead of 256 MB, and predictions are committed every
    `LOW_MEMORY_COMMIT_ROWS` instead of `COMMIT_ROWS`.
    """
    plan = _plan(path, grader=grader, llm=llm, workers=workers)
    with tuned(store, gc_off=True, cache_kib=None if low_memory else BULK_CACHE_KIB,
               wal_autocheckpoint=BULK_WAL_AUTOCHECKPOINT):
        run = RunOwner.create(store, run_name, kind=kind, grader=plan.grader, grader_model=plan.grader_model,
                              rule_version=RULE_VERSION, source_file=str(plan.path) if plan.fh is None else None,
                              settings={"concurrency": concurrency, "requested_grader": grader,
                                        "workers": plan.workers},
                              classify_as_stored=True, commit_rows=LOW_MEMORY_COMMIT_ROWS if low_memory else COMMIT_ROWS)
        result = FileGradeResult(run.run_id, run_name, plan.grader, plan.grader_model, workers=plan.workers)
        started = time.perf_counter()
        result._cpu_mark = time.process_time()
        with run.lifetime(result.outcome):
            with _executor(store, plan, concurrency) as executor:
                _grade(store, plan, executor, _Absorber(run, result, out), llm=llm, progress=progress)
            t_finish = time.perf_counter()
        result._add("finish run (counts, taxonomy)", t_finish)
        result.seconds = time.perf_counter() - started
    return result


def _grade(store: Store, plan: _Plan, executor: Executor, absorb: _Absorber, *, llm: LLMGrader | None,
           progress: bool) -> None:
    """The grading loop: batches to the worker processes (results back in order), or graded here (the LLM's
    requests on the executor's threads)."""
    result = absorb.result
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=plan.size, unit="B", unit_scale=True, desc="grade", dynamic_ncols=True)
    try:
        if executor.processes:
            done = executor.map(_worker_grade, _batches(plan, result, bar))
            while True:
                t = time.perf_counter()
                batch = next(done, None)
                result._add("wait for workers", t)
                if batch is None:
                    break
                absorb([LineResult(*item) for item in batch], dedup=True)
        else:
            loader = TargetLoader(store, with_context=plan.grader == "llm")
            for batch in _batches(plan, result, bar):
                absorb(grade_lines(store, loader, batch, grader=plan.grader, llm=llm,
                                   executor=executor if executor.workers else None, seen=absorb.seen,
                                   timings=result), dedup=False)
    finally:
        if bar is not None:
            bar.close()
