"""A database made by an earlier workbench opens with the current code and loses nothing.

`tests/data/main-fixture.db.zst` was built by `tests/data/make_main_fixture.py` on main before the schema was
declared through migrations (the commit is in `main-fixture.expected.json`): the demo data plus runs of every
kind, a campaign, audit sets, attempts and caches. A copy is opened here with the current code; every table it
had keeps every row, value for value, and every run's report is what that code printed (also when recomputed
from the stored predictions, caches dropped).
"""

from __future__ import annotations

import ast
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from nemo_core.base.errors import StoreError
from nemo_core.data import schema
from nemo_core.data.schema import SCHEMA_VERSION
from nemo_core.data.store import Store
from nemo_core.runs.analysis import report

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent
EXPECTED = json.loads((DATA / "main-fixture.expected.json").read_text())


@pytest.fixture
def old_db(tmp_path) -> Path:
    db = tmp_path / "made-by-main.db"
    db.write_bytes(zstandard.ZstdDecompressor().decompress((DATA / "main-fixture.db.zst").read_bytes(),
                                                           max_output_size=100_000_000))
    return db


def table_rows(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table (FTS shadow tables included), in rowid order where there is one."""
    raw = sqlite3.connect(db)
    try:
        out = {}
        for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            try:
                out[name] = raw.execute(f'SELECT rowid, * FROM "{name}" ORDER BY rowid').fetchall()
            except sqlite3.OperationalError:  # WITHOUT ROWID, or a virtual table's shadow of that kind
                out[name] = sorted(raw.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
        return out
    finally:
        raw.close()


def test_the_fixture_is_what_its_builder_recorded(old_db):
    rows = table_rows(old_db)
    assert {t: len(r) for t, r in rows.items()} == EXPECTED["counts"]
    assert EXPECTED["schema_version"] == "4"
    assert {r["kind"] for r in EXPECTED["reports"].values()} == {"grade", "run-model", "upload", "human", "environment"}


def test_a_database_made_by_main_opens_with_every_row_kept(old_db):
    before = table_rows(old_db)
    Store.open(old_db).close()
    after = table_rows(old_db)
    for table, rows in before.items():
        if table == "meta":
            continue
        assert after[table] == rows, table  # every value of every row, not only the counts
    assert dict((r[1], r[2]) for r in after["meta"])["schema_version"] == str(SCHEMA_VERSION)
    assert set(after) >= set(before)


def as_main_reported(got: dict) -> dict:
    """The report without the key added after the fixture was made (`by_split_and_action_type`, issue 18),
    whose cells are checked against the margins main did report: every graded and ungraded prediction of a
    split (an action type) is in exactly one of its cells."""
    got = dict(got)
    cells = got.pop("by_split_and_action_type")
    for split, margin in got["by_split"].items():
        assert sum(c["n"] for c in cells[split].values()) == margin["n"], split
        assert sum(c["n_ungraded"] for c in cells[split].values()) == margin["n_ungraded"], split
    for action_type, margin in got["by_action_type"].items():
        assert sum(cells[s].get(action_type, {"n": 0})["n"] for s in cells) == margin["n"], action_type
    return got


def test_every_run_reports_what_main_reported(old_db):
    with Store.open(old_db) as store:
        for name, expected in EXPECTED["reports"].items():
            assert as_main_reported(report(store, name)) == expected, name


def test_every_run_reports_the_same_when_recomputed_from_its_predictions(old_db):
    """The caches (run summaries, taxonomies) dropped: the current code classifies and summarises the stored
    predictions again and gets what main stored."""
    with Store.open(old_db) as store:
        run_ids = [r["id"] for r in store.query("SELECT id FROM runs")]
        with store.transaction() as conn:
            conn.execute("DELETE FROM run_summary_cache")
            for run_id in run_ids:
                conn.execute(f"DROP TABLE taxonomy_run_{int(run_id)}")
            conn.execute("DELETE FROM taxonomy_state")
        for name, expected in EXPECTED["reports"].items():
            assert as_main_reported(report(store, name)) == expected, name


# ---- the migrations themselves ------------------------------------------------------------------------------
def applied(db: Path) -> list[tuple[str, str]]:
    raw = sqlite3.connect(db)
    try:
        return raw.execute("SELECT name, applied_at FROM _sqlite_migrations WHERE migration_set = 'nemo_core' "
                           "ORDER BY id").fetchall()
    finally:
        raw.close()


def schema_objects(db: Path) -> set[tuple[str, str, str | None]]:
    raw = sqlite3.connect(db)
    try:
        return set(raw.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
    finally:
        raw.close()


def test_a_fresh_database_runs_every_step_in_order_once(tmp_path):
    db = tmp_path / "fresh.db"
    Store.open(db).close()
    steps = applied(db)
    assert [name for name, _ in steps] == list(schema.step_names())
    with Store.open(db) as store:
        assert store.meta("schema_version") == str(SCHEMA_VERSION)
        tables = {r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(schema.expected_columns()) <= tables
    assert applied(db) == steps  # the second open applied nothing


def test_a_database_made_by_main_is_migrated_without_rebuilding_anything(old_db):
    before = schema_objects(old_db)
    Store.open(old_db).close()
    after = schema_objects(old_db)
    assert before <= after  # every table, index and trigger as it was, SQL text included (nothing rebuilt)
    new_tables = {"browse_index"}  # made by steps newer than the fixture
    assert {name for _, name, _ in after - before} <= {"_sqlite_migrations", "idx__sqlite_migrations_migration_set_name",
                                                       *new_tables}
    assert [name for name, _ in applied(old_db)] == list(schema.step_names())


def test_two_processes_opening_an_old_database_at_once_both_succeed_and_migrate_it_once(old_db):
    code = ("import sys; from nemo_core.data.store import Store; "
            "Store.open(sys.argv[1]).close(); print('ok')")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(old_db)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    names = [name for name, _ in applied(old_db)]
    assert names == list(schema.step_names())  # each step recorded once


def test_a_database_that_had_a_step_this_code_does_not_know_is_refused_untouched(tmp_path):
    db = tmp_path / "newer.db"
    Store.open(db).close()
    raw = sqlite3.connect(db)
    raw.execute("INSERT INTO _sqlite_migrations(migration_set, name, applied_at) VALUES ('nemo_core', "
                "'a_step_from_the_future', 'later')")
    raw.commit()
    raw.close()
    objects = schema_objects(db)
    with pytest.raises(StoreError, match="newer than this code.*a_step_from_the_future"):
        Store.open(db)
    assert schema_objects(db) == objects


def test_the_old_shared_taxonomy_table_is_dropped_once_not_at_every_open(old_db):
    raw = sqlite3.connect(old_db)
    raw.execute("CREATE TABLE prediction_taxonomy (prediction_id INTEGER PRIMARY KEY, category TEXT)")
    raw.commit()
    raw.close()
    Store.open(old_db).close()  # the step that drops it runs (the old code dropped it at every open)
    assert not any(name == "prediction_taxonomy" for _, name, _ in schema_objects(old_db))
    raw = sqlite3.connect(old_db)
    raw.execute("CREATE TABLE prediction_taxonomy (x INTEGER)")  # made afterwards by someone else: left alone
    raw.commit()
    raw.close()
    Store.open(old_db).close()
    assert any(name == "prediction_taxonomy" for _, name, _ in schema_objects(old_db))


def ddl_strings(path: Path) -> list[str]:
    """The string constants of a module that are SQL making a table, an index, a trigger or a view."""
    ddl = re.compile(r"\s*CREATE\s+(UNIQUE\s+|VIRTUAL\s+)?(TABLE|INDEX|TRIGGER|VIEW)\b", re.I)
    return [n.value for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and ddl.match(n.value)]


def test_every_table_index_and_trigger_is_made_by_a_migration():
    """No module creates schema as a side effect (as `register_schema` at import time once did): SQL that makes
    tables, indexes or triggers is in `data/schema.py` only, besides the per-run taxonomy tables."""
    allowed = {Path("nemo_core/data/schema.py"), Path("nemo_core/runs/taxonomy.py")}
    found = [str(p.relative_to(REPO)) for p in (REPO / "nemo_core").rglob("*.py")
             if p.relative_to(REPO) not in allowed and ddl_strings(p)]
    assert found == []
    per_run = ddl_strings(REPO / "nemo_core/runs/taxonomy.py")
    assert per_run and all("{t}" in sql for sql in per_run)  # taxonomy_run_<id> tables only
