"""The workbench's schema: one ordered list of named migrations (`sqlite_utils.migrations.Migrations`).

`Store.open` applies the ones a database has not had yet, in this order, each recorded in sqlite-utils'
`_sqlite_migrations` table in the same transaction as its work. A fresh database runs every step. A database
made before the schema was declared here (its tables made by `CREATE TABLE IF NOT EXISTS` at every open, its
version in `meta`) runs them too, and every step is written so that it leaves what exists as it is: tables and
indexes are created only where missing, and the two steps that change something check first whether the change
is needed (`runs_kind_environment`, `drop_shared_taxonomy`). So nothing is rebuilt that need not be, and two
processes opening an old database at once do the work once (the steps run inside one write transaction, and the
second finds them recorded).

A new table or column is a new step at the end of `MIGRATIONS`, never an edit of an old one (a database that
has run a step never runs it again). `SCHEMA_VERSION`, kept in `meta` for older workbenches, goes up when a step
makes a database that older code must not write to; those refuse a database whose version is newer than theirs,
and this code refuses one that has had a step it does not know.

Tables are created through sqlite-utils where its table API says everything the table needs; the ones with a
CHECK constraint, a multi-column UNIQUE, a partial index, WITHOUT ROWID, FTS5 or a trigger stay SQL. Per-run
taxonomy tables (`taxonomy_run_<id>`) are not schema: `runs.taxonomy` makes one per run.
"""

from __future__ import annotations

import functools
import sqlite3

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .extract import FLAGS

SCHEMA_VERSION = 4  # 3: grading_views; 4: run kind 'environment' (the runs table rebuilt)
MIGRATIONS = Migrations("nemo_core")

# The run kinds the `runs` table accepts (its CHECK constraint). Adding one means a new step that rebuilds the
# table, as `runs_kind_environment` did for 'environment'.
RUN_KINDS = ("grade", "run-model", "upload", "human", "environment")

# Secondary indexes of decision_points, by name. A bulk ingest drops them and builds them again at the end
# (sorting once is far cheaper than 1.2 M random B-tree inserts); `Store.open` recreates any that are missing
# (`heal_decision_point_indexes`), so an interrupted bulk ingest heals itself on the next open.
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


def _run(db: sqlite_utils.Database, *statements: str) -> None:
    """Each statement on the migration's connection, inside its transaction (`executescript` would commit)."""
    for sql in statements:
        db.execute(sql)


def heal_decision_point_indexes(conn: sqlite3.Connection) -> None:
    """Create the decision point indexes that are missing (a bulk ingest killed before it rebuilt them)."""
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                                          "tbl_name = 'decision_points'")}
    for name, ddl in DP_INDEXES.items():
        if name not in present:
            conn.execute(ddl)


# ---- the dataset (schema 1) ---------------------------------------------------------------------------------
@MIGRATIONS(name="dataset")
def _dataset(db: sqlite_utils.Database) -> None:
    """Conversations (each raw line once, compressed), decision points with their filter columns and one column
    per flag, full-text search, and what each ingest read and rejected."""
    db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
    _run(db, """CREATE TABLE IF NOT EXISTS conversations (
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
)""", f"""CREATE TABLE IF NOT EXISTS decision_points (
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
)""", *DP_INDEXES.values(),
         "CREATE VIRTUAL TABLE IF NOT EXISTS conversation_fts USING fts5(text, content='', "
         "tokenize='unicode61 remove_diacritics 2')")
    db["ingests"].create({"id": int, "started_at": str, "finished_at": str, "status": str, "files": str, "report": str},
                         pk="id", not_null={"started_at", "status", "files"}, if_not_exists=True)
    db["rejected_rows"].create({"id": int, "ingest_id": int, "file": str, "line": int, "reason": str}, pk="id",
                               not_null={"file", "line", "reason"}, if_not_exists=True)
    db["rejected_rows"].create_index(["file", "line"], index_name="rejected_file_line", if_not_exists=True)


@MIGRATIONS(name="grading_views")
def _grading_views(db: sqlite_utils.Database) -> None:
    """Schema 3: per conversation, its tools and assistant turns only, compressed (`grading_view.py`)."""
    db["grading_views"].create({"conversation_id": int, "version": int, "body": bytes}, pk="conversation_id",
                               not_null={"version", "body"}, foreign_keys=[("conversation_id", "conversations", "id")],
                               if_not_exists=True)


# ---- runs, their predictions and what is computed from them -------------------------------------------------
_KIND_CHECK = f"CHECK (kind IN ({', '.join(repr(k) for k in RUN_KINDS)}))"
_RUNS_TABLE = f"""CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL DEFAULT 'running',
    kind TEXT NOT NULL {_KIND_CHECK},
    source_file TEXT,
    grader TEXT NOT NULL,
    grader_model TEXT,
    rule_version TEXT NOT NULL,
    model TEXT,
    n_lines INTEGER NOT NULL DEFAULT 0,
    n_predictions INTEGER NOT NULL DEFAULT 0,
    n_graded INTEGER NOT NULL DEFAULT 0,
    n_problems INTEGER NOT NULL DEFAULT 0,
    problems TEXT,
    settings TEXT
)"""
# Both triggers are on `runs`: a rebuild of that table drops them, and `runs_kind_environment` makes them again.
_RUNS_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS taxonomy_state_delete_run AFTER DELETE ON runs BEGIN
    DELETE FROM taxonomy_state WHERE run_id = OLD.id;
END""",
    """CREATE TRIGGER IF NOT EXISTS run_summary_cache_delete_run AFTER DELETE ON runs BEGIN
    DELETE FROM run_summary_cache WHERE run_id = OLD.id;
END""",
)


@MIGRATIONS(name="runs")
def _runs(db: sqlite_utils.Database) -> None:
    """A run is a set of predictions graded together; each prediction keeps its action, its score columns and
    its whole breakdown."""
    _run(db, _RUNS_TABLE, """CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    dp_id TEXT NOT NULL,
    line INTEGER,
    split TEXT,
    action_type TEXT,
    submitted_type TEXT,
    action TEXT,
    extra TEXT,
    reward REAL,
    action_type_match INTEGER,
    name_match INTEGER,
    arg_match REAL,
    grader TEXT,
    grader_model TEXT,
    reason TEXT,
    breakdown TEXT,
    error TEXT,
    latency_ms REAL
)""", "CREATE UNIQUE INDEX IF NOT EXISTS predictions_run_dp ON predictions(run_id, dp_id)",
         "CREATE INDEX IF NOT EXISTS predictions_run_reward ON predictions(run_id, reward)")


@MIGRATIONS(name="llm_grade_cache")
def _llm_grade_cache(db: sqlite_utils.Database) -> None:
    """The LLM grader's answers by (model, prompt version, decision point, candidate text): never asked twice."""
    _run(db, """CREATE TABLE IF NOT EXISTS llm_grade_cache (
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    dp_id TEXT NOT NULL,
    candidate_sha256 TEXT NOT NULL,
    score INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model, prompt_version, dp_id, candidate_sha256)
) WITHOUT ROWID""")


@MIGRATIONS(name="attempts")
def _attempts(db: sqlite_utils.Database) -> None:
    """Answers tried at one decision point from the Try panel (`people.attempts`)."""
    _run(db, """CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    dp_id TEXT NOT NULL,
    who TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('human', 'model')),
    action TEXT,
    breakdown TEXT,
    reward REAL,
    reason TEXT,
    extra TEXT,
    created_at TEXT NOT NULL
)""", "CREATE INDEX IF NOT EXISTS attempts_dp ON attempts(dp_id, id)")


@MIGRATIONS(name="taxonomy_state")
def _taxonomy_state(db: sqlite_utils.Database) -> None:
    """Which runs have their failure taxonomy stored (each in its own table), under which rules, and whether
    that table is indexed yet (`runs.taxonomy`)."""
    db["taxonomy_state"].create(
        {"run_id": int, "version": str, "n_predictions": int, "computed_at": str, "seconds": float, "indexed": int},
        pk="run_id", not_null={"version", "n_predictions", "computed_at", "indexed"}, defaults={"indexed": 0},
        if_not_exists=True)
    _run(db, _RUNS_TRIGGERS[0])


@MIGRATIONS(name="run_summary_cache")
def _run_summary_cache(db: sqlite_utils.Database) -> None:
    """The Runs page's aggregates of a run, keyed by the taxonomy state they were computed from."""
    db["run_summary_cache"].create({"run_id": int, "state": str, "summary": str}, pk="run_id",
                                   not_null={"state", "summary"}, if_not_exists=True)
    _run(db, _RUNS_TRIGGERS[1])


@MIGRATIONS(name="audit")
def _audit(db: sqlite_utils.Database) -> None:
    """The grader audit: sets of (message decision point, candidate reply), their keyword and LLM scores, and
    people's judgements (`people.audit`)."""
    _run(db, """CREATE TABLE IF NOT EXISTS audit_sets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    source TEXT NOT NULL,
    source_id INTEGER,
    source_name TEXT,
    seed INTEGER NOT NULL,
    llm_model TEXT,
    settings TEXT
)""", """CREATE TABLE IF NOT EXISTS audit_items (
    id INTEGER PRIMARY KEY,
    set_id INTEGER NOT NULL REFERENCES audit_sets(id),
    dp_id TEXT NOT NULL,
    split TEXT NOT NULL,
    kind TEXT NOT NULL,
    variant TEXT NOT NULL DEFAULT '',
    candidate TEXT NOT NULL,
    candidate_chars INTEGER NOT NULL,
    reference_chars INTEGER NOT NULL,
    source_dp_id TEXT,
    order_key TEXT NOT NULL,
    keyword_score REAL NOT NULL,
    keyword TEXT NOT NULL,
    keyword_rule_version TEXT NOT NULL,
    UNIQUE (set_id, dp_id, kind, variant)
)""", "CREATE INDEX IF NOT EXISTS audit_items_set_order ON audit_items(set_id, order_key)",
         """CREATE TABLE IF NOT EXISTS audit_scores (
    item_id INTEGER PRIMARY KEY REFERENCES audit_items(id),
    llm_model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    llm_score INTEGER,
    llm_reason TEXT,
    llm_error TEXT,
    llm_cached INTEGER,
    graded_at TEXT NOT NULL
)""", """CREATE TABLE IF NOT EXISTS audit_human (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES audit_items(id),
    rater TEXT NOT NULL,
    score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 10),
    created_at TEXT NOT NULL,
    UNIQUE (item_id, rater)
)""")


@MIGRATIONS(name="campaigns")
def _campaigns(db: sqlite_utils.Database) -> None:
    """Human baseline campaigns: the sample, its items and the annotators' answers (`people.campaigns`)."""
    _run(db, """CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    selection TEXT NOT NULL,
    sample_size INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    stratify INTEGER NOT NULL,
    overlap INTEGER NOT NULL CHECK (overlap >= 1),
    shared_share REAL NOT NULL CHECK (shared_share >= 0 AND shared_share <= 1),
    instructions TEXT NOT NULL DEFAULT '',
    reveal_after_submit INTEGER NOT NULL,
    grader TEXT NOT NULL DEFAULT 'auto',
    n_items INTEGER NOT NULL,
    n_population INTEGER NOT NULL,
    allocation TEXT,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at TEXT NOT NULL
)""", """CREATE TABLE IF NOT EXISTS campaign_items (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    dp_id TEXT NOT NULL,
    split TEXT NOT NULL,
    action_type TEXT NOT NULL,
    expected_tools TEXT,
    stratum TEXT NOT NULL,
    shared INTEGER NOT NULL DEFAULT 0,
    UNIQUE (campaign_id, dp_id),
    UNIQUE (campaign_id, position)
)""", """CREATE TABLE IF NOT EXISTS campaign_answers (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    item_id INTEGER NOT NULL REFERENCES campaign_items(id) ON DELETE CASCADE,
    dp_id TEXT NOT NULL,
    annotator TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('assigned', 'answered', 'skipped', 'released')),
    action TEXT,
    submitted_type TEXT,
    submitted_name TEXT,
    breakdown TEXT,
    reward REAL,
    action_type_match INTEGER,
    name_match INTEGER,
    arg_match REAL,
    grader TEXT,
    reason TEXT,
    note TEXT,
    confidence INTEGER,
    skip_reason TEXT,
    shown_at TEXT NOT NULL,
    shown_ts REAL NOT NULL,
    submitted_at TEXT,
    seconds REAL,
    UNIQUE (item_id, annotator)
)""", "CREATE INDEX IF NOT EXISTS campaign_answers_campaign ON campaign_answers(campaign_id, annotator, status)",
         "CREATE INDEX IF NOT EXISTS campaign_answers_item ON campaign_answers(item_id, status)",
         "CREATE INDEX IF NOT EXISTS campaign_items_campaign ON campaign_items(campaign_id, shared, position)")


@MIGRATIONS(name="overview_cache")
def _overview_cache(db: sqlite_utils.Database) -> None:
    """The Overview page's aggregates, computed once per ingest (`data.overview`)."""
    db["overview_cache"].create({"signature": str, "computed_at": str, "seconds": float, "body": str},
                                pk="signature", not_null={"computed_at", "seconds", "body"}, if_not_exists=True)


# ---- changes to what the steps above made -------------------------------------------------------------------
@MIGRATIONS(name="runs_kind_environment")
def _runs_kind_environment(db: sqlite_utils.Database) -> None:
    """Schema 4: a `runs` table made before the kind `environment` existed rejects it (SQLite cannot change a
    CHECK constraint in place), so it is rebuilt under the current definition, rows and ids kept, following
    SQLite's recipe (https://www.sqlite.org/lang_altertable.html#otheralter): a new table, the rows copied, the
    old one dropped, the new one renamed. Predictions keep pointing at the same ids; the triggers on `runs`
    (dropped with it) are made again. Nothing to do for a table that already accepts every kind."""
    sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()
    if sql is None or _KIND_CHECK in sql[0]:
        return
    _run(db, _RUNS_TABLE.replace("CREATE TABLE IF NOT EXISTS runs", "CREATE TABLE runs_rebuilt"))
    columns = ", ".join(r[1] for r in db.execute("PRAGMA table_info(runs)").fetchall())
    _run(db, f"INSERT INTO runs_rebuilt({columns}) SELECT {columns} FROM runs", "DROP TABLE runs",
         "ALTER TABLE runs_rebuilt RENAME TO runs", *_RUNS_TRIGGERS)


@MIGRATIONS(name="drop_shared_taxonomy")
def _drop_shared_taxonomy(db: sqlite_utils.Database) -> None:
    """Before each run had a taxonomy table of its own, every run's categories were in one shared table
    (`prediction_taxonomy`, with `run_taxonomy_state` and a trigger on `runs`); their runs are classified again
    into their own tables on first use. The old code dropped these on every open; once is enough."""
    _run(db, "DROP TRIGGER IF EXISTS taxonomy_delete_run", "DROP TABLE IF EXISTS prediction_taxonomy",
         "DROP TABLE IF EXISTS run_taxonomy_state")



@MIGRATIONS(name="browse_index")
def _browse_index(db: sqlite_utils.Database) -> None:
    """Browse's in-memory index, stored so that a new process loads it instead of building it again (one row:
    `data.browse_index` writes it after an ingest; `max_rowid` says which rows it covers, `body` is its arrays)."""
    _run(db, """CREATE TABLE IF NOT EXISTS browse_index (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    max_rowid INTEGER,
    n_rows INTEGER NOT NULL,
    labels TEXT NOT NULL,
    built_at TEXT NOT NULL,
    seconds REAL NOT NULL,
    body BLOB NOT NULL
)""")

# ---- applying them ------------------------------------------------------------------------------------------
def state(db: sqlite_utils.Database) -> tuple[list[str], list[str]]:
    """(the steps this database has not had, the steps it has had that this code does not know: a newer
    workbench made them), read only."""
    done = [m.name for m in MIGRATIONS.applied(db)]
    known = step_names()
    return [n for n in known if n not in set(done)], [n for n in done if n not in set(known)]


@functools.lru_cache(maxsize=1)
def step_names() -> tuple[str, ...]:
    """Every step's name, in order (what a fresh database would run)."""
    return tuple(m.name for m in MIGRATIONS.pending(sqlite_utils.Database(memory=True)))


def apply(db: sqlite_utils.Database) -> None:
    """Apply the pending steps inside the caller's write transaction (each in a savepoint of it)."""
    MIGRATIONS.apply(db)


@functools.lru_cache(maxsize=1)
def expected_columns() -> dict[str, frozenset[str]]:
    """Table -> columns of the migrated schema (every step applied to an empty in-memory database)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        db = sqlite_utils.Database(conn)
        MIGRATIONS.apply(db)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                  if r[0] != MIGRATIONS.migrations_table]
        return {t: frozenset(r[1] for r in conn.execute("SELECT * FROM pragma_table_info(?)", (t,))) for t in tables}
    finally:
        conn.close()
