"""The grader audit (issue 8): how well the keyword grader agrees with the LLM grader on message tasks, and
both with people.

An *audit set* is a list of (message decision point, candidate reply) items from one source:
- `run`: the message predictions of a stored run (a model's replies, or a `human` run's answers);
- `calibration`: built-in candidates that need no model, three per decision point: the reference itself
  (a ceiling: both graders should say 1), a reference from another conversation chosen with the seed
  (a floor: both should say about 0), and the reference cut in half (in between: what does each make of it?).

Every item gets its keyword score when it is added (free, so the keyword side and human judgements work
with no key). `grade_audit_set` then asks the LLM grader about every item not yet scored: concurrently
(a thread pool), through the grader's own cache (a question asked before is never paid again), stoppable
at any moment and resumable (scored items are skipped), with `estimate` saying beforehand how many API
calls that will take. An item whose LLM call failed keeps `llm_score` NULL with the error: it is retried on
the next pass and never counted as a 0.

`agreement` turns the scored rows into the figures (pure, tested on hand-checked tables): Pearson and
Spearman correlation, mean absolute difference, the confusion matrix and Cohen's kappa at a pass threshold,
a sweep of the keyword grader's threshold (kappa and F1 against the LLM's pass/fail), agreement by split,
by candidate length and by kind, and human judgements (0-10, recorded blind) as a third rater.

Keyword scores are F1 in [0, 1]; LLM scores are stored as the model's integer 0-10 and compared as /10.
Decision points whose reference is empty are left out: both graders' scores are meaningless there.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from ..base.errors import NemoError
from ..grading.grade import RULE_VERSION, TargetLoader
from ..grading.keyword_grader import keyword_score
from ..grading.llm_grader import PROMPT_VERSION, LLMGradeFailed, LLMGrader, candidate_sha256
from ..base.metrics import (Confusion, SweepPoint, best_threshold, binary_confusion, cohen_kappa, f1_binary, mean,
                            mean_absolute_difference, passes, pearson, spearman, threshold_sweep)
from ..data.store import Store

SOURCES = ("calibration", "run", "campaign")
KINDS = {
    "prediction": "a run's reply",
    "human": "a person's answer in a human baseline campaign",
    "reference": "the reference itself (ceiling)",
    "other_conversation": "a reply from another conversation (floor)",
    "half_reference": "the reference cut in half",
}
CALIBRATION_KINDS = ("reference", "other_conversation", "half_reference")
DEFAULT_SEED = 8
DEFAULT_THRESHOLD = 0.5
SWEEP_THRESHOLDS = tuple(round(i * 0.05, 2) for i in range(21))
# Candidate length buckets, in characters: (label, lower bound inclusive, upper bound exclusive).
LENGTH_BUCKETS = (("< 100 chars", 0, 100), ("100–299", 100, 300), ("300–999", 300, 1000), ("≥ 1000", 1000, None))
LOAD_CHUNK = 500  # decision points whose context is held in memory at once while building or grading
MAX_WINDOW_PER_WORKER = 2  # futures in flight per worker: a stop request waits for at most this many



class AuditError(NemoError):
    """An audit set that cannot be built, found or graded as asked."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def order_key(seed: int, dp_id: str, kind: str = "") -> str:
    """A seeded pseudo-random order: the first N items of a set are a uniform sample, the same every time,
    and a larger N extends a smaller one."""
    return hashlib.sha256(f"{seed}:{dp_id}:{kind}".encode()).hexdigest()


def half_reference(text: str) -> str:
    """The first half of the reference, cut back to a word boundary when there is one before the middle."""
    text = text.strip()
    middle = len(text) // 2
    cut_at = text.rfind(" ", 0, middle + 1)
    head = text[:cut_at] if cut_at > 0 else text[:max(middle, 1)]
    return head.strip()


def length_bucket(chars: int) -> str:
    for label, low, high in LENGTH_BUCKETS:
        if chars >= low and (high is None or chars < high):
            return label
    return LENGTH_BUCKETS[-1][0]


# ---- audit sets --------------------------------------------------------------------------------------------
@dataclass
class AuditSet:
    id: int
    name: str
    created_at: str
    source: str
    source_id: int | None  # the run's or the campaign's id
    source_name: str | None
    seed: int
    llm_model: str | None
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "AuditSet":
        row = dict(row)
        row["settings"] = orjson.loads(row["settings"]) if row.get("settings") else {}
        return cls(**row)

    @property
    def label(self) -> str:
        what = {"run": f"run {self.source_name}", "campaign": f"human answers of campaign {self.source_name}"}.get(
            self.source, "calibration candidates")
        return f"{self.name} ({what})"


@dataclass
class BuildResult:
    """What `build_audit_set` did: the set, how many items it added, and what it left out and why."""

    audit_set: AuditSet
    n_added: int
    n_items: int
    skipped: dict[str, int] = field(default_factory=dict)


def default_set_name(source: str, ref: str | None = None) -> str:
    return {"run": f"run:{ref}", "campaign": f"campaign:{ref}"}.get(source, "calibration")


def list_audit_sets(store: Store) -> list[AuditSet]:
    return [AuditSet.from_row(r) for r in store.query("SELECT * FROM audit_sets ORDER BY id DESC")]


def get_audit_set(store: Store, which: int | str) -> AuditSet:
    column = "id" if isinstance(which, int) else "name"
    rows = store.query(f"SELECT * FROM audit_sets WHERE {column} = ?", (which,))
    if not rows:
        raise AuditError(f"no audit set {which!r}", "build one: python -m nemo_core audit --calibration (or --run NAME)")
    return AuditSet.from_row(rows[0])


def delete_audit_set(store: Store, set_id: int) -> None:
    with store.transaction() as conn:
        items = "SELECT id FROM audit_items WHERE set_id = ?"
        conn.execute(f"DELETE FROM audit_human WHERE item_id IN ({items})", (set_id,))
        conn.execute(f"DELETE FROM audit_scores WHERE item_id IN ({items})", (set_id,))
        conn.execute("DELETE FROM audit_items WHERE set_id = ?", (set_id,))
        conn.execute("DELETE FROM audit_sets WHERE id = ?", (set_id,))


def _ensure_set(store: Store, name: str, source: str, seed: int, source_id: int | None, source_name: str | None,
                settings: dict[str, Any]) -> AuditSet:
    rows = store.query("SELECT * FROM audit_sets WHERE name = ?", (name,))
    if rows:
        existing = AuditSet.from_row(rows[0])
        if existing.source != source or existing.source_id != source_id or existing.seed != seed:
            raise AuditError(f"the audit set {name!r} already exists with another source or seed",
                             "choose another set name, or leave --seed as it was")
        return existing
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO audit_sets(name, created_at, source, source_id, source_name, seed, settings) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, _now(), source, source_id, source_name, seed, orjson.dumps(settings).decode()),
        )
    return get_audit_set(store, name)


def _item_row(set_id: int, seed: int, dp_id: str, split: str, kind: str, candidate: str, reference: str,
              source_dp_id: str | None = None, variant: str = "") -> tuple:
    kw = keyword_score(reference, candidate)
    return (set_id, dp_id, split, kind, variant, candidate, len(candidate), len(reference), source_dp_id,
            order_key(seed, dp_id, kind + variant), kw.score, orjson.dumps(kw.to_json()).decode(), RULE_VERSION)


def _insert_items(store: Store, rows: list[tuple]) -> int:
    if not rows:
        return 0
    with store.transaction() as conn:
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO audit_items(set_id, dp_id, split, kind, variant, candidate, candidate_chars, "
            "reference_chars, source_dp_id, order_key, keyword_score, keyword, keyword_rule_version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return conn.total_changes - before


def _count_items(store: Store, set_id: int) -> int:
    return int(store.scalar("SELECT count(*) FROM audit_items WHERE set_id = ?", (set_id,)) or 0)


def build_audit_set(store: Store, source: str, *, run: str | int | None = None, name: str | None = None,
                    limit: int | None = None, seed: int = DEFAULT_SEED, split: str | None = None,
                    campaign: str | int | None = None) -> BuildResult:
    """Create the audit set (or add what is missing to the one of that name) and keyword-score its items.

    `limit` caps the number of decision points, taken in a seeded order, so the first N are a uniform
    sample and a larger N later extends the set. Items already present are never duplicated.
    """
    if source not in SOURCES:
        raise AuditError(f"unknown audit source {source!r}", f"one of {', '.join(SOURCES)}")
    if limit is not None and limit < 1:
        raise AuditError("--limit must be at least 1", "for example --limit 50")
    if source == "run":
        return _build_from_run(store, run, name=name, limit=limit, seed=seed, split=split)
    if source == "campaign":
        return _build_from_campaign(store, campaign, name=name, limit=limit, seed=seed, split=split)
    return _build_calibration(store, name=name, limit=limit, seed=seed, split=split)


def _build_from_run(store: Store, run: str | int | None, *, name: str | None, limit: int | None, seed: int,
                    split: str | None) -> BuildResult:
    from ..runs.run import RunError, get_run

    if run is None:
        raise AuditError("an audit of a run needs the run", "pass --run NAME (or use --calibration)")
    try:
        the_run = get_run(store, run)
    except RunError as exc:
        raise AuditError(str(exc), exc.hint) from None
    settings = {"limit": limit, "split": split}
    audit_set = _ensure_set(store, name or default_set_name("run", the_run.name), "run", seed, the_run.id,
                            the_run.name, settings)
    sql = ("SELECT p.dp_id, p.split, p.submitted_type, p.action, d.flag_empty_expected FROM predictions p "
           "JOIN decision_points d ON d.id = p.dp_id WHERE p.run_id = ? AND p.action_type = 'message'")
    params: list[Any] = [the_run.id]
    if split:
        sql += " AND p.split = ?"
        params.append(split)
    rows = store.query(sql, params)
    skipped: dict[str, int] = {}
    eligible = []
    for row in rows:
        action = orjson.loads(row["action"]) if row["action"] else None
        if row["submitted_type"] != "message" or not isinstance(action, dict) or action.get("type") != "message":
            skipped["not a message reply (a call, or no valid action)"] = skipped.get(
                "not a message reply (a call, or no valid action)", 0) + 1
            continue
        if row["flag_empty_expected"]:
            skipped["empty reference"] = skipped.get("empty reference", 0) + 1
            continue
        eligible.append((order_key(seed, row["dp_id"], "prediction"), row["dp_id"], action.get("content") or ""))
    eligible.sort()
    if limit is not None:
        eligible = eligible[:limit]
    loader = TargetLoader(store)
    added = 0
    for start in range(0, len(eligible), LOAD_CHUNK):
        chunk = eligible[start:start + LOAD_CHUNK]
        targets = loader.load([dp_id for _, dp_id, _ in chunk])
        added += _insert_items(store, [
            _item_row(audit_set.id, seed, dp_id, targets[dp_id].split, "prediction", candidate,
                      targets[dp_id].expected_content or "") for _, dp_id, candidate in chunk])
    return BuildResult(audit_set, added, _count_items(store, audit_set.id), skipped)


def campaigns_available(store: Store) -> list[dict[str, Any]]:
    """Human baseline campaigns (issue 6) with answered message items: `[{id, name, n}]`; [] when the
    campaigns feature is not in this database."""
    if not store.scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'campaign_answers'"):
        return []
    return store.query(
        "SELECT c.id, c.name, count(a.id) AS n FROM campaigns c JOIN campaign_answers a ON a.campaign_id = c.id "
        "JOIN decision_points d ON d.id = a.dp_id WHERE a.status = 'answered' AND d.action_type = 'message' "
        "GROUP BY c.id ORDER BY c.id DESC")


def _build_from_campaign(store: Store, campaign: str | int | None, *, name: str | None, limit: int | None,
                         seed: int, split: str | None) -> BuildResult:
    """People's answers to message decision points in a human baseline campaign (read from its
    `campaign_answers` table): one item per (decision point, annotator)."""
    found = [c for c in campaigns_available(store) if campaign in (c["id"], c["name"])]
    if not found:
        raise AuditError(f"no campaign {campaign!r} with answered message items",
                         "run a human baseline campaign first (issue 6), or audit a run or the calibration set")
    camp = found[0]
    audit_set = _ensure_set(store, name or default_set_name("campaign", camp["name"]), "campaign", seed, camp["id"],
                            camp["name"], {"limit": limit, "split": split})
    sql = ("SELECT a.dp_id, a.annotator, a.action, d.split, d.flag_empty_expected FROM campaign_answers a "
           "JOIN decision_points d ON d.id = a.dp_id WHERE a.campaign_id = ? AND a.status = 'answered' "
           "AND d.action_type = 'message'")
    params: list[Any] = [camp["id"]]
    if split:
        sql += " AND d.split = ?"
        params.append(split)
    skipped: dict[str, int] = {}
    eligible = []
    for row in store.query(sql, params):
        action = orjson.loads(row["action"]) if row["action"] else None
        if not isinstance(action, dict) or action.get("type") != "message":
            skipped["not a message reply"] = skipped.get("not a message reply", 0) + 1
            continue
        if row["flag_empty_expected"]:
            skipped["empty reference"] = skipped.get("empty reference", 0) + 1
            continue
        eligible.append((order_key(seed, row["dp_id"]), row["dp_id"], row["annotator"], action.get("content") or ""))
    eligible.sort()
    if limit is not None:
        keep = list(dict.fromkeys(dp_id for _, dp_id, _, _ in eligible))[:limit]
        eligible = [e for e in eligible if e[1] in set(keep)]
    targets = TargetLoader(store).load([e[1] for e in eligible])
    items = [_item_row(audit_set.id, seed, dp_id, targets[dp_id].split, "human", candidate,
                       targets[dp_id].expected_content or "", variant=annotator)
             for _, dp_id, annotator, candidate in eligible]
    added = _insert_items(store, items)
    return BuildResult(audit_set, added, _count_items(store, audit_set.id), skipped)


def _build_calibration(store: Store, *, name: str | None, limit: int | None, seed: int,
                       split: str | None) -> BuildResult:
    settings = {"limit": limit, "split": split}
    audit_set = _ensure_set(store, name or default_set_name("calibration"), "calibration", seed, None, None, settings)
    sql = "SELECT id, split, conversation_uuid FROM decision_points WHERE action_type = 'message'"
    params: list[Any] = []
    if split:
        sql += " AND split = ?"
        params.append(split)
    rows = store.query(sql + " AND flag_empty_expected = 0", params)
    skipped = {"empty reference": int(store.scalar(
        "SELECT count(*) FROM decision_points WHERE action_type = 'message' AND flag_empty_expected = 1"
        + (" AND split = ?" if split else ""), params) or 0)}
    rows.sort(key=lambda r: order_key(seed, r["id"]))
    chosen = rows[:limit] if limit is not None else rows
    if not chosen:
        return BuildResult(audit_set, 0, _count_items(store, audit_set.id), skipped)
    # The floor's donors: the chosen decision points themselves, plus a few more when they all share one
    # conversation (so there is always another conversation to borrow from when the database has one).
    donors = list(chosen)
    if len({r["conversation_uuid"] for r in donors}) < 2:
        donors += [r for r in rows[len(chosen):] if r["conversation_uuid"] != chosen[0]["conversation_uuid"]][:50]
    targets = TargetLoader(store).load(list(dict.fromkeys([r["id"] for r in chosen] + [r["id"] for r in donors])))
    items = []
    for row in chosen:
        dp_id = row["id"]
        reference = targets[dp_id].expected_content or ""
        items.append(_item_row(audit_set.id, seed, dp_id, row["split"], "reference", reference, reference))
        items.append(_item_row(audit_set.id, seed, dp_id, row["split"], "half_reference", half_reference(reference),
                               reference))
        others = [d for d in donors if d["conversation_uuid"] != row["conversation_uuid"]
                  and (targets[d["id"]].expected_content or "").strip()]
        same_split = [d for d in others if d["split"] == row["split"]]
        pool = same_split or others
        if pool:
            donor = random.Random(order_key(seed, dp_id, "floor")).choice(sorted(pool, key=lambda d: d["id"]))
            items.append(_item_row(audit_set.id, seed, dp_id, row["split"], "other_conversation",
                                   targets[donor["id"]].expected_content or "", reference, donor["id"]))
        else:
            skipped["no other conversation to borrow a floor reply from"] = skipped.get(
                "no other conversation to borrow a floor reply from", 0) + 1
    added = _insert_items(store, items)
    return BuildResult(audit_set, added, _count_items(store, audit_set.id), skipped)


# ---- grading with the LLM ------------------------------------------------------------------------------------
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
                    on_progress: Callable[[int, int], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> GradeResult:
    """Ask the LLM grader about every item of the set that has no LLM score yet.

    Concurrent (a pool of `concurrency` threads) with a bounded window of requests in flight, so a stop
    (`should_stop()` true, Ctrl-C, or a page rerun) waits for at most a few requests. Each score is stored
    as soon as it arrives; answers still in flight when stopping land in the grader's cache, so resuming
    never pays for them again. `on_progress(done, total)` is called from this thread.
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
    total = len(pending)
    if on_progress:
        on_progress(0, total)
    if not pending:
        return result
    loader = TargetLoader(store)
    chunk_targets: dict[str, Any] = {}

    def target_for(index: int, item: dict[str, Any]) -> Any:
        """Targets are loaded LOAD_CHUNK items at a time (contexts are large), in the main thread."""
        nonlocal chunk_targets
        if item["dp_id"] not in chunk_targets:
            chunk_targets = loader.load(list(dict.fromkeys(p["dp_id"] for p in pending[index:index + LOAD_CHUNK])))
        return chunk_targets[item["dp_id"]]

    def ask(item: dict[str, Any], target: Any) -> tuple[dict[str, Any], Any, str | None]:
        try:
            return item, grader.grade(target.id, target.context, target.expected_content or "", item["candidate"]), None
        except LLMGradeFailed as exc:
            return item, None, grader.redact(str(exc))

    def store_one(item: dict[str, Any], answer: Any, error: str | None) -> None:
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

    workers = max(1, int(concurrency))
    window = workers * MAX_WINDOW_PER_WORKER
    queue = enumerate(pending)
    in_flight: set[Future] = set()
    done_count = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audit-llm")
    try:
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < window and not (should_stop and should_stop()):
                index, item = next(queue, (None, None))
                if item is None:
                    exhausted = True
                    break
                in_flight.add(pool.submit(ask, item, target_for(index, item)))
            if not in_flight:
                result.stopped = not exhausted
                break
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                store_one(*future.result())
                done_count += 1
            if on_progress:
                on_progress(done_count, total)
            if should_stop and should_stop() and not exhausted:
                # let what is in flight finish (it is paid for), store it, submit nothing more
                for future in in_flight:
                    store_one(*future.result())
                    done_count += 1
                in_flight = set()
                result.stopped = True
                if on_progress:
                    on_progress(done_count, total)
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        result.seconds = time.perf_counter() - started
        result.n_requests = grader.requests_sent - requests_before
    return result


# ---- the scored table -------------------------------------------------------------------------------------------
@dataclass
class AuditRow:
    """One item with every rater's score on a 0-1 scale (None = not scored)."""

    item_id: int
    dp_id: str
    split: str
    kind: str
    candidate: str
    candidate_chars: int
    reference_chars: int
    keyword: float
    llm: float | None = None
    llm_score: int | None = None
    llm_reason: str | None = None
    llm_error: str | None = None
    llm_model: str | None = None
    human: float | None = None
    n_human: int = 0
    keyword_detail: dict[str, Any] | None = None
    source_dp_id: str | None = None

    @property
    def length_bucket(self) -> str:
        return length_bucket(self.candidate_chars)

    @property
    def difference(self) -> float | None:
        return None if self.llm is None else self.llm - self.keyword


def audit_rows(store: Store, set_id: int) -> list[AuditRow]:
    rows = store.query(
        "SELECT i.id, i.dp_id, i.split, i.kind, i.candidate, i.candidate_chars, i.reference_chars, i.keyword_score, "
        "i.keyword, i.source_dp_id, s.llm_score, s.llm_reason, s.llm_error, s.llm_model, "
        "(SELECT avg(h.score) FROM audit_human h WHERE h.item_id = i.id) AS human, "
        "(SELECT count(*) FROM audit_human h WHERE h.item_id = i.id) AS n_human "
        "FROM audit_items i LEFT JOIN audit_scores s ON s.item_id = i.id WHERE i.set_id = ? ORDER BY i.order_key",
        (set_id,))
    return [AuditRow(
        item_id=r["id"], dp_id=r["dp_id"], split=r["split"], kind=r["kind"], candidate=r["candidate"],
        candidate_chars=r["candidate_chars"], reference_chars=r["reference_chars"], keyword=r["keyword_score"],
        llm=None if r["llm_score"] is None else r["llm_score"] / 10, llm_score=r["llm_score"],
        llm_reason=r["llm_reason"], llm_error=r["llm_error"], llm_model=r["llm_model"],
        human=None if r["human"] is None else r["human"] / 10, n_human=r["n_human"],
        keyword_detail=orjson.loads(r["keyword"]) if r["keyword"] else None, source_dp_id=r["source_dp_id"],
    ) for r in rows]


# ---- agreement ----------------------------------------------------------------------------------------------
@dataclass
class PairAgreement:
    """Two raters over the items both scored."""

    a: str
    b: str
    n: int
    pearson: float | None
    spearman: float | None
    mae: float | None
    kappa: float | None
    mean_a: float | None
    mean_b: float | None

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "n": self.n, "pearson": self.pearson, "spearman": self.spearman,
                "mae": self.mae, "kappa": self.kappa, "mean_a": self.mean_a, "mean_b": self.mean_b}


def pair_agreement(a_name: str, b_name: str, a: Sequence[float | None], b: Sequence[float | None],
                   threshold: float = DEFAULT_THRESHOLD) -> PairAgreement:
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    xs = [x for x, _ in pairs]
    ys = [y for _, y in pairs]
    return PairAgreement(
        a_name, b_name, len(pairs), pearson(xs, ys), spearman(xs, ys), mean_absolute_difference(xs, ys),
        cohen_kappa(passes(xs, threshold), passes(ys, threshold)) if pairs else None, mean(xs), mean(ys),
    )


@dataclass
class GroupAgreement:
    """Keyword vs LLM inside one group (a split, a length bucket, a kind)."""

    group: str
    n_items: int
    agreement: PairAgreement

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "n_items": self.n_items, **self.agreement.to_json()}


@dataclass
class Agreement:
    """Every figure of the audit, keyword grader against LLM grader (the LLM's pass/fail is the reference
    for the confusion matrix and F1), plus humans as a third rater."""

    n_items: int
    n: int  # items with both scores
    n_llm_failed: int
    n_pending: int
    threshold: float
    pearson: float | None
    spearman: float | None
    mae: float | None
    mean_keyword: float | None
    mean_llm: float | None
    confusion: Confusion
    kappa: float | None
    f1: float | None
    sweep: list[SweepPoint]
    best: SweepPoint | None
    by_split: list[GroupAgreement]
    by_length: list[GroupAgreement]
    by_kind: list[GroupAgreement]
    n_human: int
    human: list[PairAgreement]

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n, "n_items": self.n_items, "n_llm_failed": self.n_llm_failed, "n_pending": self.n_pending,
            "threshold": self.threshold, "pearson": self.pearson, "spearman": self.spearman, "mae": self.mae,
            "mean_keyword": self.mean_keyword, "mean_llm": self.mean_llm,
            "confusion": self.confusion.to_json(), "kappa": self.kappa, "f1": self.f1,
            "best_threshold": None if self.best is None else self.best.threshold,
            "best_kappa": None if self.best is None else self.best.kappa,
            "sweep": [{"threshold": p.threshold, "kappa": p.kappa, "f1": p.f1} for p in self.sweep],
            "by_split": [g.to_json() for g in self.by_split],
            "by_length": [g.to_json() for g in self.by_length],
            "by_kind": [g.to_json() for g in self.by_kind],
            "n_human": self.n_human, "human": [h.to_json() for h in self.human],
        }


def _groups(rows: Sequence[AuditRow], key: Callable[[AuditRow], str], order: Sequence[str] | None,
            threshold: float) -> list[GroupAgreement]:
    buckets: dict[str, list[AuditRow]] = {}
    for row in rows:
        buckets.setdefault(key(row), []).append(row)
    names = [n for n in (order or sorted(buckets)) if n in buckets]
    return [GroupAgreement(n, len(buckets[n]), pair_agreement(
        "keyword", "llm", [r.keyword for r in buckets[n]], [r.llm for r in buckets[n]], threshold)) for n in names]


def agreement(rows: Sequence[AuditRow], threshold: float = DEFAULT_THRESHOLD,
              thresholds: Sequence[float] = SWEEP_THRESHOLDS) -> Agreement:
    """The audit's figures from its rows (pure: the page's slider recomputes this without the database)."""
    keyword = [r.keyword for r in rows]
    llm = [r.llm for r in rows]
    both = pair_agreement("keyword", "llm", keyword, llm, threshold)
    reference = passes(llm, threshold)
    rated = passes([k if l is not None else None for k, l in zip(keyword, llm)], threshold)
    confusion = binary_confusion(reference, rated)
    sweep = threshold_sweep(llm, keyword, reference_threshold=threshold, thresholds=thresholds)
    judged = [r for r in rows if r.human is not None]
    human = [
        pair_agreement("human", "llm", [r.human for r in judged], [r.llm for r in judged], threshold),
        pair_agreement("human", "keyword", [r.human for r in judged], [r.keyword for r in judged], threshold),
    ]
    return Agreement(
        n_items=len(rows), n=both.n, n_llm_failed=sum(1 for r in rows if r.llm is None and r.llm_error),
        n_pending=sum(1 for r in rows if r.llm is None and not r.llm_error), threshold=threshold,
        pearson=both.pearson, spearman=both.spearman, mae=both.mae, mean_keyword=mean(keyword), mean_llm=mean(llm),
        confusion=confusion, kappa=both.kappa, f1=f1_binary(confusion), sweep=sweep, best=best_threshold(sweep),
        by_split=_groups(rows, lambda r: r.split, None, threshold),
        by_length=_groups(rows, lambda r: r.length_bucket, [b[0] for b in LENGTH_BUCKETS], threshold),
        by_kind=_groups(rows, lambda r: r.kind, list(KINDS), threshold),
        n_human=len(judged), human=human,
    )


def disagreements(rows: Sequence[AuditRow], limit: int | None = None) -> list[AuditRow]:
    """Items scored by both graders, the largest |LLM - keyword| first (ties: the set's order)."""
    scored = [r for r in rows if r.llm is not None]
    scored.sort(key=lambda r: -abs(r.llm - r.keyword))  # stable: ties keep the seeded order
    return scored[:limit] if limit is not None else scored


# ---- human judgements ---------------------------------------------------------------------------------------------
def record_human(store: Store, item_id: int, rater: str, score: int) -> None:
    """A person's 0-10 judgement of one item (their second judgement of the same item replaces the first)."""
    rater = (rater or "").strip()
    if not rater:
        raise AuditError("a judgement needs the rater's name", "type a name or initials")
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
        raise AuditError(f"a judgement is a whole number from 0 to 10, not {score!r}")
    if not store.scalar("SELECT 1 FROM audit_items WHERE id = ?", (item_id,)):
        raise AuditError(f"no audit item {item_id}")
    with store.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO audit_human(item_id, rater, score, created_at) VALUES (?, ?, ?, ?)",
                     (item_id, rater, score, _now()))


def next_blind_item(store: Store, set_id: int, rater: str) -> AuditRow | None:
    """The first item (in the set's seeded order) this rater has not judged; its scores are not loaded, so
    a page cannot show them by accident before the judgement."""
    rows = store.query(
        "SELECT id, dp_id, split, kind, candidate, candidate_chars, reference_chars FROM audit_items i "
        "WHERE set_id = ? AND NOT EXISTS (SELECT 1 FROM audit_human h WHERE h.item_id = i.id AND h.rater = ?) "
        "ORDER BY order_key LIMIT 1", (set_id, (rater or "").strip()))
    if not rows:
        return None
    r = rows[0]
    return AuditRow(item_id=r["id"], dp_id=r["dp_id"], split=r["split"], kind="hidden", candidate=r["candidate"],
                    candidate_chars=r["candidate_chars"], reference_chars=r["reference_chars"], keyword=float("nan"))


def human_judgements(store: Store, set_id: int) -> list[dict[str, Any]]:
    return store.query(
        "SELECT h.item_id, h.rater, h.score, h.created_at, i.dp_id, i.kind FROM audit_human h "
        "JOIN audit_items i ON i.id = h.item_id WHERE i.set_id = ? ORDER BY h.id", (set_id,))


# ---- export ---------------------------------------------------------------------------------------------------
CSV_COLUMNS = ("item_id", "dp_id", "split", "kind", "candidate_chars", "length_bucket", "keyword_score",
               "llm_score", "abs_difference", "llm_reason", "llm_error", "llm_model", "human_score", "n_human",
               "candidate")


def _cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (=, +, -, @ first) gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: Sequence[AuditRow]) -> str:
    """The audit table as CSV: scores on a 0-1 scale (LLM = integer / 10, human = mean of raters / 10)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([
            r.item_id, r.dp_id, r.split, r.kind, r.candidate_chars, r.length_bucket, round(r.keyword, 6),
            r.llm, None if r.llm is None else round(abs(r.llm - r.keyword), 6), _cell(r.llm_reason or ""),
            _cell(r.llm_error or ""), r.llm_model or "", None if r.human is None else round(r.human, 6), r.n_human,
            _cell(r.candidate),
        ])
    return out.getvalue()


def set_counts(store: Store, set_id: int) -> dict[str, int]:
    """Items, LLM-scored, failed, pending and human-judged counts of a set (cheap: for the page header)."""
    row = store.query(
        "SELECT count(*) AS items, count(s.llm_score) AS llm_scored, "
        "sum(CASE WHEN s.llm_score IS NULL AND s.llm_error IS NOT NULL THEN 1 ELSE 0 END) AS llm_failed, "
        "(SELECT count(DISTINCT h.item_id) FROM audit_human h JOIN audit_items j ON j.id = h.item_id "
        " WHERE j.set_id = ?) AS human_judged "
        "FROM audit_items i LEFT JOIN audit_scores s ON s.item_id = i.id WHERE i.set_id = ?", (set_id, set_id))[0]
    out = {k: int(v or 0) for k, v in row.items()}
    out["pending"] = out["items"] - out["llm_scored"]
    return out


__all__ = [
    "AuditError", "AuditRow", "AuditSet", "Agreement", "BuildResult", "Estimate", "GradeResult", "KINDS", "SOURCES",
    "agreement", "audit_rows", "build_audit_set", "delete_audit_set", "disagreements", "estimate", "get_audit_set",
    "grade_audit_set", "half_reference", "human_judgements", "list_audit_sets", "next_blind_item", "record_human",
    "set_counts", "to_csv",
]
