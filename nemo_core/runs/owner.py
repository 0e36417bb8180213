"""The one owner of a run's life: create (or resume), store graded predictions in batches, finish, classify,
summarise.

Every run is made through here: `grade`, uploads and human answers saved as a run (`grade_file.py`), `run-model`
(`model_runner.py`) and the rounds `serve-env --record` stores as submissions come (`environment/recorder.py`).
The modules below only do their one part and never start another (`run.py` keeps the rows, `taxonomy.py`
classifies, `analysis.py` summarises); what finishing a run sets off is decided here:

1. create: the run's row (`run.create_run`), and, for a run classified as it is graded, its empty taxonomy table;
2. store: graded predictions are added one by one and committed in batches, each batch one write transaction
   holding the predictions (numbered here) and their taxonomy rows, so the two never disagree;
3. finish: the last batch, then the status and counts (`run.record_finish`), even when the work failed or was
   interrupted (what was stored is kept and the run says it is partial);
4. classify: the taxonomy is made current (`taxonomy.ensure_taxonomy`: indexed when every prediction was
   classified as it was stored, else computed from the stored breakdowns);
5. summarise: when the taxonomy was (re)built, the Runs page's aggregates are stored (`analysis.run_details`),
   so the first visit of the page is fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..data.store import Store
from .analysis import run_details
from .run import (PREDICTION_COLUMNS, Run, check_not_in_progress, claim_run, create_run, insert_numbered_predictions,
                  insert_run, next_prediction_id, record_finish)
from .taxonomy import add_classified, ensure_taxonomy, start_live_taxonomy, start_taxonomy, taxonomy_row

COMMIT_ROWS = 100_000  # predictions per write transaction for a large run (few large transactions: see `commit`)
LOW_MEMORY_COMMIT_ROWS = 10_000  # the same where memory matters more than speed (the app; about 1 kB a row)

# where a column sits in a prediction row without its run id
_DP_ID, _SPLIT, _ACTION_TYPE, _REWARD = (PREDICTION_COLUMNS.index(c) - 1
                                         for c in ("dp_id", "split", "action_type", "reward"))

Graded = tuple[tuple, "tuple | None"]  # (prediction row without its run id, taxonomy fields or None)


def store_graded(conn: Any, run_id: int, items: list[Graded]) -> None:
    """Inside a write transaction: one run's predictions, numbered from the next free id, and the taxonomy rows
    of those that have them (`taxonomy.classification_fields`), in the same transaction."""
    first = next_prediction_id(conn)
    insert_numbered_predictions(conn, [(first + i, run_id, *row) for i, (row, _) in enumerate(items)])
    rows = [taxonomy_row(first + i, row[_DP_ID], tax, row[_SPLIT], row[_ACTION_TYPE], row[_REWARD])
            for i, (row, tax) in enumerate(items) if tax is not None]
    add_classified(conn, run_id, rows)


def store_graded_across_runs(conn: Any, items: list[tuple[int, tuple, tuple | None]]) -> None:
    """`store_graded` for predictions of several runs at once, numbered in the order given: (run id, row,
    taxonomy fields or None)."""
    first = next_prediction_id(conn)
    insert_numbered_predictions(conn, [(first + i, run_id, *row) for i, (run_id, row, _) in enumerate(items)])
    by_run: dict[int, list[tuple]] = {}
    for i, (run_id, row, tax) in enumerate(items):
        if tax is not None:
            by_run.setdefault(run_id, []).append(
                taxonomy_row(first + i, row[_DP_ID], tax, row[_SPLIT], row[_ACTION_TYPE], row[_REWARD]))
    for run_id, rows in by_run.items():
        add_classified(conn, run_id, rows)


def finish_run(store: Store, run_id: int, *, status: str = "completed", n_lines: int | None = None,
               problems: list[dict[str, Any]] | None = None, n_problems: int | None = None,
               model: str | None = None) -> None:
    """Finish a run (steps 3 to 5 of the module docstring): status and counts, the model named by the
    predictions when there is one, the taxonomy made current, and the Runs page's aggregates stored when the
    taxonomy was (re)built."""
    record_finish(store, run_id, status=status, n_lines=n_lines, problems=problems, n_problems=n_problems)
    if model:
        with store.transaction() as conn:
            conn.execute("UPDATE runs SET model = ? WHERE id = ?", (model, run_id))
    if ensure_taxonomy(store, run_id) is not None:
        run_details(store, run_id, use_cache=False)


def create_live_run(conn: Any, name: str, *, kind: str, grader: str, rule_version: str, source_file: str | None,
                    process: dict[str, Any], settings: dict[str, Any]) -> int:
    """Inside the write transaction that stores its first predictions: a run written a few rows at a time while
    pages read it (`serve-env --record`), its taxonomy indexed from the start so it is current after every
    commit (`taxonomy.start_live_taxonomy`); its id."""
    run_id = insert_run(conn, name, kind=kind, grader=grader, rule_version=rule_version, source_file=source_file,
                        process=process, settings=settings)
    start_live_taxonomy(conn, run_id)
    return run_id


def reopen_run(store: Store, run: Run) -> None:
    """A stored run continued by this process: refused when another live process has it, claimed (running
    again, owned by this process), its taxonomy made current."""
    check_not_in_progress(run.name, run.status, run.settings)
    with store.transaction() as conn:
        claim_run(conn, run.id)
    ensure_taxonomy(store, run.id)


@dataclass
class RunOutcome:
    """What a run's maker knows when it stops, for `finish_run` (None: leave as computed or stored)."""

    n_lines: int | None = None
    problems: list[dict[str, Any]] | None = None
    n_problems: int | None = None
    model: str | None = None


class RunOwner:
    """One run being made by this process: its predictions added one by one, committed in batches, and the run
    finished however the work ends (`lifetime`)."""

    def __init__(self, store: Store, run_id: int, name: str, *, classify_as_stored: bool = False,
                 commit_rows: int = COMMIT_ROWS):
        self.store = store
        self.run_id = run_id
        self.name = name
        self.classify_as_stored = classify_as_stored
        self.commit_rows = commit_rows
        self.pending: list[Graded] = []
        self.status: str | None = None  # how it ended, once finished

    @classmethod
    def create(cls, store: Store, name: str, *, kind: str, grader: str, rule_version: str,
               source_file: str | None = None, grader_model: str | None = None, model: str | None = None,
               settings: dict | None = None, n_lines: int = 0, classify_as_stored: bool = False,
               commit_rows: int = COMMIT_ROWS) -> "RunOwner":
        """A new run (`run.create_run`: a name already used raises `RunError`). `classify_as_stored`: each
        prediction comes with its taxonomy fields and they are stored with it (indexed when the run finishes)."""
        run_id = create_run(store, name, kind=kind, grader=grader, rule_version=rule_version, source_file=source_file,
                            grader_model=grader_model, model=model, settings=settings, n_lines=n_lines)
        if classify_as_stored:
            with store.transaction() as conn:
                start_taxonomy(conn, run_id)
        return cls(store, run_id, name, classify_as_stored=classify_as_stored, commit_rows=commit_rows)

    @classmethod
    def resume(cls, store: Store, run_id: int, name: str, *, n_lines: int,
               redo: Callable[[str | None], bool], commit_rows: int = 1) -> tuple["RunOwner", set[str]]:
        """A stored run continued by this process (a resumed `run-model`): claimed in one transaction with the
        check that no live process has it (two resumes at once would ask the same ids twice: the second stops
        here, naming the first); then the predictions whose `extra` JSON `redo` says must be asked again are
        deleted (if this run stops early, the next resume still asks them). Returns the owner and the ids kept."""
        with store.transaction() as conn:
            status, owner = conn.execute("SELECT status, settings FROM runs WHERE id = ?", (run_id,)).fetchone()
            check_not_in_progress(name, status, owner)
            claim_run(conn, run_id, n_lines=n_lines)
        rows = store.query("SELECT dp_id, extra FROM predictions WHERE run_id = ?", (run_id,))
        kept = {r["dp_id"] for r in rows if not redo(r["extra"])}
        with store.transaction() as conn:
            conn.executemany("DELETE FROM predictions WHERE run_id = ? AND dp_id = ?",
                             [(run_id, r["dp_id"]) for r in rows if r["dp_id"] not in kept])
        return cls(store, run_id, name, commit_rows=commit_rows), kept

    # ---- storing ---------------------------------------------------------------------------------------
    def add(self, row: tuple, taxonomy: tuple | None = None) -> None:
        """One graded prediction (a `predictions` row without its run id, from `run.prediction_row(...)[1:]`),
        with its taxonomy fields when the run is classified as stored; committed with the batch it completes."""
        self.pending.append((row, taxonomy if self.classify_as_stored else None))
        if len(self.pending) >= self.commit_rows:
            self.commit()

    def extend(self, items: list[Graded]) -> None:
        """Many graded predictions at once, committed when the caller says (`commit_due`, `commit`)."""
        if self.classify_as_stored:
            self.pending.extend(items)
        else:
            self.pending.extend((row, None) for row, _ in items)

    @property
    def commit_due(self) -> bool:
        return len(self.pending) >= self.commit_rows

    def commit(self) -> None:
        """Store what was added, in one write transaction. Few large transactions: each commit rewrites every
        index page it touched, and the (run, id) index fills in random order."""
        if self.pending:
            with self.store.transaction() as conn:
                store_graded(conn, self.run_id, self.pending)
            self.pending.clear()

    # ---- finishing -------------------------------------------------------------------------------------
    def finish(self, status: str, outcome: RunOutcome | None = None) -> None:
        """Commit the rest and finish the run (`finish_run`). When that last commit fails the run is finished
        `failed`, and the error raised after, unless the work had already failed (its error is the one to see)."""
        outcome = outcome or RunOutcome()
        store_error: BaseException | None = None
        try:
            self.commit()
        except Exception as exc:  # noqa: BLE001 - still finish the run (as failed), then raise it below
            if status == "completed":
                store_error = exc
            status = "failed"
        finish_run(self.store, self.run_id, status=status, n_lines=outcome.n_lines, problems=outcome.problems,
                   n_problems=outcome.n_problems, model=outcome.model)
        self.status = status
        if store_error is not None:
            raise store_error

    @contextmanager
    def lifetime(self, outcome: Callable[[], RunOutcome] = RunOutcome) -> Iterator["RunOwner"]:
        """The work on the run: when it ends, the run is finished `completed`, `interrupted` (Ctrl-C) or `failed`
        (any other error, which goes on up), with what `outcome()` says then."""
        status = "failed"
        try:
            yield self
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.finish(status, outcome())
