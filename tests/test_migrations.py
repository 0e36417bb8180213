"""A database made by an earlier workbench opens with the current code and loses nothing.

`tests/data/main-fixture.db.zst` was built by `tests/data/make_main_fixture.py` on main before the schema was
declared through migrations (the commit is in `main-fixture.expected.json`): the demo data plus runs of every
kind, a campaign, audit sets, attempts and caches. A copy is opened here with the current code; every table it
had keeps every row, value for value, and every run's report is what that code printed (also when recomputed
from the stored predictions, caches dropped).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import zstandard

from nemo_core.runs.analysis import report
from nemo_core.data.store import SCHEMA_VERSION, Store

DATA = Path(__file__).parent / "data"
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


def test_every_run_reports_what_main_reported(old_db):
    with Store.open(old_db) as store:
        for name, expected in EXPECTED["reports"].items():
            assert report(store, name) == expected, name


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
            assert report(store, name) == expected, name
