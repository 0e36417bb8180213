"""Issue 20, point 8: when the database or the input file itself fails (read-only, disk full, the input deleted
while it is read, a garbage schema_version, another application's SQLite file), the command says so in one line
that names the file and what to do, never a traceback; an ingest that stops is recorded as `failed` with that
line, keeps whole conversations only, and running it again finishes it."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import nemo_core.data.ingest as ingest_module
from nemo_core.cli.main import main
from nemo_core.base.errors import StoreError
from nemo_core.data.ingest import ingest
from nemo_core.data.store import Store

from test_ingest import small_chunks, whole_conversations_only, write_synth  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo" / "tool_calling_demo.jsonl"


def one_line_error(err: str) -> str:
    """The command's error: exactly one line starting with 'error:', and no traceback anywhere."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in its own process."""
    return subprocess.run([sys.executable, "-m", "nemo_core", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


# ---- a read-only database ----------------------------------------------------------------------------------
@pytest.fixture
def read_only_db(tmp_path):
    """A database that cannot be written: for root (who may write any file) a file system mounted read-only,
    otherwise a file without write permission. Yields (path, whether reading must still work)."""
    if os.geteuid() == 0:
        mount_point = tmp_path / "ro"
        mount_point.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)]).returncode != 0:
            pytest.skip("cannot mount a file system here (root, but no mount)")
        try:
            db = mount_point / "ro.db"
            with Store.open(db) as store:
                ingest(store, [DEMO], workers=1)
            subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)
            yield db, False  # SQLite in WAL mode needs to write its -shm file even to read
        finally:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)
        return
    db = tmp_path / "ro.db"
    with Store.open(db) as store:
        ingest(store, [DEMO], workers=1)
    db.chmod(0o444)
    yield db, True


def test_a_read_only_database_refuses_writes_in_one_line(read_only_db, tmp_path, capsys):
    db, reads = read_only_db
    if reads:
        assert main(["stats", "--db", str(db)]) == 0
    else:
        assert main(["stats", "--db", str(db)]) == 1
        assert f"{db} is read-only" in one_line_error(capsys.readouterr().err)
    capsys.readouterr()
    assert main(["ingest", str(DEMO), "--db", str(db), "--quiet"]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith(f"error: {db} is read-only (the file or its folder cannot be written")
    assert line.endswith("(make the file and its folder writable, or choose another --db)")
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"id": "tool_calling/x/1", "action": {"type": "message", "content": "x"}}\n')
    assert main(["grade", str(preds), "--db", str(db), "--quiet"]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert f"{db} is read-only" in line and "choose another --db" in line


# ---- a full disk --------------------------------------------------------------------------------------------
def test_a_full_database_ends_the_ingest_failed_with_one_line_and_a_rerun_finishes(tmp_path, small_chunks):
    """SQLite's own limit on pages (`max_page_count`) fails a write exactly as a full disk does (SQLITE_FULL)."""
    src = tmp_path / "tool_calling_big.jsonl"
    uuids = write_synth(src, 60)
    db = tmp_path / "nemo.db"
    with Store.open(db) as store:
        pages = store.scalar("PRAGMA page_count")
        store.conn.execute(f"PRAGMA max_page_count = {pages + 40}")
        with pytest.raises(StoreError) as info:
            ingest(store, [src], workers=1)
        assert "the disk is full" in str(info.value) and str(db) in str(info.value)
        assert "running the same command again continues" in info.value.one_line()
        stored = store.n_conversations()
        assert 0 < stored < 60
        whole_conversations_only(store)
        last = store.ingests()[-1]
        assert last["status"] == "failed" and "the disk is full" in last["report"]["error"]
    with Store.open(db) as store:
        report = ingest(store, [src], workers=1)
        assert report.status == "completed" and report.conversations_skipped_existing == stored
        assert store.n_conversations() == len(uuids)
        whole_conversations_only(store)


@pytest.fixture
def tiny_disk(tmp_path):
    """A real file system of 1.5 MB (tmpfs): root only, where the machine allows mounting."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_really_full_disk_is_one_line_and_the_ingest_is_not_left_running(tmp_path, tiny_disk):
    src = tmp_path / "tool_calling_big.jsonl"
    uuids = write_synth(src, 400)  # about 4 MB of rows: more than the disk holds
    db = tiny_disk / "nemo.db"
    done = run_cli("ingest", str(src), "--db", str(db), "--quiet", "--workers", "1")
    assert done.returncode == 1
    line = one_line_error(done.stderr)
    assert line.startswith(f"error: {db}: the disk is full") and "free some space" in line
    copy = tmp_path / "after.db"  # read it where there is room (the file on the full disk stays as it was)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{db}{suffix}").exists():
            shutil.copy(f"{db}{suffix}", f"{copy}{suffix}")
    with Store.open(copy) as store:
        statuses = [i["status"] for i in store.ingests()]
        assert statuses[-1] in ("failed", "interrupted"), statuses  # never left `running`
        whole_conversations_only(store)
        stored = store.n_conversations()
        report = ingest(store, [src], workers=1)  # with room, the same command finishes it
        assert report.conversations_skipped_existing == stored and store.n_conversations() == len(uuids)


# ---- the input file deleted while it is read ----------------------------------------------------------------
def test_an_input_file_deleted_mid_read_is_one_line_and_a_rerun_finishes(tmp_path, small_chunks, monkeypatch, capsys):
    src = tmp_path / "tool_calling_vanishing.jsonl"
    uuids = write_synth(src, 40)
    keep = tmp_path / "copy.jsonl"
    shutil.copy(src, keep)
    real = ingest_module._absorb
    calls = {"n": 0}

    def absorb_then_delete(*args, **kwargs):
        real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2 and src.exists():
            src.unlink()

    monkeypatch.setattr(ingest_module, "_absorb", absorb_then_delete)
    db = tmp_path / "nemo.db"
    assert main(["ingest", str(src), "--db", str(db), "--quiet", "--workers", "1"]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith(f"error: {src}: could not be read to the end (No such file or directory)")
    assert "run the same command again to continue" in line
    with Store.open(db) as store:
        stored = store.n_conversations()
        assert 0 < stored < 40
        whole_conversations_only(store)
        last = store.ingests()[-1]
        assert last["status"] == "failed" and "could not be read to the end" in last["report"]["error"]
    monkeypatch.setattr(ingest_module, "_absorb", real)
    shutil.copy(keep, src)
    assert main(["ingest", str(src), "--db", str(db), "--quiet", "--workers", "2"]) == 0
    with Store.open(db) as store:
        assert store.n_conversations() == len(uuids)
        whole_conversations_only(store)


# ---- files that are not a workbench database ----------------------------------------------------------------
def test_a_garbage_schema_version_is_one_line(demo_db, tmp_path, capsys):
    with sqlite3.connect(demo_db) as conn:
        conn.execute("UPDATE meta SET value = 'banana' WHERE key = 'schema_version'")
    for args in (["stats"], ["ingest", str(DEMO), "--quiet"], ["show", "tool_calling/x/1"]):
        assert main([*args, "--db", str(demo_db)]) == 1
        line = one_line_error(capsys.readouterr().err)
        assert line == (f"error: {demo_db}: its meta table says schema_version 'banana', which is not a version "
                        "number: not a workbench database, or a damaged one (choose another --db (a new file name "
                        "makes a new workbench database))")


@pytest.mark.parametrize("table", ["runs", "decision_points", "conversations", "predictions", "meta"])
def test_another_applications_database_with_a_table_of_our_name_is_one_line(tmp_path, capsys, table):
    db = tmp_path / "theirs.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"CREATE TABLE {table} (their_id INTEGER PRIMARY KEY, their_text TEXT)")
        conn.execute(f"INSERT INTO {table} VALUES (1, 'theirs')")
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"id": "tool_calling/x/1", "action": {"type": "message", "content": "x"}}\n')
    for args in (["stats"], ["ingest", str(DEMO), "--quiet"], ["grade", str(preds), "--quiet"]):
        assert main([*args, "--db", str(db)]) == 1
        line = one_line_error(capsys.readouterr().err)
        assert line.startswith(f"error: {db} is not a workbench database: its table {table!r} has no column")
        assert "choose another --db" in line
    with sqlite3.connect(db) as conn:  # and nothing of theirs was touched
        assert conn.execute(f"SELECT * FROM {table}").fetchall() == [(1, "theirs")]
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == [table]
