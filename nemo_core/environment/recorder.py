"""Graded submissions stored as predictions of a run, as they come (`serve-env --record RUN`).

This module is the one seam between the environment and the runs, and it goes through the runs' owner
(`runs.owner`) like every other maker of runs: `Submission.of` turns a graded submission into a `predictions`
row with its failure taxonomy (`runs.prediction_row`, `taxonomy.classify_graded`, as `grade` does);
`store_submissions` stores a batch in one write transaction, creating the rounds it needs there
(`owner.create_live_run`) and storing the rows with their taxonomy (`owner.store_graded_across_runs`);
`open_record` continues a record's rounds (`owner.reopen_run`) and `close_record` finishes them
(`owner.finish_run`). Nothing else in the environment writes to the store.

Rounds. A run holds at most one prediction per decision point (what every page's comparison and the decision
point page's `&run=` rely on), but an RL trainer submits for the same task many times (a group of samples,
then epochs). So the first submission for each decision point goes to run RUN, the second to RUN@2, the
k-th to RUN@k: each round is a complete, comparable run, nothing is dropped, and Compare shows how round 1
and round 9 differ. Rounds are runs of kind `environment`, created when first needed, inside the transaction
that stores their first predictions (so several server processes never race to create one).

Nothing graded is lost. Every submission is first appended to this process's journal (one `write()` of one
line, before the reward is returned to the client), then stored in batches off the request path by a
flusher thread. The transaction that stores a batch also records how many journal lines are stored
(`meta`), so a journal is replayed exactly once: on a clean stop (SIGTERM / SIGINT) the last batch is
stored and the journal deleted; after SIGKILL (or a crash) the journal is still on disk, the operating
system has every line written before the kill, and the next start (or the supervisor, when a worker dies)
stores the lines not yet stored. Only a crash of the machine itself can lose lines not yet written back to
disk by the kernel (the journal is not fsync'ed: that would cost a disk flush per submission).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.errors import NemoError
from ..data.records import dumps_bytes, loads_json
from ..data.store import Store, current_process, process_gone
from ..grading.grade import RULE_VERSION, Breakdown
from ..runs.owner import create_live_run, finish_run, reopen_run, store_graded_across_runs
from ..runs.run import PREDICTION_COLUMNS, Run, check_not_in_progress, predicted_pairs, prediction_row, runs_named
from ..runs.taxonomy import classify_graded

log = logging.getLogger(__name__)

RUN_KIND = "environment"
ROUND_SEPARATOR = "@"
FLUSH_SECONDS = 0.2  # the longest a graded submission waits before it is stored (pages see it then)
FLUSH_ROWS = 500  # or as soon as this many wait
MAX_BATCH = 5_000  # rows per write transaction
ROTATE_BYTES = 64 * 1024 * 1024  # a journal whose lines are all stored is replaced by a new one past this size
_JOURNAL_KEY = "serve-env journal {name}"  # meta key: how many lines of that journal are stored

_DP_ID = PREDICTION_COLUMNS.index("dp_id") - 1  # where the decision point's id sits in a row without its run id


class RecordError(NemoError):
    """A run name that cannot be recorded into."""


def round_name(base: str, round_no: int) -> str:
    """RUN for round 1, RUN@2, RUN@3, ... after it."""
    return base if round_no == 1 else f"{base}{ROUND_SEPARATOR}{round_no}"


@dataclass(slots=True)
class Submission:
    """One graded submission, ready to store: its `predictions` row without the run id, and its taxonomy."""

    row: tuple
    taxonomy: tuple

    @classmethod
    def of(cls, dp: Any, action: Any, breakdown: Breakdown, *, extra: dict | None = None,
           latency_ms: float | None = None) -> "Submission":
        """From a decision point (`DecisionPoint`), the parsed `Action` and its `Breakdown`: the row `grade`
        would store for the same action (the breakdown column is the same result line, without `line`)."""
        line = breakdown.to_json(dp.id)
        taxonomy = classify_graded(line, dp.toolset, dp.expected_calls[0].name if dp.expected_calls else None)
        row = prediction_row(0, dp.id, breakdown, action=action.to_json(), extra=extra, split=dp.split,
                             action_type=dp.action_type, latency_ms=latency_ms,
                             breakdown_json=dumps_bytes(line).decode())[1:]
        return cls(row, taxonomy)

    def to_line(self) -> bytes:
        """One journal line. ASCII-escaped JSON when the text holds what UTF-8 cannot encode (a lone
        surrogate from a client's JSON), so the journal never refuses a submission the store accepted."""
        value = {"row": list(self.row), "tax": list(self.taxonomy)}
        try:
            return dumps_bytes(value) + b"\n"
        except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
            return json.dumps(value, ensure_ascii=True).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> "Submission":
        value = loads_json(line, exact=True)
        return cls(tuple(value["row"]), tuple(value["tax"]))


# ---- storing ---------------------------------------------------------------------------------------------
def _rounds(store: Store, base: str) -> list[Run]:
    """The existing rounds of a record, in order (round 1 first); `RecordError` when a name in the chain
    belongs to another kind of run."""
    found: list[Run] = []
    while True:
        names = [round_name(base, n) for n in range(len(found) + 1, len(found) + 17)]
        runs = runs_named(store, names)
        for name in names:
            run = runs.get(name)
            if run is None:
                return found
            if run.kind != RUN_KIND:
                raise RecordError(f"run {name!r} exists and is a {run.kind} run, not an environment run",
                                  "choose another --record name")
            found.append(run)


def store_submissions(store: Store, base: str, submissions: list[Submission], *, owner: dict[str, Any],
                      source: str | None = None, journal: tuple[str, int] | None = None) -> dict[str, int]:
    """Store a batch in one write transaction: each submission in the first round of `base` that holds no
    prediction for its decision point yet (rounds created as needed, owned by `owner`), with its taxonomy
    row; `journal` = (journal name, lines stored once this commits) is recorded in the same transaction.
    Returns how many went to each round (by run name)."""
    stored: dict[str, int] = {}
    with store.transaction() as conn:
        rounds = _rounds(store, base)
        taken = predicted_pairs(store, [r.id for r in rounds], [s.row[_DP_ID] for s in submissions])
        placed: list[tuple[int, Submission]] = []  # (round index, submission)
        in_batch: dict[str, int] = {}
        for sub in submissions:
            dp_id = sub.row[_DP_ID]
            index = in_batch.get(dp_id, 0)
            while index < len(rounds) and (rounds[index].id, dp_id) in taken:
                index += 1
            in_batch[dp_id] = index + 1
            placed.append((index, sub))
        run_ids = [r.id for r in rounds]
        for round_no in range(len(rounds) + 1, max((i for i, _ in placed), default=-1) + 2):
            run_ids.append(create_live_run(conn, round_name(base, round_no), kind=RUN_KIND, grader="auto",
                                           rule_version=RULE_VERSION, source_file=source, process=owner,
                                           settings={"record": base, "round": round_no}))
        store_graded_across_runs(conn, [(run_ids[index], sub.row, sub.taxonomy) for index, sub in placed])
        for index, _sub in placed:
            name = round_name(base, index + 1)
            stored[name] = stored.get(name, 0) + 1
        if journal is not None:
            store.set_meta(_JOURNAL_KEY.format(name=journal[0]), str(journal[1]))
    return stored


# ---- the record's lifecycle (the serving process that owns it) ----------------------------------------------
def open_record(store: Store, base: str) -> list[Run]:
    """Before serving: check that `base` can be recorded into, claim its existing rounds for this process
    (a restarted server continues the same record) and make their taxonomies current. Its rounds."""
    if not base or not base.strip():
        raise RecordError("a record needs a run name", "pass --record NAME")
    rounds = _rounds(store, base)  # raises when the name is taken by another kind of run
    for run in rounds:  # one server per record: another live server recording into it is refused
        check_not_in_progress(run.name, run.status, run.settings)
    for run in rounds:
        reopen_run(store, run)
    return rounds


def close_record(store: Store, base: str) -> list[str]:
    """After serving: finish every round still running (counts from the stored rows); their names."""
    names = []
    for run in _rounds(store, base):
        if run.status == "running":
            finish_run(store, run.id, status="completed")
            names.append(run.name)
    return names


# ---- the journal ----------------------------------------------------------------------------------------------
def journal_dir(db_path: Path) -> Path:
    """Where a database's serving processes keep their journals: beside it."""
    return Path(f"{db_path}-serve-env")


class Journal:
    """An append-only file of this process's graded submissions, one JSON line each after a header line
    naming the record and the process."""

    def __init__(self, directory: Path, base: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"journal-{os.getpid()}-{time.time_ns()}.jsonl"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        header = {"journal": 1, "record": base, "process": current_process()}
        os.write(self.fd, json.dumps(header, ensure_ascii=True).encode() + b"\n")
        self.written = 0  # submission lines
        self.bytes = 0

    @property
    def name(self) -> str:
        return self.path.name

    def append(self, line: bytes) -> None:
        os.write(self.fd, line)  # one write: O_APPEND makes it atomic with respect to other writers
        self.written += 1
        self.bytes += len(line)

    def remove(self) -> None:
        os.close(self.fd)
        self.path.unlink(missing_ok=True)


def replay_journals(store: Store, directory: Path, *, owner: dict[str, Any], source: str | None = None) -> dict[str, int]:
    """Store the lines of journals left behind by processes that are gone (killed, crashed) that are not
    stored yet, then delete those journals. Journals of live processes are left alone. How many
    submissions were stored, by round run name."""
    stored: dict[str, int] = {}
    if not directory.is_dir():
        return stored
    for path in sorted(directory.glob("journal-*.jsonl")):
        lines = path.read_bytes().split(b"\n")
        try:
            header = json.loads(lines[0])
        except ValueError:
            log.warning("serve-env: %s has no readable header; left as it is", path)
            continue
        if not process_gone(header.get("process")):
            continue
        key = _JOURNAL_KEY.format(name=path.name)
        done = int(store.meta(key) or 0)
        subs: list[Submission] = []
        for number, line in enumerate(lines[1 + done:], start=1 + done):
            if not line.strip():
                continue
            try:
                subs.append(Submission.from_line(line))
            except (ValueError, KeyError, TypeError):  # a line cut short by a crash of the machine
                log.warning("serve-env: %s line %d is not a whole entry; skipped", path.name, number + 1)
        for start in range(0, len(subs), MAX_BATCH):
            chunk = subs[start:start + MAX_BATCH]
            for name, n in store_submissions(store, header["record"], chunk, owner=owner, source=source,
                                             journal=(path.name, done + start + len(chunk))).items():
                stored[name] = stored.get(name, 0) + n
        path.unlink(missing_ok=True)
        _forget_journal(store, path.name)
    return stored


def _forget_journal(store: Store, name: str) -> None:
    with store._lock:
        store.conn.execute("DELETE FROM meta WHERE key = ?", (_JOURNAL_KEY.format(name=name),))


# ---- the recorder: journal first, store in batches off the request path --------------------------------------
class RunRecorder:
    """Records graded submissions of one serving process into the rounds of `base` (see the module docstring).

    `record` is called from the threads that grade (it appends to the journal and queues the row); a flusher
    thread stores what is queued every `flush_seconds` or `flush_rows`; `close` stores the rest and deletes
    the journal."""

    def __init__(self, db_path: Path, base: str, *, owner: dict[str, Any], source: str | None = None,
                 flush_seconds: float = FLUSH_SECONDS, flush_rows: int = FLUSH_ROWS):
        self.store = Store.open(db_path, create=False)
        self.base = base
        self.owner = owner
        self.source = source
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self.journal = Journal(journal_dir(db_path), base)
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pending: list[Submission] = []
        self._stored_lines = 0  # journal lines stored (a prefix of the journal)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.n_recorded = 0
        self.n_stored = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="serve-env-recorder", daemon=True)
        self._thread.start()

    def record(self, submission: Submission) -> None:
        """Journal it, queue it; returns once the journal holds it (before it is in the database)."""
        line = submission.to_line()
        with self._lock:
            self.journal.append(line)
            self._pending.append(submission)
            self.n_recorded += 1
            full = len(self._pending) >= self.flush_rows
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Store what is queued (in batches of `MAX_BATCH`); how many. On a database error the rows stay
        queued (and journaled) and the error is logged; the next flush tries again."""
        with self._flushing:  # one flush at a time: a batch leaves the queue only once it is stored
            return self._flush()

    def _flush(self) -> int:
        n = 0
        while True:
            with self._lock:
                batch = self._pending[:MAX_BATCH]
                if not batch:
                    self._rotate()
                    return n
                upto = self._stored_lines + len(batch)
            try:
                store_submissions(self.store, self.base, batch, owner=self.owner, source=self.source,
                                  journal=(self.journal.name, upto))
            except Exception as exc:  # noqa: BLE001 - keep serving; the journal holds the rows
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("serve-env: storing %d submissions failed (%s); they stay in %s and are retried",
                          len(batch), self.last_error, self.journal.path)
                return n
            with self._lock:
                del self._pending[:len(batch)]
                self._stored_lines = upto
            self.n_stored += len(batch)
            n += len(batch)

    def _rotate(self) -> None:
        """With the lock held and every line stored: past `ROTATE_BYTES`, continue in a new journal and delete
        the old one, so a server running for days keeps a small journal."""
        if self.journal.bytes < ROTATE_BYTES or self._stored_lines != self.journal.written:
            return
        old = self.journal
        self.journal = Journal(old.path.parent, self.base)
        self._stored_lines = 0
        old.remove()
        _forget_journal(self.store, old.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def close(self) -> bool:
        """Stop the flusher, store what is left and delete the journal; False (journal kept for the next
        start to replay) when something could not be stored."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        for _attempt in range(3):
            self.flush()
            if not self._pending:
                break
            time.sleep(0.5)
        clean = not self._pending
        if clean:
            self.journal.remove()
            _forget_journal(self.store, self.journal.name)
        else:
            os.close(self.journal.fd)
        self.store.close()
        return clean
