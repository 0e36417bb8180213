"""Runs and their scored predictions, in the store.

A *run* is one set of predictions graded together: a `grade` of a prediction file, a model run (issue 5),
an upload, or a human's answers. It records what it was graded with (grader, grader model, rule version),
so its scores stay explainable. Every prediction keeps the submitted action, the input's extra keys, the
score columns people filter on, and the whole breakdown as JSON.

Summaries are computed in SQL as value counts, and the confidence intervals from those counts
(`metrics.mean_ci_counts`), so summarising a million predictions never loads a million rows.

This module keeps the rows (runs, predictions) and nothing more: making a run (create, store in batches,
finish, classify, summarise) is its owner's, `owner.py`, above this module and `taxonomy.py` / `analysis.py`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from ..data.records import dumps_bytes, loads_json
from ..base.errors import NemoError
from ..base.metrics import MeanCI, mean_ci_counts
from ..data.schema import RUN_KINDS
from ..data.store import Store, current_process, process_gone
from .taxonomy import drop_taxonomy, taxonomy_is_current, taxonomy_table

MAX_STORED_PROBLEMS = 1000

PREDICTION_COLUMNS = (
    "run_id", "dp_id", "line", "split", "action_type", "submitted_type", "action", "extra", "reward",
    "action_type_match", "name_match", "arg_match", "grader", "grader_model", "reason", "breakdown", "error",
    "latency_ms",
)
_INSERT_SQL = (f"INSERT INTO predictions({', '.join(PREDICTION_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(PREDICTION_COLUMNS))})")


class RunError(NemoError):
    """A run that cannot be created or found."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return dumps_bytes(value).decode()


@dataclass
class Run:
    id: int
    name: str
    created_at: str
    finished_at: str | None
    status: str
    kind: str
    source_file: str | None
    grader: str
    grader_model: str | None
    rule_version: str
    model: str | None
    n_lines: int
    n_predictions: int
    n_graded: int
    n_problems: int
    problems: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Run":
        row = dict(row)
        row["problems"] = orjson.loads(row["problems"]) if row.get("problems") else []
        row["settings"] = orjson.loads(row["settings"]) if row.get("settings") else {}
        return cls(**row)


def create_run(store: Store, name: str, *, kind: str, grader: str, rule_version: str, source_file: str | None = None,
               grader_model: str | None = None, model: str | None = None, settings: dict | None = None,
               n_lines: int = 0) -> int:
    """A new run; its id. A name already used raises `RunError` (names are how people refer to runs), also
    when another process takes it at the same moment. `n_lines`: how many it will cover, when known."""
    if kind not in RUN_KINDS:
        raise RunError(f"unknown run kind {kind!r}", f"one of {', '.join(RUN_KINDS)}")
    if not name or not name.strip():
        raise RunError("a run needs a name", "pass --run NAME")
    exists = RunError(f"a run named {name!r} already exists", "choose another --run name")
    if store.scalar("SELECT 1 FROM runs WHERE name = ?", (name,)):
        raise exists
    try:
        with store.transaction() as conn:
            return insert_run(conn, name, kind=kind, grader=grader, rule_version=rule_version, source_file=source_file,
                              grader_model=grader_model, model=model, settings=settings, n_lines=n_lines)
    except sqlite3.IntegrityError:  # the name was free a moment ago: another process created it since
        raise exists from None


def insert_run(conn: Any, name: str, *, kind: str, grader: str, rule_version: str, source_file: str | None = None,
               grader_model: str | None = None, model: str | None = None, settings: dict | None = None,
               n_lines: int = 0, process: dict | None = None) -> int:
    """Inside a write transaction: a new `running` run; its id. For a writer that must create a run in the
    same transaction as its first predictions (`create_run` checks the name first and opens one).
    `process` is the process that owns the run (default this one; see `mark_abandoned_runs`)."""
    if kind not in RUN_KINDS:
        raise RunError(f"unknown run kind {kind!r}", f"one of {', '.join(RUN_KINDS)}")
    settings = {**(settings or {}), "process": process or current_process()}
    return conn.execute(
        "INSERT INTO runs(name, created_at, kind, source_file, grader, grader_model, rule_version, model, "
        "settings, n_lines) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (name, _now(), kind, source_file, grader, grader_model, rule_version, model, _dumps(settings), n_lines),
    ).lastrowid


def check_not_in_progress(name: str, status: str, settings: str | dict | None) -> None:
    """`RunError` when a run is `running` in a process that is still there (this machine: checked; another
    machine: assumed), so a second process does not resume or replace it at the same time (issue 20)."""
    if status != "running":
        return
    try:
        data = orjson.loads(settings) if isinstance(settings, (str, bytes)) else settings
    except orjson.JSONDecodeError:
        data = None
    owner = data.get("process") if isinstance(data, dict) else None
    if not isinstance(owner, dict) or process_gone(owner):  # no owner recorded (an old run): as before, go on
        return
    where = f"process {owner.get('pid')}"
    if owner.get("host") != current_process()["host"]:
        where += f" on {owner.get('host')}"
    raise RunError(f"run {name!r} is being run right now by {where}",
                   "wait for it to finish (or stop it), then run this command again")


def claim_run(conn: Any, run_id: int, *, n_lines: int | None = None) -> None:
    """Inside a write transaction: the run is running again, in this process (a resumed run); `n_lines`:
    how many it now covers, when known."""
    conn.execute("UPDATE runs SET status = 'running', finished_at = NULL, n_lines = coalesce(?, n_lines), "
                 "settings = json_set(coalesce(settings, '{}'), '$.process', json(?)) WHERE id = ?",
                 (n_lines, _dumps(current_process()), run_id))


def replace_unfinished_run(store: Store, name: str, *, kind: str, source_file: str) -> int | None:
    """Before grading `source_file` into a run called `name`: when that name belongs to an earlier run of the
    same kind and file that did not finish (interrupted, failed, or `running` in a process that is gone),
    delete it so the file is graded again, whole, under the same name; how many predictions it held (None
    when nothing was replaced). A run still in progress raises `RunError`; any other run of that name is
    left for `create_run` to refuse."""
    rows = store.query("SELECT id, kind, status, source_file, settings FROM runs WHERE name = ?", (name,))
    if not rows:
        return None
    row = rows[0]
    check_not_in_progress(name, row["status"], row["settings"])
    if row["kind"] != kind or row["status"] == "completed" or not _same_file(row["source_file"], source_file):
        return None
    n = count_predictions(store, row["id"])
    delete_run(store, row["id"])
    return n


def _same_file(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


def runs_named(store: Store, names: list[str]) -> dict[str, Run]:
    """The runs among `names` that exist, by name."""
    if not names:
        return {}
    cols = [f.name for f in Run.__dataclass_fields__.values()]
    rows = store.fetch_in(f"SELECT {', '.join(cols)} FROM runs WHERE name IN ({{marks}})", list(names))
    return {row[1]: Run.from_row(dict(zip(cols, row))) for row in rows}


def predicted_pairs(store: Store, run_ids: list[int], dp_ids: list[str]) -> set[tuple[int, str]]:
    """(run id, decision point id) for the pairs of these runs and decision points that hold a prediction
    (through the (run_id, dp_id) index; a run holds at most one prediction per decision point)."""
    if not run_ids or not dp_ids:
        return set()
    marks = ", ".join("?" * len(run_ids))
    return {(r, d) for r, d in store.fetch_in(
        f"SELECT run_id, dp_id FROM predictions WHERE run_id IN ({marks}) AND dp_id IN ({{marks}})",
        list(dict.fromkeys(dp_ids)), [int(r) for r in run_ids])}


def mark_abandoned_runs(store: Store) -> int:
    """Finish as `interrupted` the runs still `running` whose process on this machine is gone (killed before
    it could record how it ended), with their counts; how many. Their taxonomy is left to the pages (as
    for any finished run that has none yet), so listing runs stays quick."""
    if store.readonly:
        return 0
    gone = [r["id"] for r in store.query("SELECT id, settings FROM runs WHERE status = 'running'")
            if process_gone((orjson.loads(r["settings"]) if r["settings"] else {}).get("process"))]
    for run_id in gone:
        record_finish(store, run_id, status="interrupted")
    return len(gone)


def unique_run_name(store: Store, base: str) -> str:
    """`base`, or `base-2`, `base-3`, ... — the first not yet used."""
    name, n = base, 1
    while store.scalar("SELECT 1 FROM runs WHERE name = ?", (name,)):
        n += 1
        name = f"{base}-{n}"
    return name


def prediction_row(run_id: int, dp_id: str, breakdown: Any | None, *, action: dict | None = None,
                   extra: dict | None = None, split: str | None = None, action_type: str | None = None,
                   error: str | None = None, latency_ms: float | None = None, line: int | None = None,
                   breakdown_json: str | None = None) -> tuple:
    """One `predictions` row (in `PREDICTION_COLUMNS` order) from a `grading.Breakdown` (or None when the
    action could not be graded, with `error` saying why). `breakdown_json` may pass the breakdown's JSON
    already encoded (the `grade` command has it as the result line)."""
    if breakdown is None:
        submitted = action.get("type") if isinstance(action, dict) else None  # any JSON value: only a name is kept
        return (run_id, dp_id, line, split, action_type, submitted if isinstance(submitted, str) else None,
                _dumps(action), _dumps(extra or None), None, None, None, None, None, None, None, None, error, latency_ms)
    return (
        run_id, dp_id, line, split, action_type or breakdown.expected_type, breakdown.submitted_type, _dumps(action),
        _dumps(extra or None), breakdown.reward, breakdown.action_type_match, breakdown.name_match,
        breakdown.arg_match, breakdown.grader, breakdown.grader_model, breakdown.reason,
        breakdown_json if breakdown_json is not None else _dumps(breakdown.to_json()), error, latency_ms,
    )


_INSERT_NUMBERED_SQL = (f"INSERT INTO predictions(id, {', '.join(PREDICTION_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * (len(PREDICTION_COLUMNS) + 1))})")


def insert_numbered_predictions(conn: Any, rows: list[tuple]) -> None:
    """Inside a write transaction: prediction rows from `prediction_row` with the id they are to have
    first, counted from `next_prediction_id` in the same transaction (so rows stored beside them, like their
    taxonomy, can refer to them without reading the ids back)."""
    conn.executemany(_INSERT_NUMBERED_SQL, rows)


def next_prediction_id(conn: Any) -> int:
    """Inside a write transaction: the id the next prediction gets."""
    return conn.execute("SELECT coalesce(max(id), 0) + 1 FROM predictions").fetchone()[0]


def insert_predictions(store: Store, rows: Iterable[tuple]) -> int:
    """Insert prediction rows (from `prediction_row`) in one transaction; returns how many."""
    rows = list(rows)
    if rows:
        with store.transaction() as conn:
            conn.executemany(_INSERT_SQL, rows)
    return len(rows)


def record_finish(store: Store, run_id: int, *, status: str = "completed", n_lines: int | None = None,
                  problems: list[dict[str, Any]] | None = None, n_problems: int | None = None) -> None:
    """Record how a run ended: its status, the counts (computed from the stored predictions) and the problems
    met. Only the row: classifying and summarising a finished run is its owner's (`runs.owner.finish_run`)."""
    counts = store.query(
        "SELECT count(*) AS n, count(reward) AS graded FROM predictions WHERE run_id = ?", (run_id,)
    )[0]
    with store.transaction() as conn:
        conn.execute(
            "UPDATE runs SET finished_at = ?, status = ?, n_lines = coalesce(?, n_lines), n_predictions = ?, "
            "n_graded = ?, n_problems = coalesce(?, n_problems), problems = coalesce(?, problems) WHERE id = ?",
            (_now(), status, n_lines, counts["n"], counts["graded"],
             n_problems if n_problems is not None else (len(problems) if problems is not None else None),
             _dumps(problems[:MAX_STORED_PROBLEMS]) if problems is not None else None, run_id),
        )


@dataclass
class RunProgress:
    """How far a run got. One that did not complete (interrupted, failed, killed, or still running) covers
    only part of its input, and whatever summarises it must say so (issue 20): `done` of `total` `unit`."""

    status: str
    done: int
    total: int | None  # None when not known (a killed run, an input file that is gone)
    unit: str  # "lines" (of a predictions file) or "decision points" (a model run's selection)

    @property
    def complete(self) -> bool:
        return self.status == "completed"

    def text(self) -> str | None:
        """'partial: N of M lines' for a run that did not complete; None for one that did."""
        if self.complete:
            return None
        if self.total is None:
            return f"partial: {self.done:,} {self.unit} of an unknown total"
        return f"partial: {self.done:,} of {self.total:,} {self.unit}"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "complete": self.complete, "done": self.done, "total": self.total,
                "unit": self.unit, "partial": self.text()}


def run_progress(store: Store, run: Run) -> RunProgress:
    """A run's progress. A model run: decision points answered of those selected. A graded file: for a run
    that stopped early, the last line it stored (lines are stored in input order) of the lines the file has
    now; a completed one covers all its lines."""
    if run.kind == "run-model":
        done = run.n_predictions
        if run.status == "running":
            done = count_predictions(store, run.id)
        return RunProgress(run.status, done, run.n_lines or None, "decision points")
    if run.status == "completed":
        return RunProgress(run.status, run.n_lines, run.n_lines, "lines")
    done = store.scalar("SELECT max(line) FROM predictions WHERE run_id = ?", (run.id,)) or 0
    return RunProgress(run.status, int(done), _count_lines(run.source_file), "lines")


def _count_lines(path: str | None) -> int | None:
    """Lines in a file as `grade` numbers them (a last line without a newline counts); None if unreadable."""
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            n, last = 0, b""
            while chunk := fh.read(1 << 20):
                n += chunk.count(b"\n")
                last = chunk
    except OSError:
        return None
    return n + (1 if last and not last.endswith(b"\n") else 0)


def run_names(store: Store) -> list[str]:
    """Every run's name, newest first (without marking abandoned runs: cheap, for a run picker)."""
    return [r["name"] for r in store.query("SELECT name FROM runs ORDER BY id DESC")]


def run_ids(store: Store) -> list[int]:
    """Every run's id, newest first."""
    return [r["id"] for r in store.query("SELECT id FROM runs ORDER BY id DESC")]


def count_predictions(store: Store, run_id: int) -> int:
    """How many predictions a run holds now (a running run's `n_predictions` is only set when it finishes)."""
    return int(store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", (run_id,)) or 0)


def get_run(store: Store, run: int | str) -> Run:
    return Run.from_row(store.named_row("runs", run, RunError(
        f"no run {run!r}", "list the runs on the Runs page, or grade a file first")))


def list_runs(store: Store, kind: str | None = None) -> list[Run]:
    """Every run (of `kind`), newest first; runs whose process was killed are marked interrupted first."""
    mark_abandoned_runs(store)
    if kind:
        rows = store.query("SELECT * FROM runs WHERE kind = ? ORDER BY id DESC", (kind,))
    else:
        rows = store.query("SELECT * FROM runs ORDER BY id DESC")
    return [Run.from_row(r) for r in rows]


def delete_run(store: Store, run_id: int) -> None:
    """The run, its predictions and its taxonomy (and, by triggers, what other modules stored about it)."""
    with store.transaction() as conn:
        drop_taxonomy(conn, run_id)
        conn.execute("DELETE FROM predictions WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))


def predictions(store: Store, run_id: int, *, offset: int = 0, limit: int = 100,
                order: str = "id") -> list[dict[str, Any]]:
    """A page of a run's predictions, JSON columns decoded."""
    orders = {"id": "id", "reward": "reward IS NULL, reward, id", "-reward": "reward IS NULL, reward DESC, id"}
    rows = store.query(
        f"SELECT * FROM predictions WHERE run_id = ? ORDER BY {orders.get(order, 'id')} LIMIT ? OFFSET ?",
        (run_id, int(limit), int(offset)),
    )
    for row in rows:
        for key in ("action", "extra", "breakdown"):  # exact: an integer beyond 64 bits is read back as stored
            row[key] = loads_json(row[key], exact=True) if row[key] else None
    return rows


@dataclass
class RunSummary:
    """Mean reward overall, by split, by action type, and by split × action type (each with its CI and
    ungraded count)."""

    run_id: int
    overall: MeanCI
    by_split: dict[str, MeanCI]
    by_action_type: dict[str, MeanCI]
    by_split_and_action_type: dict[str, dict[str, MeanCI]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "overall": self.overall.to_json(),
            "by_split": {k: v.to_json() for k, v in self.by_split.items()},
            "by_action_type": {k: v.to_json() for k, v in self.by_action_type.items()},
            "by_split_and_action_type": {s: {t: v.to_json() for t, v in by_type.items()}
                                         for s, by_type in self.by_split_and_action_type.items()},
        }

    def to_text(self) -> str:
        lines = [f"mean reward: {self.overall.fmt()}"]
        for title, groups in (("by split", self.by_split), ("by action type", self.by_action_type)):
            lines.append(f"{title}:")
            lines.extend(f"  {name}: {ci.fmt()}" for name, ci in groups.items())
        return "\n".join(lines)


def summarise_run(store: Store, run_id: int, *, seed: int | None = None) -> RunSummary:
    """Means with 95% bootstrap CIs over graded predictions; ungraded ones are counted beside them."""
    kwargs = {"seed": seed} if seed is not None else {}
    if taxonomy_is_current(store, run_id):  # its index covers these columns: no table reads
        rows = store.query(f"SELECT split, action_type, reward, count(*) AS n FROM {taxonomy_table(run_id)} "
                           "GROUP BY split, action_type, reward")
    else:
        rows = store.query(
            "SELECT split, action_type, reward, count(*) AS n FROM predictions WHERE run_id = ? "
            "GROUP BY split, action_type, reward", (run_id,),
        )
    overall: dict[Any, int] = {}
    by_split: dict[str, dict[Any, int]] = {}
    by_type: dict[str, dict[Any, int]] = {}
    by_cell: dict[str, dict[str, dict[Any, int]]] = {}
    for row in rows:
        value, n = row["reward"], row["n"]
        split, action_type = row["split"] or "unknown", row["action_type"] or "unknown"
        for bucket in (overall, by_split.setdefault(split, {}), by_type.setdefault(action_type, {}),
                       by_cell.setdefault(split, {}).setdefault(action_type, {})):
            bucket[value] = bucket.get(value, 0) + n
    return RunSummary(
        run_id,
        mean_ci_counts(overall, **kwargs),
        {k: mean_ci_counts(v, **kwargs) for k, v in sorted(by_split.items())},
        {k: mean_ci_counts(v, **kwargs) for k, v in sorted(by_type.items())},
        {s: {t: mean_ci_counts(v, **kwargs) for t, v in sorted(cells.items())} for s, cells in sorted(by_cell.items())},
    )
