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

Functions return plain data (dicts, dataclasses), never cursors. Other features add their own tables
through `register_schema`, so one `Store.open` brings a database up to date.
"""

from __future__ import annotations

import dataclasses
import functools
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
import zstandard

from ..base.config import ACTION_TYPES, SPLITS
from ..base.errors import StoreError, UnknownDecisionPoint
from .extract import DP_COLUMNS, FLAGS
from .filters import DecisionPointFilter, order_by
from .grading_view import DDL as _GRADING_VIEW_DDL, VIEW_VERSION

SCHEMA_VERSION = 4  # 3: grading_views; 4: run kind 'environment' (the runs table rebuilt, see `runs.py`)
BUSY_TIMEOUT_MS = 10_000
IN_CHUNK = 900  # values per `IN (...)` list: under the 999 bound variables older SQLite builds allow

# Secondary indexes of decision_points, by name. A bulk ingest drops them and builds them again at the end
# (sorting once is far cheaper than 1.2 M random B-tree inserts); `Store.open` recreates any that are missing,
# so an interrupted bulk ingest heals itself on the next open.
DP_INDEXES: dict[str, str] = {
    "dp_id": "CREATE UNIQUE INDEX IF NOT EXISTS dp_id ON decision_points(id)",
    "dp_split_type_tool": "CREATE INDEX IF NOT EXISTS dp_split_type_tool ON decision_points(split, action_type, expected_tool)",
    "dp_tool": "CREATE INDEX IF NOT EXISTS dp_tool ON decision_points(expected_tool, split, action_type)",
    "dp_conversation": "CREATE INDEX IF NOT EXISTS dp_conversation ON decision_points(conversation_id, turn_index)",
    "dp_n_tools": "CREATE INDEX IF NOT EXISTS dp_n_tools ON decision_points(n_tools)",
    "dp_turn_index": "CREATE INDEX IF NOT EXISTS dp_turn_index ON decision_points(turn_index)",
    "dp_context_chars": "CREATE INDEX IF NOT EXISTS dp_context_chars ON decision_points(context_chars)",
    **{
        f"dp_flag_{name}": f"CREATE INDEX IF NOT EXISTS dp_flag_{name} ON decision_points(split, action_type) WHERE flag_{name} = 1"
        for name in FLAGS
    },
}
_DP_INDEX_DDL = ";\n".join(DP_INDEXES.values()) + ";"

_CORE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    split TEXT NOT NULL,
    uuid TEXT NOT NULL,
    n_messages INTEGER NOT NULL,
    n_decision_points INTEGER NOT NULL,
    source_file TEXT,
    source_line INTEGER,
    ingest_id INTEGER,
    body BLOB NOT NULL,
    UNIQUE (split, uuid)
);
CREATE TABLE IF NOT EXISTS decision_points (
    rowid INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    id TEXT NOT NULL,
    split TEXT NOT NULL,
    conversation_uuid TEXT NOT NULL,
    turn_index INTEGER NOT NULL,
    assistant_turn INTEGER NOT NULL,
    action_type TEXT NOT NULL,
    expected_tool TEXT,
    expected_tools TEXT,
    n_expected_calls INTEGER NOT NULL,
    n_tools INTEGER NOT NULL,
    context_chars INTEGER NOT NULL,
    expected_chars INTEGER NOT NULL,
    preview TEXT,
    ungradeable_reason TEXT,
    {", ".join(f"flag_{name} INTEGER NOT NULL DEFAULT 0" for name in FLAGS)}
);
{_DP_INDEX_DDL}
CREATE VIRTUAL TABLE IF NOT EXISTS conversation_fts USING fts5(text, content='', tokenize='unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS ingests (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    files TEXT NOT NULL,
    report TEXT
);
CREATE TABLE IF NOT EXISTS rejected_rows (
    id INTEGER PRIMARY KEY,
    ingest_id INTEGER,
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rejected_file_line ON rejected_rows(file, line);
{_GRADING_VIEW_DDL}"""

# Other features (grading runs, attempts, campaigns, audits) register their DDL here at import time.
_EXTRA_SCHEMAS: list[str] = []


def register_schema(ddl: str) -> None:
    """Add `CREATE ... IF NOT EXISTS` statements that every `Store.open` applies."""
    if ddl not in _EXTRA_SCHEMAS:
        _EXTRA_SCHEMAS.append(ddl)


# Named migrations: (schema version that introduced it, name, function). `Store.open` runs, in version order,
# those newer than the database's recorded version, before the `CREATE ... IF NOT EXISTS` statements; each
# is idempotent (it checks the schema itself, inside its own write transaction), so two processes opening an
# old database at once both succeed and the work is done once.
_MIGRATIONS: list[tuple[int, str, Any]] = []


def register_migration(version: int, name: str, migrate: Any) -> None:
    """`migrate(store)` brings a database older than `version` up to it (a table rebuild, say)."""
    if not any(m[1] == name for m in _MIGRATIONS):
        _MIGRATIONS.append((version, name, migrate))
        _MIGRATIONS.sort(key=lambda m: m[0])


_ZSTD_LEVEL = 1  # measured on rows of the real shape: 35% less CPU than level 3, same ratio (0.25)
_local = threading.local()


def compress(data: bytes) -> bytes:
    """zstd of bytes; one compressor per thread (they are not thread-safe)."""
    comp = getattr(_local, "compressor", None)
    if comp is None:
        comp = _local.compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
    return comp.compress(data)


def decompress(blob: bytes) -> bytes:
    """The bytes `compress` was given; one decompressor per thread."""
    dec = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec.decompress(blob)


def decompress_json(blob: bytes) -> Any:
    """A stored body, parsed exactly (integers beyond 64 bits stay integers, see `records.loads_json`)."""
    from .records import loads_json

    return loads_json(decompress(blob), exact=True)


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


@functools.lru_cache(maxsize=8)
def _expected_columns(ddl: str) -> dict[str, set[str]]:
    """Table -> columns of the workbench schema, read from the DDL applied to an empty in-memory database."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(ddl)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: {r[1] for r in conn.execute("SELECT * FROM pragma_table_info(?)", (t,))} for t in tables}
    finally:
        conn.close()


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
        with self._lock:
            version = None
            try:
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            except sqlite3.OperationalError:
                row = None
            if row is not None:
                try:
                    version = int(row[0])
                except (TypeError, ValueError):
                    raise StoreError(f"{self.path}: its meta table says schema_version {str(row[0])[:40]!r}, which is "
                                     "not a version number: not a workbench database, or a damaged one",
                                     NOT_OURS_HINT) from None
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this code ({SCHEMA_VERSION})",
                    "update the workbench, or open another --db",
                )
            if version is not None:
                for introduced, _name, migrate in _MIGRATIONS:
                    if version < introduced:
                        migrate(self)
            self._check_foreign_tables()  # after the migrations: an older workbench table may lack a new column
            self.conn.executescript(_CORE_SCHEMA + "".join(_EXTRA_SCHEMAS))
            if version != SCHEMA_VERSION:
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )

    def _check_foreign_tables(self) -> None:
        """Refuse a database whose tables of our names are not ours (another application's `runs`, say):
        `CREATE TABLE IF NOT EXISTS` would keep them, and the first query or write would fail on a column."""
        expected = _expected_columns(_CORE_SCHEMA + "".join(_EXTRA_SCHEMAS))
        found: dict[str, set[str]] = {}
        for table, column in self.conn.execute(
                "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
                "WHERE m.type = 'table'"):
            found.setdefault(table, set()).add(column)
        for table, columns in found.items():
            missing = expected.get(table, set()) - columns
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

    def analyze(self) -> None:
        """Refresh the query planner's statistics (sampled, so it takes well under a second at full
        scale); with them SQLite walks the right index for prev/next and range filters."""
        with self._lock:
            self.conn.execute("PRAGMA analysis_limit = 1000")
            self.conn.execute("ANALYZE")

    def create_decision_point_indexes(self) -> None:
        with self._lock:
            self.conn.executescript(_DP_INDEX_DDL)

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

    def count(self, flt: DecisionPointFilter | None = None) -> int:
        where, params = (flt or DecisionPointFilter()).where()
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
        """One page of decision point summaries; never loads more than `limit` rows."""
        where, params = (flt or DecisionPointFilter()).where()
        cols = ", ".join(f"dp.{c}" for c in self.SUMMARY_COLUMNS)
        flag_cols = ", ".join(f"dp.flag_{n}" for n in FLAGS)
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
        where, params = (flt or DecisionPointFilter()).where()
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

    def get(self, dp_id: str):
        """The full decision point: context, offered tools, expected action (see `decision_point.py`)."""
        from .decision_point import DecisionPoint

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


def open_store(path: str | Path | None = None, **kwargs: Any) -> Store:
    from ..base.config import default_db_path

    return Store.open(path or default_db_path(), **kwargs)

