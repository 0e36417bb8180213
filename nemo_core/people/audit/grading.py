"""The LLM grader over an audit set: every item not yet scored is asked about, concurrently on the one executor
(`runs.executor.Executor`), through the grader's own cache (a question asked before is never paid again),
stoppable at any moment and resumable (scored items are skipped), with `estimate` saying beforehand how many
API calls that will take. An item whose LLM call failed keeps `llm_score` NULL with the error: it is retried on
the next pass and never counted as a 0.

`grading_control` is the per-set control a server needs when several sessions share it: one grading of a set at
a time, and a Stop from any session (a later script run of the page) reaching the grading in progress."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ...data.store import Store
from ...grading.grade import TargetLoader
from ...grading.llm_grader import PROMPT_VERSION, LLMGradeFailed, LLMGrader, candidate_sha256
from ...runs.executor import Executor
from . import sets
from .sets import AuditError, AuditSet, _count_items, get_audit_set

MAX_WINDOW_PER_WORKER = 2  # requests in flight per worker: a stop request waits for at most this many


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Estimate:
    """How many API calls grading the rest of a set will take (at least: retries come on top)."""

    n_items: int
    n_scored: int  # already have an LLM score: skipped
    n_to_grade: int
    n_cached: int  # to grade, but the answer is in the LLM grader's cache (or asked by an earlier item): free
    model: str

    @property
    def n_calls(self) -> int:
        return self.n_to_grade - self.n_cached

    def to_json(self) -> dict[str, Any]:
        return {"n_items": self.n_items, "n_scored": self.n_scored, "n_to_grade": self.n_to_grade,
                "n_cached": self.n_cached, "n_calls": self.n_calls, "model": self.model}

    def to_text(self) -> str:
        return (f"{self.n_items:,} items: {self.n_scored:,} already scored, {self.n_to_grade:,} to grade with "
                f"{self.model} ({self.n_cached:,} in the cache) -> about {self.n_calls:,} API calls")


def _pending(store: Store, set_id: int, limit: int | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT i.id, i.dp_id, i.candidate FROM audit_items i LEFT JOIN audit_scores s ON s.item_id = i.id "
           "WHERE i.set_id = ? AND s.llm_score IS NULL ORDER BY i.order_key")
    params: list[Any] = [set_id]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return store.query(sql, params)


def _check_model(audit_set: AuditSet, model: str) -> None:
    if audit_set.llm_model and audit_set.llm_model != model:
        raise AuditError(f"the audit set {audit_set.name!r} was graded with {audit_set.llm_model}, not {model}",
                         f"grade it with --model {audit_set.llm_model}, or build a new set with --set NAME")


def estimate(store: Store, set_id: int, model: str, limit: int | None = None) -> Estimate:
    """Items to grade and the API calls they need: cache hits (same model, prompt version, decision point
    and candidate text) are free and not counted."""
    n_items = _count_items(store, set_id)
    pending = _pending(store, set_id, limit)
    cached_keys = {(r["dp_id"], r["candidate_sha256"]) for r in store.query(
        "SELECT dp_id, candidate_sha256 FROM llm_grade_cache WHERE model = ? AND prompt_version = ? "
        "AND dp_id IN (SELECT dp_id FROM audit_items WHERE set_id = ?)", (model, PROMPT_VERSION, set_id))}
    # an item whose question (decision point, candidate text) is in the cache, or was already asked by an
    # earlier item of this pass (the same reply twice), costs nothing
    n_cached = 0
    for p in pending:
        key = (p["dp_id"], candidate_sha256(p["candidate"]))
        if key in cached_keys:
            n_cached += 1
        cached_keys.add(key)
    n_scored = int(store.scalar(
        "SELECT count(*) FROM audit_scores s JOIN audit_items i ON i.id = s.item_id "
        "WHERE i.set_id = ? AND s.llm_score IS NOT NULL", (set_id,)) or 0)
    return Estimate(n_items, n_scored, len(pending), n_cached, model)


@dataclass
class GradeResult:
    n_graded: int = 0
    n_failed: int = 0
    n_cached: int = 0
    n_requests: int = 0
    stopped: bool = False
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"n_graded": self.n_graded, "n_failed": self.n_failed, "n_cached": self.n_cached,
                "n_requests": self.n_requests, "stopped": self.stopped, "seconds": round(self.seconds, 3)}


def grade_audit_set(store: Store, set_id: int, grader: LLMGrader, *, concurrency: int = 8, limit: int | None = None,
                    on_progress: Callable[[int, int | None], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> GradeResult:
    """Ask the LLM grader about every item of the set that has no LLM score yet.

    `concurrency` requests at once on the executor, with a bounded window in flight, so a stop (`should_stop()`
    true, Ctrl-C, or a page rerun) waits for at most a few requests. Each score is stored as soon as it
    arrives; answers still in flight when stopping are stored too (they are paid for), so resuming never pays
    for them again. `on_progress(done, total)` is called from this thread.
    """
    audit_set = get_audit_set(store, set_id)
    _check_model(audit_set, grader.model)
    if not audit_set.llm_model:
        with store.transaction() as conn:
            conn.execute("UPDATE audit_sets SET llm_model = ? WHERE id = ?", (grader.model, set_id))
    pending = _pending(store, set_id, limit)
    result = GradeResult()
    started = time.perf_counter()
    requests_before = grader.requests_sent
    if not pending:
        if on_progress:
            on_progress(0, 0)
        return result
    workers = max(1, int(concurrency))
    executor = Executor(workers, window=workers * MAX_WINDOW_PER_WORKER, should_stop=should_stop,
                        progress=on_progress, name="audit-llm")
    try:
        with executor:
            for item, answer, error in executor.map(lambda job: _ask(grader, *job), _with_targets(store, pending),
                                                    ordered=False, total=len(pending)):
                _store_score(store, grader, result, item, answer, error)
        result.stopped = executor.stopped
    finally:
        result.seconds = time.perf_counter() - started
        result.n_requests = grader.requests_sent - requests_before
    return result


def _with_targets(store: Store, pending: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], Any]]:
    """Each pending item with its decision point, loaded `sets.LOAD_CHUNK` at a time (contexts are large), in
    the thread that hands the items out."""
    loader = TargetLoader(store)
    for start in range(0, len(pending), sets.LOAD_CHUNK):
        chunk = pending[start:start + sets.LOAD_CHUNK]
        targets = loader.load(list(dict.fromkeys(p["dp_id"] for p in chunk)))
        for item in chunk:
            yield item, targets[item["dp_id"]]


def _ask(grader: LLMGrader, item: dict[str, Any], target: Any) -> tuple[dict[str, Any], Any, str | None]:
    try:
        return item, grader.grade(target.id, target.context, target.expected_content or "", item["candidate"]), None
    except LLMGradeFailed as exc:
        return item, None, grader.redact(str(exc))


def _store_score(store: Store, grader: LLMGrader, result: GradeResult, item: dict[str, Any], answer: Any,
                 error: str | None) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO audit_scores(item_id, llm_model, prompt_version, llm_score, llm_reason, "
            "llm_error, llm_cached, graded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (item["id"], grader.model, PROMPT_VERSION, None if answer is None else answer.score,
             None if answer is None else answer.reason, error,
             None if answer is None else int(bool(answer.cached)), _now()))
    if answer is None:
        result.n_failed += 1
        if len(result.errors) < 20:
            result.errors.append(f"{item['dp_id']}: {error}")
    else:
        result.n_graded += 1
        result.n_cached += int(bool(answer.cached))


# ---- one grading of a set at a time, stoppable from another session --------------------------------------------
class GradingBusy(AuditError):
    """The set is being graded right now (by another session of the server)."""

    hint = "its scores appear as they arrive; stop it there, or wait"


class GradingControl:
    """For one audit set in this process: at most one grading at a time, and a stop any thread can request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @contextmanager
    def grading(self) -> Iterator[Callable[[], bool]]:
        """Hold the set while grading it; yields the `should_stop` to give `grade_audit_set`. `GradingBusy` when
        another grading holds it."""
        if not self._lock.acquire(blocking=False):
            raise GradingBusy("this audit set is being graded in another session right now")
        self._stop.clear()
        try:
            yield self._stop.is_set
        finally:
            self._lock.release()

    def stop(self, timeout: float = 180.0) -> bool:
        """Ask the grading in progress to stop (it stores what is in flight) and wait for it; False when it was
        still running after `timeout` seconds."""
        self._stop.set()
        if self._lock.acquire(timeout=timeout):
            self._lock.release()
            return True
        return False


_controls: dict[tuple[str, int], GradingControl] = {}
_controls_lock = threading.Lock()


def grading_control(db_path: str, set_id: int) -> GradingControl:
    """The process-wide control of one audit set of one database (every session of a server shares it)."""
    with _controls_lock:
        return _controls.setdefault((db_path, int(set_id)), GradingControl())
