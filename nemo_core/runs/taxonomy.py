"""The failure taxonomy: one category for every stored prediction, computed here and stored beside it.

Categories (`CATEGORIES`, in the order pages list them), decided in this order so each prediction gets
exactly one:

1. `runner_error` — no action was graded because the run failed to produce or read one: a timeout, an
   API error, or an action in none of the accepted forms (sub-kinds `timeout`, `api_error`,
   `invalid_action`, `other`). Read from the prediction's `error` column (set by `run-model` and `grade`).
2. `ungradeable_reference` — the reference itself cannot be graded (SPEC §4: `reward` is None). Not a
   model failure and not a silent 0; it is counted apart so the numbers add up to the run's size.
3. `wrong_action_type` — a call where a message was expected (`call_for_message`) or a message where a
   call was expected (`message_for_call`).
4. `hallucinated_tool` — a call whose name is not among the task's tools.
5. `wrong_tool` — a call of a tool the task offers, but not the expected one.
6. `invalid_arguments_json` — the expected tool, with arguments that are not a JSON object.
7. `argument_errors` — the expected tool, with argument errors counted per kind: missing key, extra key,
   wrong value, wrong type (a mismatched value whose JSON type differs, e.g. `"5"` vs `5`; numbers are one
   type, as in SPEC §4).
8. `low_message_score` — a message whose score is below `LOW_MESSAGE_SCORE` (0.5: below half marks from
   the keyword or LLM grader is treated as a failed reply).
9. `correct` — a call with reward 1.0, or a message scoring at least `LOW_MESSAGE_SCORE`.

For wrong and hallucinated tools the argument error counts are stored too (against the expected call's
arguments), as a secondary detail; only the category counts in the tallies.

`classify` is pure. `grade` classifies each prediction as it grades it (the breakdown and the task's tools
are in memory then, `classify_graded`) and its run's owner (`owner.py`) stores the row with the prediction
(`start_taxonomy`, `add_classified`) and indexes the table when the run finishes (`ensure_taxonomy` ->
`index_taxonomy`). `compute_taxonomy(store, run_id)` (re)computes the categories of a whole run from the
stored breakdowns, for the other runs; it reads each conversation's tool list only for calls whose name is
not the expected one (the only case where "is it among the task's tools" matters), once per conversation.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import datetime, timezone
from dataclasses import dataclass
from typing import Any

import orjson

from ..data.grading_view import read_views
from ..data.records import dumps_bytes, json_kind, normalise_tools
from ..data.compression import decompress_json
from ..data.store import Store
from ..data.tuning import BULK_CACHE_KIB, tuned

TAXONOMY_VERSION = "3"  # bump when a rule changes: stored taxonomies are then recomputed on use
LOW_MESSAGE_SCORE = 0.5

CORRECT = "correct"
WRONG_ACTION_TYPE = "wrong_action_type"
HALLUCINATED_TOOL = "hallucinated_tool"
WRONG_TOOL = "wrong_tool"
ARGUMENT_ERRORS = "argument_errors"
INVALID_ARGUMENTS_JSON = "invalid_arguments_json"
LOW_MESSAGE_SCORE_CATEGORY = "low_message_score"
RUNNER_ERROR = "runner_error"
UNGRADEABLE = "ungradeable_reference"

CATEGORIES: dict[str, str] = {
    CORRECT: "Correct (a call with reward 1.0, or a message scoring at least 0.5)",
    WRONG_ACTION_TYPE: "Wrong action type: a call where a message was expected, or the reverse",
    HALLUCINATED_TOOL: "Hallucinated tool: the name is not among the task's tools",
    WRONG_TOOL: "Wrong tool: a tool the task offers, but not the expected one",
    ARGUMENT_ERRORS: "Right tool with argument errors (missing / extra key, wrong value, wrong type)",
    INVALID_ARGUMENTS_JSON: "Invalid arguments JSON: the arguments are not a JSON object",
    LOW_MESSAGE_SCORE_CATEGORY: f"Low message score: below {LOW_MESSAGE_SCORE}",
    RUNNER_ERROR: "Runner error: timeout, API error, or an action that could not be read",
    UNGRADEABLE: "Not graded: the reference itself cannot be graded (not a model failure)",
}
FAILURE_CATEGORIES = tuple(c for c in CATEGORIES if c not in (CORRECT, UNGRADEABLE))
SUB_KINDS = {
    WRONG_ACTION_TYPE: ("call_for_message", "message_for_call"),
    RUNNER_ERROR: ("timeout", "api_error", "invalid_action", "other"),
}

# Each run's categories live in a table of their own, `taxonomy_run_<id>` (`taxonomy_table`), with three
# indexes, each covering the queries it serves, so no page query on a 1.2 M-prediction run reads the table:
# failures by category with a reward range / split (and the per-category and per-split counts); failures
# by expected tool (and the confusion of expected vs predicted tool); two runs joined by decision point
# (compare). One table per run because a run's rows are written all at once: appended to a table without
# indexes and indexed at the end, which SQLite does by sorting (measured on 1.2 M rows: 4.7 s for the three
# indexes, against 24 s to keep them up to date row by row in one shared table). Deleting a run drops its
# table instead of deleting a million index entries one by one. Which runs have one, under which rules, and
# whether it is indexed yet: `taxonomy_state` (a table of `data/schema.py`).
_TABLE_COLUMNS = ("prediction_id", "dp_id", "category", "sub_kind", "split", "action_type", "expected_tool",
                  "predicted_tool", "reward", "n_missing", "n_extra", "n_wrong_value", "n_wrong_type")
_TABLE_DDL = """CREATE TABLE IF NOT EXISTS {t} (
    prediction_id INTEGER PRIMARY KEY,
    dp_id TEXT NOT NULL,
    category TEXT NOT NULL,
    sub_kind TEXT,
    split TEXT,
    action_type TEXT,
    expected_tool TEXT,
    predicted_tool TEXT,
    reward REAL,
    n_missing INTEGER NOT NULL DEFAULT 0,
    n_extra INTEGER NOT NULL DEFAULT 0,
    n_wrong_value INTEGER NOT NULL DEFAULT 0,
    n_wrong_type INTEGER NOT NULL DEFAULT 0
)"""
_INDEX_DDL = (
    "CREATE INDEX IF NOT EXISTS {t}_by_category ON {t}(category, reward, split, action_type, expected_tool, sub_kind)",
    "CREATE INDEX IF NOT EXISTS {t}_by_tool ON {t}(expected_tool, category, reward, predicted_tool, split)",
    "CREATE INDEX IF NOT EXISTS {t}_by_dp ON {t}(dp_id, reward)",
)


def taxonomy_table(run_id: int) -> str:
    """The name of a run's taxonomy table (an identifier built from an integer only, so safe in SQL text)."""
    return f"taxonomy_run_{int(run_id)}"


def classification_fields(c: "Classification", expected_tool: str | None) -> tuple:
    """A classification as a plain tuple (what a grading worker sends back): category, sub_kind,
    expected_tool, predicted_tool, and the four argument error counts. `expected_tool` fills in when the
    classification has none (a prediction without a breakdown: the decision point's expected tool)."""
    return (c.category, c.sub_kind, c.expected_tool or expected_tool, c.predicted_tool, c.n_missing, c.n_extra,
            c.n_wrong_value, c.n_wrong_type)


def taxonomy_row(prediction_id: int, dp_id: str, fields: tuple, split: str | None, action_type: str | None,
                 reward: float | None) -> tuple:
    """One row of a taxonomy table (`_TABLE_COLUMNS` order) from `classification_fields` and the
    prediction's own columns."""
    category, sub_kind, expected_tool, predicted_tool, *counts = fields
    return (prediction_id, dp_id, category, sub_kind, split, action_type, expected_tool, predicted_tool, reward, *counts)



@dataclass(frozen=True, slots=True)
class Classification:
    """One prediction's place in the taxonomy."""

    category: str
    sub_kind: str | None = None
    expected_tool: str | None = None
    predicted_tool: str | None = None
    n_missing: int = 0
    n_extra: int = 0
    n_wrong_value: int = 0
    n_wrong_type: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "sub_kind": self.sub_kind, "expected_tool": self.expected_tool,
                "predicted_tool": self.predicted_tool, "n_missing": self.n_missing, "n_extra": self.n_extra,
                "n_wrong_value": self.n_wrong_value, "n_wrong_type": self.n_wrong_type}


# The error texts `model_runner` stores start with the failure's kind in words ("timeout: ...").
_RUNNER_KINDS = {
    "timeout": "timeout",
    "rate limited": "api_error", "server error": "api_error", "connection": "api_error", "auth": "api_error",
    "bad request": "api_error", "context too long": "api_error", "invalid response": "api_error",
    "empty reply": "invalid_action", "invalid action": "invalid_action",
}


def runner_error_kind(error: str) -> str:
    """timeout / api_error / invalid_action / other, from the error text a runner or `grade` stored."""
    text = error.strip().lower()
    head = text.split(":", 1)[0].strip()
    if head in _RUNNER_KINDS:
        return _RUNNER_KINDS[head]
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if text.startswith("invalid action") or "not a json object" in text or "malformed" in text:
        return "invalid_action"
    if any(word in text for word in ("api", "http", "connection", "rate limit", "status", "server", "openai")):
        return "api_error"
    return "other"


def argument_error_counts(keys: list[dict[str, Any]]) -> tuple[int, int, int, int]:
    """(missing, extra, wrong value, wrong type) from a breakdown's per-key list."""
    missing = extra = wrong_value = wrong_type = 0
    for key in keys:
        status = key.get("status")
        if status == "missing":
            missing += 1
        elif status == "extra":
            extra += 1
        elif status == "mismatch":
            if json_kind(key.get("expected")) != json_kind(key.get("submitted")):
                wrong_type += 1
            else:
                wrong_value += 1
    return missing, extra, wrong_value, wrong_type


def _as_dict(breakdown: Any) -> dict[str, Any] | None:
    if breakdown is None or isinstance(breakdown, dict):
        return breakdown
    return breakdown.to_json()


def needs_tool_names(breakdown: Any) -> bool:
    """Whether classifying this breakdown needs the task's tool names (a call of another tool than expected)."""
    b = _as_dict(breakdown)
    return bool(b) and b.get("submitted_type") == "function_call" and b.get("expected_type") == "function_call" \
        and b.get("reward") is not None and not b.get("name_match")


def classify(breakdown: Any, task_tool_names: Collection[str] | None = None, *, error: str | None = None,
             low_message_score: float = LOW_MESSAGE_SCORE) -> Classification:
    """The category of one prediction from its breakdown (`grading.Breakdown` or its JSON).

    `task_tool_names`: the names of the decision point's task tools; needed only when the submitted call
    names another tool than the expected one (`needs_tool_names`). When it is None there, the breakdown's
    schema note ("not in the task's tool list") decides, and without one the call counts as a wrong tool.
    `error`: the prediction's stored error (a runner or input failure, when there is no breakdown).
    """
    b = _as_dict(breakdown)
    if b is None:
        return Classification(RUNNER_ERROR, runner_error_kind(error or ""))
    expected_type = b.get("expected_type")
    submitted_type = b.get("submitted_type")
    reward = b.get("reward")
    expected_tool = b.get("expected_name")
    predicted_tool = b.get("submitted_name") if submitted_type == "function_call" else None
    if reward is None:
        if b.get("reason") == "ungradeable_reference" or b.get("action_type_match") == 1:
            return Classification(UNGRADEABLE, None, expected_tool, predicted_tool)
        return Classification(RUNNER_ERROR, runner_error_kind(error or b.get("reason") or ""), expected_tool,
                              predicted_tool)
    if expected_type and submitted_type and expected_type != submitted_type:
        sub = "call_for_message" if submitted_type == "function_call" else "message_for_call"
        return Classification(WRONG_ACTION_TYPE, sub, expected_tool, predicted_tool)
    if expected_type == "message" or submitted_type == "message":
        category = CORRECT if reward >= low_message_score else LOW_MESSAGE_SCORE_CATEGORY
        return Classification(category)
    keys = b.get("keys") or []
    invalid = b.get("reason") == "invalid_arguments"
    counts = (0, 0, 0, 0) if invalid else argument_error_counts(keys)
    if not b.get("name_match"):
        if task_tool_names is not None:
            hallucinated = predicted_tool not in task_tool_names
        else:
            hallucinated = any("not in the task's tool list" in (e or "") for e in b.get("schema_errors") or [])
        category = HALLUCINATED_TOOL if hallucinated else WRONG_TOOL
        return Classification(category, None, expected_tool, predicted_tool, *counts)
    if invalid:
        return Classification(INVALID_ARGUMENTS_JSON, None, expected_tool, predicted_tool)
    if reward >= 1.0 and not any(counts):
        return Classification(CORRECT, None, expected_tool, predicted_tool)
    return Classification(ARGUMENT_ERRORS, None, expected_tool, predicted_tool, *counts)


def classify_graded(line: dict[str, Any], toolset: Any, expected_tool: str | None) -> tuple:
    """`classification_fields` of a graded prediction, from its result line (`Breakdown.to_json`) and the task's
    tools (`toolset.names` is read only when it decides the category): what `grade` and `serve-env --record`
    store beside each prediction as they grade it."""
    return classification_fields(classify(line, toolset.names if needs_tool_names(line) else None), expected_tool)


# ---- computing and storing a run's taxonomy ----------------------------------------------------------------
BATCH = 20_000


class _ToolNames:
    """Task tool names per decision point, read from the grading views (once each, cached)."""

    def __init__(self, store: Store, max_conversations: int = 20_000):
        self.store = store
        self._by_conversation: dict[int, frozenset[str]] = {}
        self._by_tools: dict[bytes, frozenset[str]] = {}
        self._max = max_conversations

    def for_ids(self, dp_ids: list[str]) -> dict[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        rows = self.store.fetch_in("SELECT id, conversation_id FROM decision_points WHERE id IN ({marks})",
                                   list(dict.fromkeys(dp_ids)))
        need = sorted({c for _, c in rows if c not in self._by_conversation})
        if len(self._by_conversation) + len(need) > self._max:
            self._by_conversation.clear()
        # the tool list from each conversation's grading view, or from the conversation where it has none
        tool_lists = {conv_id: tools for conv_id, (tools, _turns) in read_views(self.store, need).items()}
        rest = [c for c in need if c not in tool_lists]
        for conv_id, body in self.store.fetch_in("SELECT id, body FROM conversations WHERE id IN ({marks})", rest):
            tool_lists[conv_id] = decompress_json(body).get("tools")
        for conv_id, tools in tool_lists.items():
            key = dumps_bytes(tools or [])
            names = self._by_tools.get(key)
            if names is None:
                names = self._by_tools[key] = frozenset(normalise_tools(tools).names)
            self._by_conversation[conv_id] = names
        for dp_id, conv in rows:
            out[dp_id] = self._by_conversation.get(conv, frozenset())
        return out


# Only the breakdown fields `classify` reads, extracted by SQLite (faster than decoding every breakdown in
# Python); the per-key list only for calls of the right action type, the only ones whose keys are counted.
# `+p.run_id` keeps SQLite on the rowid range (a run's predictions are inserted together): through the
# run_id index it would sort the whole run again for every batch.
_BATCH_SQL = """
SELECT p.id, p.dp_id, p.split, p.action_type, p.reward, p.error, p.action_type_match, p.name_match,
       p.submitted_type, p.reason, p.breakdown IS NULL AS no_breakdown, d.expected_tool,
       p.breakdown ->> '$.expected_type' AS expected_type,
       p.breakdown ->> '$.expected_name' AS expected_name,
       p.breakdown ->> '$.submitted_name' AS submitted_name,
       CASE WHEN p.action_type_match = 1 AND p.submitted_type = 'function_call' AND p.reward IS NOT NULL
                 AND p.reward < 1.0 THEN p.breakdown -> '$.keys' END AS keys,
       CASE WHEN p.name_match = 0 AND p.action_type_match = 1 THEN p.breakdown -> '$.schema_errors' END AS schema_errors
FROM predictions p LEFT JOIN decision_points d ON d.id = p.dp_id
WHERE +p.run_id = ? AND p.id > ? AND p.id <= ? ORDER BY p.id LIMIT ?
"""


def _light_breakdown(row: dict[str, Any]) -> dict[str, Any] | None:
    if row["no_breakdown"]:
        return None
    return {
        "reward": row["reward"], "action_type_match": row["action_type_match"], "name_match": row["name_match"],
        "expected_type": row["expected_type"] or row["action_type"], "submitted_type": row["submitted_type"],
        "reason": row["reason"], "expected_name": row["expected_name"], "submitted_name": row["submitted_name"],
        "keys": orjson.loads(row["keys"]) if row["keys"] else [],
        "schema_errors": orjson.loads(row["schema_errors"]) if row["schema_errors"] else [],
    }


@dataclass
class TaxonomyResult:
    run_id: int
    n: int
    seconds: float


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def start_taxonomy(conn: Any, run_id: int) -> None:
    """Inside a write transaction: an empty taxonomy table for the run (replacing any it had) and its state
    at 0 predictions, not indexed. Rows then go in with `add_classified`; `index_taxonomy` finishes it."""
    t = taxonomy_table(run_id)
    conn.execute(f"DROP TABLE IF EXISTS {t}")
    conn.execute(_TABLE_DDL.format(t=t))
    conn.execute("INSERT OR REPLACE INTO taxonomy_state(run_id, version, n_predictions, computed_at, seconds, indexed) "
                 "VALUES (?, ?, 0, ?, NULL, 0)", (run_id, TAXONOMY_VERSION, _now()))


def start_live_taxonomy(conn: Any, run_id: int) -> None:
    """Inside a write transaction: `start_taxonomy` for a run written a few rows at a time while pages read
    it (`serve-env --record`): its table is indexed from the start and marked so, and each batch adds its
    rows with `add_classified` in the transaction that stores its predictions, so the taxonomy is current
    after every commit (indexing per row costs microseconds at that pace; `grade` writes a million rows at
    once and indexes at the end instead)."""
    start_taxonomy(conn, run_id)
    t = taxonomy_table(run_id)
    for ddl in _INDEX_DDL:
        conn.execute(ddl.format(t=t))
    conn.execute("UPDATE taxonomy_state SET indexed = 1 WHERE run_id = ?", (run_id,))


def add_classified(conn: Any, run_id: int, rows: list[tuple], *, replace: bool = False) -> None:
    """Inside the write transaction that stores the predictions themselves (so the two never disagree):
    their taxonomy rows (`taxonomy_row`), counted in the run's state. `replace` for a recomputation that
    may meet rows a live writer stored meanwhile."""
    if not rows:
        return
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    conn.executemany(f"{verb} INTO {taxonomy_table(run_id)}({', '.join(_TABLE_COLUMNS)}) "
                     f"VALUES ({', '.join('?' * len(_TABLE_COLUMNS))})", rows)
    if not replace:
        conn.execute("UPDATE taxonomy_state SET n_predictions = n_predictions + ? WHERE run_id = ?", (len(rows), run_id))


def index_taxonomy(store: Store, run_id: int, *, started: float | None = None) -> TaxonomyResult:
    """Build the run's three indexes (by sorting: fast on a full table, in a large page cache), refresh the
    planner's statistics and mark the state indexed. (The run's owner then stores the Runs page's aggregates:
    `runs.owner.finish_run`.)"""
    started = time.perf_counter() if started is None else started
    t = taxonomy_table(run_id)
    with tuned(store, cache_kib=BULK_CACHE_KIB), store.transaction() as conn:  # the sorts of CREATE INDEX use it
        for ddl in _INDEX_DDL:
            conn.execute(ddl.format(t=t))
        n = conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        conn.execute("UPDATE taxonomy_state SET n_predictions = ?, indexed = 1, computed_at = ?, seconds = ? "
                     "WHERE run_id = ?", (n, _now(), time.perf_counter() - started, run_id))
    store.analyze(t)  # sampled statistics (quick), so the planner picks the covering index per query
    return TaxonomyResult(run_id, n, time.perf_counter() - started)


def drop_taxonomy(conn: Any, run_id: int) -> None:
    """Inside a write transaction: the run's taxonomy table and state (when its run is deleted)."""
    conn.execute(f"DROP TABLE IF EXISTS {taxonomy_table(run_id)}")
    conn.execute("DELETE FROM taxonomy_state WHERE run_id = ?", (run_id,))


def compute_taxonomy(store: Store, run_id: int, *, low_message_score: float = LOW_MESSAGE_SCORE) -> TaxonomyResult:
    """(Re)compute and store the category of every prediction of a run (replacing what was stored), from
    the stored breakdowns: for runs written without classifying as they went (model runs) and after a
    taxonomy version change. `grade_file.grade_file` (grade, uploads, human answers saved as a run) classifies
    as it grades instead."""
    started = time.perf_counter()
    names = _ToolNames(store)
    with store.transaction() as conn:
        start_taxonomy(conn, run_id)
    bounds = store.query("SELECT min(id) AS lo, max(id) AS hi FROM predictions WHERE run_id = ?", (run_id,))[0]
    last_id, hi = (bounds["lo"] or 1) - 1, bounds["hi"] or 0
    while True:
        rows = store.query(_BATCH_SQL, (run_id, last_id, hi, BATCH))
        if not rows:
            break
        last_id = rows[-1]["id"]
        breakdowns = [_light_breakdown(r) for r in rows]
        lookup = [r["dp_id"] for r, b in zip(rows, breakdowns) if needs_tool_names(b)]
        tool_names = names.for_ids(lookup) if lookup else {}
        out = [taxonomy_row(r["id"], r["dp_id"], classification_fields(
                   classify(b, tool_names.get(r["dp_id"]), error=r["error"], low_message_score=low_message_score),
                   r["expected_tool"]), r["split"], r["action_type"], r["reward"])
               for r, b in zip(rows, breakdowns)]
        with store.transaction() as conn:  # OR REPLACE: a live writer may have classified some of these itself
            add_classified(conn, run_id, out, replace=True)
    return index_taxonomy(store, run_id, started=started)


def taxonomy_is_current(store: Store, run_id: int) -> bool:
    """Whether the stored taxonomy covers the run's predictions as they are now, under this version, and is
    indexed (a table still being filled by a running `grade` is not: pages then wait for it)."""
    state = store.query("SELECT version, n_predictions, indexed FROM taxonomy_state WHERE run_id = ?", (run_id,))
    if not state or state[0]["version"] != TAXONOMY_VERSION or not state[0]["indexed"]:
        return False
    n = store.scalar("SELECT n_predictions FROM runs WHERE id = ?", (run_id,))
    status = store.scalar("SELECT status FROM runs WHERE id = ?", (run_id,))
    if status == "running":  # counts on the runs row are not final yet: count the rows
        n = store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", (run_id,))
    return state[0]["n_predictions"] == n


def ensure_taxonomy(store: Store, run_id: int) -> TaxonomyResult | None:
    """Make the run's taxonomy current; None when it already was. A table that holds every prediction but
    has no indexes yet (filled while grading) is only indexed; anything else is recomputed."""
    if taxonomy_is_current(store, run_id):
        return None
    state = store.query("SELECT version, n_predictions, indexed FROM taxonomy_state WHERE run_id = ?", (run_id,))
    if state and state[0]["version"] == TAXONOMY_VERSION and not state[0]["indexed"]:
        n = store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", (run_id,))
        if state[0]["n_predictions"] == n:
            return index_taxonomy(store, run_id)
    return compute_taxonomy(store, run_id)
