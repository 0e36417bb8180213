"""The SQLite store: conversations stored once (compressed, raw), decision points as indexed rows.

Layout (schema version in `meta`):
- `conversations`: one row per (split, uuid); `body` is the raw JSONL line exactly as read,
  zstd-compressed (about 0.28 of its size; zstd because it is twice as fast as zlib at a better ratio,
  and compression is the largest cost of an ingest after parsing).
- `decision_points`: one row per assistant message, pointing at its conversation, with the columns people
  filter and sort on (see `extract.DP_COLUMNS`) and one 0/1 column per flag.
- `grading_views`: per conversation, the tools and assistant turns only, compressed: what grading reads
  (`grading_view.py`).
- `conversation_fts`: contentless FTS5 over user/assistant/tool text (not the system prompt, not
  reasoning), rowid = conversation id.
- `ingests`, `rejected_rows`: what each ingest read and what it could not use, with file and line.

Functions return plain data (dicts, dataclasses), never cursors. Every table, this layer's and the layers'
above, is made by the named migrations of `schema.py`, which `Store.open` applies: one place says what a
database holds, and importing a module creates nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlite_utils

from ..base.config import ACTION_TYPES, SPLITS, default_db_path
from ..base.errors import StoreError, UnknownDecisionPoint
from . import browse_index as _browse, schema
from .compression import decompress_json
from .decision_point import DecisionPoint
from .extract import DP_COLUMNS, FLAGS
from .filters import DecisionPointFilter, order_by
from .grading_view import VIEW_VERSION
from .schema import DP_INDEXES, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 10_000
IN_CHUNK = 900  # values per `IN (...)` list: under the 999 bound variables older SQLite builds allow
NAMED_TABLES = frozenset({"runs", "campaigns", "audit_sets"})  # rows people name: `Store.named_row`
_LOG = logging.getLogger(__name__)


def current_process() -> dict[str, Any]:
    """This process, as recorded on work it starts (an ingest, a run) so a later look can tell work still
    going from work whose process was killed before it could record how it ended (`process_gone`)."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def process_gone(owner: Any) -> bool:
    """Whether a recorded process (`current_process`) is known to be gone: it ran on this machine and no
    process has its id now (signal 0 checks without sending anything). Unknown or elsewhere: not gone."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return False
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False  # it exists (another user's), or this platform cannot tell
    try:  # a zombie (killed, not yet reaped by its parent) is gone too
        return Path(f"/proc/{owner['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


NOT_OURS_HINT = "choose another --db (a new file name makes a new workbench database)"
READ_ONLY_HINT = "make the file and its folder writable, or choose another --db"


def storage_error(path: Path | str, exc: BaseException) -> StoreError:
    """A failure of the database itself (SQLite's error, or the OS's) as one line that names the file and
    says what to do. Work already committed is kept: every writer here commits whole units."""
    text = " ".join(str(exc).split())[:200]
    low = text.lower()
    if "full" in low or getattr(exc, "errno", None) == 28:  # SQLITE_FULL, ENOSPC
        return StoreError(f"{path}: the disk is full ({text})",
                          "free some space or choose another --db; what was stored so far is kept, and running "
                          "the same command again continues")
    if "readonly" in low or "read-only" in low or getattr(exc, "errno", None) == 30:  # SQLITE_READONLY, EROFS
        return StoreError(f"{path} is read-only ({text})", READ_ONLY_HINT)
    if "locked" in low or "busy" in low:
        return StoreError(f"{path} is locked by another process ({text})", "wait for it to finish, or choose another --db")
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return StoreError(f"{path} is damaged ({text})", "restore it from a copy, or choose another --db")
    return StoreError(f"{path}: the database failed ({text})", "check the disk and the file, or choose another --db")


def is_row_error(exc: BaseException) -> bool:
    """Whether an error from writing rows is about a value in them (a type SQLite cannot bind, text that is
    not UTF-8, a constraint) rather than about the database (full, read-only, locked, damaged), which no
    other row can get past either."""
    return isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError,
                            sqlite3.InterfaceError, UnicodeError, OverflowError, TypeError, ValueError))


@dataclass
class InsertedConversations:
    """What `Store.insert_conversations` did with a batch."""

    stored: list["PreparedConversation"] = field(default_factory=list)
    repeated: list[tuple["PreparedConversation", str, int]] = field(default_factory=list)  # (item, first copy's file, line)
    n_existing: int = 0  # stored by an earlier ingest


@dataclass
class PreparedConversation:
    """Everything the store needs to insert one conversation, computed off the main process."""

    split: str
    uuid: str
    source_file: str
    source_line: int
    n_messages: int
    body: bytes
    rows: list[tuple]
    fts_text: str
    notes: Counter = field(default_factory=Counter)
    grading_view: bytes | None = None  # `grading_view.build_view` of the row


class Store:
    """An open workbench database. Cheap to open: pages open one per script run."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self.readonly = False
        # Browse's in-memory index (`browse_index.py`): counts, pages and neighbours of a filtered list
        # come from it when it can answer the filter; False answers everything with SQL.
        self.use_browse_index = True
        self._browse: _browse.BrowseIndex | None = None
        self._browse_lock = threading.Lock()

    # ---- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, create: bool = True, readonly: bool = False) -> "Store":
        path = Path(path)
        if not create and not path.exists():
            raise StoreError(f"no database at {path}", "ingest data first: python -m nemo_core ingest FILE --db " + str(path))
        if not readonly:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for {path}: {exc.strerror}", "choose a writable --db path") from None
        try:
            if readonly:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
            else:
                conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            store = cls(path, conn)
            store.readonly = readonly
            if not readonly:
                store._ensure_schema()
        except sqlite3.DatabaseError as exc:
            if not readonly and path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
                # SQLite in WAL mode cannot even read without writing its -shm file beside the database
                raise StoreError(f"{path} is read-only (the file or its folder cannot be written; SQLite: {exc})",
                                 READ_ONLY_HINT) from None
            raise StoreError(f"cannot open {path} as a database: {exc}", "check the path is a writable SQLite file, or choose another --db") from None
        return store

    def _ensure_schema(self) -> None:
        """Apply the migrations this database has not had (`schema.py`), all in one write transaction (a second
        process opening it at the same time waits, then finds them recorded), and put back any decision point
        index a killed bulk ingest left missing. A database already up to date is only read."""
        with self._lock:
            version = self._recorded_version()
            pending, newer = schema.state(self.db)
            if (version is not None and version > SCHEMA_VERSION) or newer:
                what = (f"migrations newer than this code ({', '.join(newer[:3])})" if newer else
                        f"schema version {version}, newer than this code ({SCHEMA_VERSION})")
                raise StoreError(f"{self.path} has {what}", "update the workbench, or open another --db")
            if pending:
                if version is None:  # not ours yet: another application's tables must be refused untouched
                    self._check_foreign_tables()
                with self.transaction():
                    schema.apply(self.db)
                    self._check_foreign_tables()  # a workbench table migrated and still short of a column: refused
                    if version != SCHEMA_VERSION:
                        self.set_meta("schema_version", str(SCHEMA_VERSION))
            schema.heal_decision_point_indexes(self.conn)

    def _recorded_version(self) -> int | None:
        """`meta.schema_version` (None when there is no such row or table); a value that is not a number is
        refused: not a workbench database, or a damaged one."""
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            return None
        if row is None:
            return None
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise StoreError(f"{self.path}: its meta table says schema_version {str(row[0])[:40]!r}, which is "
                             "not a version number: not a workbench database, or a damaged one",
                             NOT_OURS_HINT) from None

    def _check_foreign_tables(self) -> None:
        """Refuse a database whose tables of our names are not ours (another application's `runs`, say):
        `CREATE TABLE IF NOT EXISTS` would keep them, and the first query or write would fail on a column."""
        expected = schema.expected_columns()
        found: dict[str, set[str]] = {}
        for table, column in self.conn.execute(
                "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
                "WHERE m.type = 'table'"):
            found.setdefault(table, set()).add(column)
        for table, columns in found.items():
            missing = expected.get(table, frozenset()) - columns
            if missing:
                raise StoreError(f"{self.path} is not a workbench database: its table {table!r} has no column "
                                 f"{', '.join(sorted(missing)[:4])}{' …' if len(missing) > 4 else ''} "
                                 "(another application's table of that name?)", NOT_OURS_HINT)

    def writable_or_raise(self) -> None:
        """Raise a one-line `StoreError` before any work when the database file cannot be written (a
        read-only file or file system): reading such a database works, writing fails on the first row."""
        if self.readonly or not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            raise StoreError(f"{self.path} is read-only (the file or its folder cannot be written)", READ_ONLY_HINT)

    def storage_error(self, exc: BaseException) -> StoreError:
        """The one-line error for a failure of the database itself (`storage_error`)."""
        return storage_error(self.path, exc)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back whole on any error (or Ctrl-C)."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:  # SQLite may have rolled back itself (a full disk does)
                    self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    def drop_decision_point_indexes(self) -> None:
        """Before a bulk load: drop the secondary indexes (`create_decision_point_indexes` restores them)."""
        with self._lock:
            for name in DP_INDEXES:
                self.conn.execute(f"DROP INDEX IF EXISTS {name}")

    def analyze(self, table: str | None = None) -> None:
        """Refresh the query planner's statistics of the database (or of one table: a name the code made, never
        a user's text), sampled, so it takes well under a second at full scale; with them SQLite walks the right
        index for prev/next and range filters."""
        with self._lock:
            self.conn.execute("PRAGMA analysis_limit = 1000")
            try:
                self.conn.execute(f"ANALYZE {table}" if table else "ANALYZE")
            finally:
                self.conn.execute("PRAGMA analysis_limit = 0")

    def create_decision_point_indexes(self) -> None:
        with self._lock:
            schema.heal_decision_point_indexes(self.conn)

    # ---- small query helpers -------------------------------------------------------------------
    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self.conn.execute(sql, tuple(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        with self._lock:
            row = self.conn.execute(sql, tuple(params)).fetchone()
        return row[0] if row else None

    def fetch_in(self, sql: str, values: list[Any], params: Iterable[Any] = ()) -> list[tuple]:
        """Rows of `sql` for every value in `values`: `{marks}` in it stands for the placeholders of an
        `IN (...)` list, filled a chunk of `IN_CHUNK` values at a time; `params` bind before them."""
        params = tuple(params)
        rows: list[tuple] = []
        with self._lock:
            for start in range(0, len(values), IN_CHUNK):
                chunk = values[start : start + IN_CHUNK]
                rows += self.conn.execute(sql.format(marks=",".join("?" * len(chunk))), (*params, *chunk)).fetchall()
        return rows

    def named_row(self, table: str, which: int | str, missing: Exception) -> dict[str, Any]:
        """The row of a table people name (runs, campaigns, audit sets) by its id (an int) or its name (a str);
        raises `missing`, the caller's own not-found error, when there is none. One lookup for all three, so
        an id and a name are read the same way everywhere."""
        if table not in NAMED_TABLES:
            raise ValueError(f"{table!r} is not a named table ({', '.join(sorted(NAMED_TABLES))})")
        column = "id" if isinstance(which, int) else "name"
        rows = self.query(f"SELECT * FROM {table} WHERE {column} = ?", (which,))
        if not rows:
            raise missing
        return rows[0]

    def meta(self, key: str) -> str | None:
        return self.scalar("SELECT value FROM meta WHERE key = ?", (key,))

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # ---- writing conversations -----------------------------------------------------------------
    def existing_conversations(self, split: str, uuids: list[str]) -> dict[str, tuple[int | None, str, int]]:
        """uuid -> (ingest id, source file, source line) for those of `uuids` already stored in `split`."""
        return {uuid: (ingest_id, source_file, source_line) for uuid, ingest_id, source_file, source_line in self.fetch_in(
            "SELECT uuid, ingest_id, source_file, source_line FROM conversations WHERE split = ? AND uuid IN ({marks})",
            uuids, (split,))}

    def insert_conversations(self, items: list[PreparedConversation], ingest_id: int | None = None) -> "InsertedConversations":
        """Insert whole conversations in one transaction. One already stored (same split + uuid) is skipped:
        counted as `repeated` when this same ingest stored it (its uuid occurs twice in the input: the first
        copy is kept), else as stored by an earlier ingest."""
        result = InsertedConversations()
        if not items:
            return result
        dp_sql = (
            f"INSERT INTO decision_points(conversation_id, {', '.join(DP_COLUMNS)}) "
            f"VALUES ({', '.join('?' * (len(DP_COLUMNS) + 1))})"
        )
        with self.transaction() as conn:
            known: dict[tuple[str, str], tuple[int | None, str, int]] = {}
            for split in {i.split for i in items}:
                for uuid, where in self.existing_conversations(split, [i.uuid for i in items if i.split == split]).items():
                    known[(split, uuid)] = where
            stored = result.stored
            for item in items:
                key = (item.split, item.uuid)
                where = known.get(key)
                if where is None:
                    known[key] = (ingest_id, item.source_file, item.source_line)
                    stored.append(item)
                elif ingest_id is not None and where[0] == ingest_id:
                    result.repeated.append((item, where[1], where[2]))
                else:
                    result.n_existing += 1
            # We hold the write lock (BEGIN IMMEDIATE), so ids can be assigned here and every insert batched.
            next_id = (conn.execute("SELECT max(id) FROM conversations").fetchone()[0] or 0) + 1
            conv_rows, fts_rows, dp_rows, view_rows = [], [], [], []
            for conv_id, item in enumerate(stored, start=next_id):
                conv_rows.append((conv_id, item.split, item.uuid, item.n_messages, len(item.rows), item.source_file,
                                  item.source_line, ingest_id, item.body))
                if item.grading_view is not None:
                    view_rows.append((conv_id, VIEW_VERSION, item.grading_view))
                if item.fts_text:
                    fts_rows.append((conv_id, item.fts_text))
                dp_rows.extend((conv_id, *row) for row in item.rows)
            conn.executemany(
                "INSERT INTO conversations(id, split, uuid, n_messages, n_decision_points, source_file, source_line, "
                "ingest_id, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                conv_rows,
            )
            conn.executemany("INSERT INTO conversation_fts(rowid, text) VALUES (?, ?)", fts_rows)
            conn.executemany(dp_sql, dp_rows)
            conn.executemany("INSERT INTO grading_views(conversation_id, version, body) VALUES (?, ?, ?)", view_rows)
        return result

    def start_ingest(self, files: list[str], started_at: str) -> int:
        """A new `ingests` row, status `running`, with the process that runs it (so a later look can tell
        an ingest that is still going from one whose process was killed: `mark_abandoned_ingests`)."""
        self.mark_abandoned_ingests()
        with self._lock:
            return self.conn.execute(
                "INSERT INTO ingests(started_at, status, files, report) VALUES (?, 'running', ?, ?)",
                (started_at, orjson.dumps(files).decode(), orjson.dumps({"process": current_process()}).decode()),
            ).lastrowid

    def mark_abandoned_ingests(self) -> int:
        """Set `interrupted` on `running` ingests whose process on this machine is gone (killed before it
        could record how it ended); how many. An ingest from another machine, or from before processes
        were recorded, is left as it is: nothing here can tell."""
        if self.readonly:
            return 0
        gone = [row["id"] for row in self.query("SELECT id, report FROM ingests WHERE status = 'running'")
                if process_gone((orjson.loads(row["report"]) if row["report"] else {}).get("process"))]
        if gone:
            with self.transaction() as conn:
                conn.executemany("UPDATE ingests SET status = 'interrupted' WHERE id = ? AND status = 'running'",
                                 [(i,) for i in gone])
        return len(gone)

    def finish_ingest(self, ingest_id: int, status: str, finished_at: str, report: dict) -> None:
        with self._lock:
            self.conn.execute(
                "UPDATE ingests SET status = ?, finished_at = ?, report = ? WHERE id = ?",
                (status, finished_at, orjson.dumps(report).decode(), ingest_id),
            )

    def add_rejected(self, ingest_id: int, rejected: list[tuple[str, int, str]]) -> None:
        if not rejected:
            return
        with self.transaction() as conn:  # re-ingesting a file must not count its bad lines twice
            conn.executemany(
                "INSERT INTO rejected_rows(ingest_id, file, line, reason) SELECT ?, ?, ?, ? WHERE NOT EXISTS "
                "(SELECT 1 FROM rejected_rows WHERE file = ? AND line = ? AND reason = ?)",
                [(ingest_id, f, line, reason, f, line, reason) for f, line, reason in rejected],
            )

    # ---- reading ---------------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        """Decision points by split × action type (every split and type present, zeros included)."""
        out = {s: dict.fromkeys(ACTION_TYPES, 0) for s in SPLITS}
        for row in self.query(
            "SELECT split, action_type, count(*) AS n FROM decision_points GROUP BY split, action_type"
        ):
            out.setdefault(row["split"], dict.fromkeys(ACTION_TYPES, 0))[row["action_type"]] = row["n"]
        return out

    def n_decision_points(self) -> int:
        return self.scalar("SELECT count(*) FROM decision_points") or 0

    def n_conversations(self) -> int:
        return self.scalar("SELECT count(*) FROM conversations") or 0

    def ungradeable_counts(self) -> dict[str, int]:
        """Decision points flagged `ungradeable`, by split (from the flag's partial index)."""
        out = dict.fromkeys(SPLITS, 0)
        for row in self.query("SELECT split, count(*) AS n FROM decision_points INDEXED BY dp_flag_ungradeable "
                              "WHERE flag_ungradeable = 1 GROUP BY split"):
            out[row["split"]] = row["n"]
        return out

    def task_counts(self) -> dict[str, int]:
        """The environment's tasks (`serve-env`) by split: its decision points minus the ungradeable ones,
        because an RL task must always yield a reward and those cannot (SPEC §4)."""
        ungradeable = self.ungradeable_counts()
        return {split: sum(by_type.values()) - ungradeable.get(split, 0) for split, by_type in self.counts().items()}

    def flag_counts(self) -> dict[str, int]:
        """Decision points per flag; each count reads only its flag's partial index (fast at 1.2 M rows)."""
        return {
            name: self.scalar(
                f"SELECT count(*) FROM decision_points INDEXED BY dp_flag_{name} WHERE flag_{name} = 1"
            ) or 0
            for name in FLAGS
        }

    def rejected(self, limit: int = 1000) -> list[dict[str, Any]]:
        return self.query(
            "SELECT ingest_id, file, line, reason FROM rejected_rows ORDER BY id LIMIT ?", (limit,)
        )

    def n_rejected(self) -> int:
        return self.scalar("SELECT count(*) FROM rejected_rows") or 0

    def ingests(self) -> list[dict[str, Any]]:
        self.mark_abandoned_ingests()
        rows = self.query("SELECT id, started_at, finished_at, status, files, report FROM ingests ORDER BY id")
        for row in rows:
            row["files"] = orjson.loads(row["files"])
            row["report"] = orjson.loads(row["report"]) if row["report"] else None
        return rows

    def stats(self) -> dict[str, Any]:
        return {
            "database": str(self.path),
            "schema_version": SCHEMA_VERSION,
            "conversations": self.n_conversations(),
            "decision_points": self.counts(),
            "total_decision_points": self.n_decision_points(),
            "tasks": self.task_counts(),
            "flags": self.flag_counts(),
            "rejected_rows": self.n_rejected(),
        }

    # ---- Browse: counts, pages and neighbours of a filtered, sorted list --------------------------------
    def browse_index(self) -> _browse.BrowseIndex | None:
        """The in-memory index of the current rows: kept while `max(rowid)` is unchanged (rows are only
        appended), else loaded from `browse_index` or built (and stored, when the file is writable). None
        while an ingest is adding rows (every chunk would make it stale) or when it cannot be built: the
        callers then ask SQL."""
        max_rowid = self.scalar("SELECT max(rowid) FROM decision_points")
        current = self._browse
        if current is not None and current.max_rowid == max_rowid:
            return current
        with self._browse_lock:
            current = self._browse
            if current is not None and current.max_rowid == max_rowid:
                return current
            index = _browse.load(self.conn, self._lock, max_rowid)
            if index is None:
                if self._ingest_running():
                    return None
                try:
                    index = _browse.build(self.conn, self._lock)
                except (sqlite3.Error, ValueError, MemoryError) as exc:
                    _LOG.warning("%s: Browse answers with SQL, its index could not be built: %s", self.path, exc)
                    return None
                self._save_browse_index(index)
            self._browse = index
            return index

    def _save_browse_index(self, index: _browse.BrowseIndex) -> None:
        if self.readonly:
            return
        try:
            _browse.save(self.conn, self._lock, index)
        except sqlite3.Error as exc:  # a read-only file or a full disk: keep it in memory only
            _LOG.warning("%s: the Browse index is kept in memory only (%s)", self.path, exc)

    def _ingest_running(self) -> bool:
        for row in self.query("SELECT report FROM ingests WHERE status = 'running'"):
            owner = (orjson.loads(row["report"]) if row["report"] else {}).get("process")
            if not process_gone(owner):
                return True
        return False

    def _index_for(self, flt: DecisionPointFilter) -> _browse.BrowseIndex | None:
        if not self.use_browse_index or not _browse.supports(flt):
            return None
        return self.browse_index()

    def _text_search(self) -> _browse.TextSearch:
        return _browse.TextSearch(self.conn, self._lock)

    def count(self, flt: DecisionPointFilter | None = None) -> int:
        flt = flt or DecisionPointFilter()
        index = self._index_for(flt)
        if index is not None:
            return index.count(flt, self._text_search())
        where, params = flt.where()
        return self.scalar(f"SELECT count(*) FROM decision_points AS dp WHERE {where}", params) or 0

    SUMMARY_COLUMNS = (
        "id", "split", "conversation_uuid", "turn_index", "action_type", "expected_tool", "n_expected_calls",
        "n_tools", "context_chars", "preview",
    )

    def page(
        self,
        flt: DecisionPointFilter | None = None,
        *,
        sort: str = "id",
        descending: bool = False,
        offset: int = 0,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """One page of decision point summaries, as `ORDER BY sort, rowid LIMIT limit OFFSET offset`; never
        loads more than `limit` rows (from the Browse index when it can answer the filter)."""
        flt = flt or DecisionPointFilter()
        cols = ", ".join(f"dp.{c}" for c in self.SUMMARY_COLUMNS)
        flag_cols = ", ".join(f"dp.flag_{n}" for n in FLAGS)
        index = self._index_for(flt)
        if index is not None:
            rowids = index.page_rowids(flt, self._text_search(), sort=sort, descending=descending, offset=offset,
                                       limit=limit)
            names = [*self.SUMMARY_COLUMNS, *(f"flag_{n}" for n in FLAGS)]
            found = {r[0]: dict(zip(names, r[1:])) for r in self.fetch_in(
                f"SELECT dp.rowid, {cols}, {flag_cols} FROM decision_points AS dp WHERE dp.rowid IN ({{marks}})", rowids)}
            return [_with_flag_list(found[r]) for r in rowids if r in found]
        where, params = flt.where()
        rows = self.query(
            f"SELECT {cols}, {flag_cols} FROM decision_points AS dp WHERE {where} "
            f"ORDER BY {order_by(sort, descending)} LIMIT ? OFFSET ?",
            [*params, int(limit), int(offset)],
        )
        return [_with_flag_list(r) for r in rows]

    def ids(self, flt: DecisionPointFilter | None = None, *, sort: str = "id", descending: bool = False,
            limit: int | None = None) -> list[str]:
        where, params = (flt or DecisionPointFilter()).where()
        sql = f"SELECT dp.id FROM decision_points AS dp WHERE {where} ORDER BY {order_by(sort, descending)}"
        if limit is not None:
            sql += " LIMIT ?"
            params = [*params, int(limit)]
        with self._lock:
            return [r[0] for r in self.conn.execute(sql, params).fetchall()]

    def rowids(self, flt: DecisionPointFilter | None = None) -> list[int]:
        """The rowids of the decision points the filter matches, in rowid order: the same rows, in the same
        order, as `ids(flt)`, but cheap at full scale (integers, no id strings; samples draw from these).
        A split × action type condition is answered from its covering index (no table row read: 1.1 s
        instead of 4-12 s for 570,000 rows), and each excluded flag is subtracted through the flag's
        partial index instead of being checked on every row."""
        flt = flt or DecisionPointFilter()
        base = dataclasses.replace(flt, exclude_flags=())
        where, params = base.where()
        with self._lock:
            rows = {r[0] for r in self.conn.execute(f"SELECT dp.rowid FROM decision_points AS dp WHERE {where}", params)}
            for flag in flt.exclude_flags:
                w, p = dataclasses.replace(base, flags=(*base.flags, flag)).where()
                rows.difference_update(r[0] for r in self.conn.execute(
                    f"SELECT dp.rowid FROM decision_points AS dp WHERE {w}", p))
        return sorted(rows)

    def ids_of_rowids(self, rowids: list[int]) -> list[str]:
        """The ids of these decision point rowids, in the order given (rowids not stored are left out)."""
        found: dict[int, str] = dict(self.fetch_in("SELECT rowid, id FROM decision_points WHERE rowid IN ({marks})",
                                                   rowids))
        return [found[r] for r in rowids if r in found]

    def neighbour_in_filter(self, dp_id: str, flt: DecisionPointFilter | None, *, sort: str = "id",
                            descending: bool = False) -> tuple[str | None, str | None]:
        """The previous and next decision point around `dp_id` in a filtered, sorted list."""
        rowid = self.scalar("SELECT rowid FROM decision_points WHERE id = ?", (dp_id,))
        if rowid is None:
            return None, None
        flt = flt or DecisionPointFilter()
        index = self._index_for(flt)
        if index is not None:
            pair = index.neighbours(rowid, flt, self._text_search(), sort=sort, descending=descending)
            ids = dict(self.fetch_in("SELECT rowid, id FROM decision_points WHERE rowid IN ({marks})",
                                     [r for r in pair if r is not None]))
            return ids.get(pair[0]), ids.get(pair[1])
        where, params = flt.where()
        column = order_by(sort, descending).split(",")[0].split()[0]
        value = self.scalar(f"SELECT {column} FROM decision_points AS dp WHERE dp.rowid = ?", (rowid,))
        out: list[str | None] = []
        for forward in (False, True):
            after = forward != descending
            cmp = ">" if after else "<"
            direction = "ASC" if after else "DESC"
            if column == "dp.rowid":
                cond, cparams = f"dp.rowid {cmp} ?", [rowid]
            elif value is None:  # SQLite sorts NULL first, and `col < NULL` is never true
                cond = f"({column} IS NOT NULL OR dp.rowid > ?)" if after else f"({column} IS NULL AND dp.rowid < ?)"
                cparams = [rowid]
            else:
                # a row-value comparison lets SQLite walk the sort column's index from this row
                cond, cparams = f"({column}, dp.rowid) {cmp} (?, ?)", [value, rowid]
            sql = (
                f"SELECT dp.id FROM decision_points AS dp WHERE {where} AND {cond} "
                f"ORDER BY {column} {direction}, dp.rowid {direction} LIMIT 1"
            )
            found = self.scalar(sql, [*params, *cparams])
            if found is None and value is not None and column != "dp.rowid" and not after:
                # before the smallest non-empty value come the empty (NULL) ones, which SQLite sorts first
                found = self.scalar(
                    f"SELECT dp.id FROM decision_points AS dp WHERE {where} AND {column} IS NULL "
                    f"ORDER BY dp.rowid DESC LIMIT 1", params)
            out.append(found)
        return out[0], out[1]

    def expected_tool_counts(self, limit: int = 50, prefix: str | None = None) -> list[dict[str, Any]]:
        """The most expected tools (for the overview and a searchable tool picker)."""
        if prefix:
            return self.query(
                "SELECT expected_tool AS tool, count(*) AS n FROM decision_points WHERE expected_tool >= ? "
                "AND expected_tool < ? GROUP BY expected_tool ORDER BY n DESC LIMIT ?",
                (prefix, prefix + "\uffff", limit),
            )
        return self.query(
            "SELECT expected_tool AS tool, count(*) AS n FROM decision_points WHERE expected_tool IS NOT NULL "
            "GROUP BY expected_tool ORDER BY n DESC LIMIT ?",
            (limit,),
        )

    def histogram(self, column: str, bins: list[int]) -> list[dict[str, Any]]:
        """Counts of decision points by split within bins of a numeric column (computed in SQL)."""
        if column not in ("context_chars", "n_tools", "turn_index", "expected_chars"):
            raise ValueError(f"no histogram over {column!r}")
        cases = " ".join(f"WHEN {column} < {int(b)} THEN {i}" for i, b in enumerate(bins[1:]))
        bin_expr = f"CASE {cases} ELSE {len(bins) - 1} END" if cases else "0"
        rows = self.query(
            f"SELECT split, {bin_expr} AS bin, count(*) AS n "
            f"FROM decision_points GROUP BY split, bin ORDER BY bin"
        )
        return rows

    def conversation_row(self, split: str, uuid: str) -> dict[str, Any] | None:
        rows = self.query(
            "SELECT id, split, uuid, n_messages, source_file, source_line, body FROM conversations "
            "WHERE split = ? AND uuid = ?",
            (split, uuid),
        )
        if not rows:
            return None
        row = rows[0]
        row["raw"] = decompress_json(row.pop("body"))
        return row

    def decision_point_row(self, dp_id: str) -> dict[str, Any]:
        if not isinstance(dp_id, str) or dp_id.count("/") != 2:
            raise UnknownDecisionPoint(f"{str(dp_id)[:200]!r} is not a decision point id")
        rows = self.query("SELECT * FROM decision_points WHERE id = ?", (dp_id,))
        if not rows:
            raise UnknownDecisionPoint(f"no decision point {dp_id!r} in {self.path}")
        return _with_flag_list(rows[0])

    def conversation_decision_ids(self, split: str, uuid: str) -> list[str]:
        with self._lock:
            return [
                r[0]
                for r in self.conn.execute(
                    # through the conversation's key, so both lookups use an index (split + uuid alone
                    # scans half the table at 1.2 M rows)
                    "SELECT id FROM decision_points WHERE conversation_id = "
                    "(SELECT id FROM conversations WHERE split = ? AND uuid = ?) ORDER BY turn_index",
                    (split, uuid),
                ).fetchall()
            ]

    def get(self, dp_id: str) -> DecisionPoint:
        """The full decision point: context, offered tools, expected action (see `decision_point.py`)."""
        row = self.decision_point_row(dp_id)
        conv = self.conversation_row(row["split"], row["conversation_uuid"])
        if conv is None:  # cannot happen with a consistent store, but say so rather than crash
            raise UnknownDecisionPoint(f"the conversation of {dp_id!r} is missing from {self.path}")
        return DecisionPoint.from_raw(row, conv)

    def exists(self, dp_id: str) -> bool:
        return self.scalar("SELECT 1 FROM decision_points WHERE id = ?", (dp_id,)) is not None


def _with_flag_list(row: dict[str, Any]) -> dict[str, Any]:
    """Replace the flag_* columns of a row by a `flags` list of the names that are set."""
    flags = [name for name in FLAGS if row.pop(f"flag_{name}", 0)]
    row["flags"] = flags
    return row


def check_workbench_db(path: str | Path) -> str | None:
    """Why `path` cannot be opened as a workbench database, or None when it can. Read-only: a wrong
    path must never create a file or add tables to someone else's SQLite database."""
    path = Path(path).expanduser()
    if not str(path).strip():
        return "enter a path"
    if not path.exists():
        return f"no file at {path}"
    if not path.is_file():
        return f"{path} is not a file"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'decision_points'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return f"{path} is not a SQLite database ({exc})"
    if not found:
        return f"{path} is not a workbench database (no decision_points table); create one with `python -m nemo_core ingest`"
    return None


def open_store(path: str | Path | None = None, **kwargs: Any) -> Store:
    return Store.open(path or default_db_path(), **kwargs)

