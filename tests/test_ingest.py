"""Ingest (ingest.py): the report, line numbers across chunks, --limit, --report, workers, and that an
interrupted ingest (a crash, Ctrl-C, a kill) leaves whole conversations only and can be resumed."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from interrupt import default_sigint

import nemo_core.data.ingest as ingest_module
from nemo_core.cli.main import main
from nemo_core.data.ingest import ingest, plan_chunks, split_for_file
from nemo_core.base.errors import StoreError
from nemo_core.data.store import Store
from nemo_core.data.synth import interactive_agent_row, synth_uuid, tool_calling_row

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DATA = TESTS / "data"
SHAPES = [DATA / "tool_calling_shapes.jsonl", DATA / "interactive_agent_shapes.jsonl"]


def write_synth(path: Path, n: int, seed: int = 1, bad_every: int = 0) -> list[str]:
    """n synthetic rows of the file's split (every `bad_every`-th line malformed); returns the uuids stored."""
    rng = random.Random(seed)
    make = tool_calling_row if path.name.startswith("tool_calling") else interactive_agent_row
    kept = []
    with open(path, "wb") as fh:
        for i in range(1, n + 1):
            if bad_every and i % bad_every == 0:
                fh.write(b'{"uuid": "broken", "messages": [\n')
                continue
            row = make(rng, synth_uuid(rng), reasoning_chars=200)
            kept.append(row["uuid"])
            fh.write(orjson.dumps(row) + b"\n")
    return kept


def whole_conversations_only(store: Store) -> None:
    assert store.query(
        "SELECT c.uuid FROM conversations c WHERE c.n_decision_points != "
        "(SELECT count(*) FROM decision_points d WHERE d.conversation_id = c.id)") == []
    assert store.scalar(
        "SELECT count(*) FROM decision_points d WHERE d.conversation_id NOT IN (SELECT id FROM conversations)") == 0
    assert store.scalar("PRAGMA integrity_check") == "ok"
    fts_ids = {r["rowid"] for r in store.query("SELECT rowid FROM conversation_fts")}
    assert fts_ids <= {r["id"] for r in store.query("SELECT id FROM conversations")}  # no text of a lost row


@pytest.fixture
def small_chunks(monkeypatch):
    """Byte ranges of ~3 kB instead of 4 MB, so a small file spans many chunks (and transactions)."""
    real = plan_chunks
    monkeypatch.setattr(ingest_module, "plan_chunks", lambda path, chunk_bytes=3000: real(path, chunk_bytes))


def test_split_from_the_file_name_or_the_option():
    assert split_for_file("x/tool_calling.jsonl") == "tool_calling"
    assert split_for_file("interactive_agent-part2.jsonl") == "interactive_agent"
    assert split_for_file("anything.jsonl", "tool_calling") == "tool_calling"


def test_the_report_counts_match_the_store(tmp_path):
    with Store.open(tmp_path / "db.sqlite") as store:
        report = ingest(store, SHAPES, workers=1)
        assert report.status == "completed"
        assert (report.rows_read, report.conversations_stored, report.rows_rejected) == (12, 12, 0)
        assert report.decision_points_stored == store.counts()
        assert report.notes["parallel turns"] == 2
        assert report.notes["task tools named submit_message"] == 1
        assert [f["rows_read"] for f in report.files] == [8, 4]
        (row,) = store.ingests()
        assert row["status"] == "completed" and row["report"]["conversations_stored"] == 12
        assert row["files"] == [str(p) for p in SHAPES]
        text = report.to_text()
        assert "conversations stored: 12" in text and "tool_calling: 16" in text


def test_one_worker_and_two_workers_store_the_same_thing(tmp_path, small_chunks):
    src = tmp_path / "tool_calling_synth.jsonl"
    write_synth(src, 60, bad_every=7)
    dumps = []
    for workers in (1, 2):
        with Store.open(tmp_path / f"w{workers}.db") as store:
            report = ingest(store, [src], workers=workers)
            dumps.append((
                store.query("SELECT * FROM decision_points ORDER BY rowid"),
                store.query("SELECT split, uuid, source_line, n_decision_points FROM conversations ORDER BY id"),
                store.rejected(),
                report.decision_points_stored,
            ))
    assert dumps[0] == dumps[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_line_numbers_are_right_across_chunks(tmp_path, small_chunks, workers):
    src = tmp_path / "tool_calling_lines.jsonl"
    rng = random.Random(3)
    lines, expected_bad, expected_good = [], [], {}
    for n in range(1, 81):
        if n % 11 == 0:
            lines.append(b"{not json")
            expected_bad.append(n)
        elif n % 13 == 0:
            lines.append(b"")  # blank lines count as lines
        else:
            row = tool_calling_row(rng, f"row-{n}", reasoning_chars=100)
            lines.append(orjson.dumps(row))
            expected_good[f"row-{n}"] = n
    src.write_bytes(b"\n".join(lines) + b"\n")
    assert len(list(plan_chunks(src, 3000))) > 10
    with Store.open(tmp_path / "db.sqlite") as store:
        report = ingest(store, [src], workers=workers)
        assert [r["line"] for r in report.rejected] == expected_bad
        assert [r["line"] for r in store.rejected()] == expected_bad
        got = {r["uuid"]: r["source_line"] for r in store.query("SELECT uuid, source_line FROM conversations")}
        assert got == expected_good
        assert report.blank_lines == 6 and report.rows_read == 80 - 6


def test_a_file_without_a_final_newline_and_with_crlf_endings(tmp_path):
    src = tmp_path / "tool_calling_crlf.jsonl"
    rng = random.Random(5)
    rows = [tool_calling_row(rng, f"crlf-{i}", reasoning_chars=50) for i in range(3)]
    src.write_bytes(b"\r\n".join(orjson.dumps(r) for r in rows))
    with Store.open(tmp_path / "db.sqlite") as store:
        report = ingest(store, [src], workers=1)
        assert report.conversations_stored == 3 and report.rows_rejected == 0
        assert store.conversation_row("tool_calling", "crlf-2")["raw"] == rows[2]


def test_limit_counts_rows_over_all_files(tmp_path, capsys):
    db = tmp_path / "db.sqlite"
    assert main(["ingest", *map(str, SHAPES), "--db", str(db), "--limit", "10", "--quiet"]) == 0
    with Store.open(db) as store:
        assert store.n_conversations() == 10
        by_split = {r["split"]: r["n"] for r in store.query("SELECT split, count(*) AS n FROM conversations GROUP BY split")}
        assert by_split == {"tool_calling": 8, "interactive_agent": 2}
        assert store.exists("interactive_agent/ia-ids-out-of-order/2")
        assert not store.exists("interactive_agent/ia-args-string-of-list/2")


@pytest.mark.parametrize("workers", [1, 2])
def test_limit_inside_a_chunk_with_bad_lines(tmp_path, small_chunks, workers):
    src = tmp_path / "tool_calling_limit.jsonl"
    uuids = write_synth(src, 50, bad_every=5)  # lines 5, 10, ... are malformed
    with Store.open(tmp_path / "db.sqlite") as store:
        report = ingest(store, [src], workers=workers, limit=23)
        assert report.rows_read == 23
        assert [r["line"] for r in report.rejected] == [5, 10, 15, 20]
        assert report.conversations_stored == 19
        assert {r["uuid"] for r in store.query("SELECT uuid FROM conversations")} == set(uuids[:19])
        # the rest comes in on a second run, nothing twice
        report = ingest(store, [src], workers=workers)
        assert report.conversations_stored == len(uuids) - 19 and report.conversations_skipped_existing == 19
        whole_conversations_only(store)


def test_report_file_json(tmp_path, capsys):
    src = tmp_path / "tool_calling_report.jsonl"
    src.write_bytes(SHAPES[0].read_bytes() + b"{oops\n\n")
    db, out = tmp_path / "db.sqlite", tmp_path / "report.json"
    assert main(["ingest", str(src), str(SHAPES[1]), "--db", str(db), "--report", str(out), "--quiet"]) == 0
    assert f"report written to {out}" in capsys.readouterr().out
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["status"] == "completed" and report["error"] is None
    assert report["rows_read"] == 13 and report["blank_lines"] == 1
    assert report["conversations_stored"] == 12 and report["conversations_skipped_existing"] == 0
    assert report["decision_points_stored"] == {
        "tool_calling": {"function_call": 8, "message": 8},
        "interactive_agent": {"function_call": 5, "message": 2},
    }
    assert report["rows_rejected"] == 1
    assert report["rejected"] == [{"file": str(src), "line": 9, "reason": report["rejected"][0]["reason"]}]
    assert report["rejected"][0]["reason"].startswith("malformed JSON")
    assert report["rejected_by_reason"] == {"malformed JSON": 1}
    assert [f["path"] for f in report["files"]] == [str(src), str(SHAPES[1])]
    assert [f["split"] for f in report["files"]] == ["tool_calling", "interactive_agent"]
    assert report["notes"]["ungradeable decision points"] == 3
    assert report["bytes_read"] == src.stat().st_size + SHAPES[1].stat().st_size


def test_no_fts_skips_the_text_index_only(tmp_path, capsys):
    from nemo_core.data.filters import DecisionPointFilter

    db = tmp_path / "db.sqlite"
    assert main(["ingest", *map(str, SHAPES), "--db", str(db), "--no-fts", "--quiet"]) == 0
    with Store.open(db) as store:
        assert store.n_decision_points() == 23
        assert store.scalar("SELECT count(*) FROM conversation_fts") == 0
        assert store.count(DecisionPointFilter(text="zanzibarquux")) == 0


def test_progress_bar_counts_bytes(tmp_path, capsys):
    with Store.open(tmp_path / "db.sqlite") as store:
        ingest(store, SHAPES, workers=1, progress=True)
    err = capsys.readouterr().err
    total = sum(p.stat().st_size for p in SHAPES)
    assert "ingest: 100%" in err
    assert f"{total / 1000:.1f}k/{total / 1000:.1f}k" in err and "B/s" in err  # by bytes, all of them


# ---- interruptions ---------------------------------------------------------------------------------
def test_a_crash_inside_a_write_transaction_leaves_whole_conversations_and_resumes(tmp_path, small_chunks, monkeypatch):
    src = tmp_path / "tool_calling_crash.jsonl"
    uuids = write_synth(src, 40)
    victim = uuids[25]
    real_prepare = ingest_module.prepare_row

    class DiskFails:
        """Bound into the FTS insert, after the batch's conversations went in: the database fails there."""

        def __conform__(self, protocol):
            raise sqlite3.OperationalError("disk I/O error")

    def poisoned(line, split, source_file, line_no, with_fts):
        item = real_prepare(line, split, source_file, line_no, with_fts)
        if item.uuid == victim:
            item.fts_text = DiskFails()
        return item

    monkeypatch.setattr(ingest_module, "prepare_row", poisoned)
    db = tmp_path / "db.sqlite"
    with Store.open(db) as store:
        with pytest.raises(StoreError, match="the database failed .disk I/O error."):  # one line, not a traceback
            ingest(store, [src], workers=1)
        stored = store.n_conversations()
        assert 0 < stored <= 25
        # its own conversation row went in before the FTS insert failed: the rollback removed it
        assert store.conversation_row("tool_calling", victim) is None
        whole_conversations_only(store)
        assert store.ingests()[-1]["status"] == "failed"
    monkeypatch.setattr(ingest_module, "prepare_row", real_prepare)
    with Store.open(db) as store:  # the database opens and a re-run completes it
        report = ingest(store, [src], workers=2)
        assert report.conversations_skipped_existing == stored
        assert store.n_conversations() == 40
        whole_conversations_only(store)
        fts_ids = {r["rowid"] for r in store.query("SELECT rowid FROM conversation_fts")}
        assert fts_ids == {r["id"] for r in store.query("SELECT id FROM conversations")}


def test_a_crash_between_batches_keeps_earlier_batches(tmp_path, small_chunks, monkeypatch):
    src = tmp_path / "tool_calling_crash2.jsonl"
    write_synth(src, 30)
    calls = {"n": 0}
    real = Store.insert_conversations

    def flaky(self, items, ingest_id=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return real(self, items, ingest_id)

    monkeypatch.setattr(Store, "insert_conversations", flaky)
    db = tmp_path / "db.sqlite"
    with Store.open(db) as store:
        with pytest.raises(RuntimeError):
            ingest(store, [src], workers=2)
        first_batch = store.n_conversations()
        assert first_batch > 0
        whole_conversations_only(store)
    monkeypatch.setattr(Store, "insert_conversations", real)
    with Store.open(db) as store:
        ingest(store, [src], workers=1)
        assert store.n_conversations() == 30
        whole_conversations_only(store)


def test_ctrl_c_in_the_cli_says_how_to_resume(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest_module, "ingest", interrupted)
    src = tmp_path / "tool_calling_x.jsonl"
    src.write_bytes(SHAPES[0].read_bytes())
    assert main(["ingest", str(src), "--db", str(tmp_path / "db.sqlite"), "--quiet"]) == 130
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "re-run" in err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killing_a_real_ingest_midway_leaves_whole_conversations(tmp_path, sig):
    src = tmp_path / "interactive_agent_big.jsonl"
    rng = random.Random(11)
    rows = [orjson.dumps(interactive_agent_row(rng, synth_uuid(rng), reasoning_chars=200)) for _ in range(200)]
    n = 2000  # about 20 MB: a few seconds of ingest, time enough to interrupt it
    with open(src, "wb") as fh:
        for k in range(n // len(rows)):
            for row in rows:
                fh.write(row.replace(b'"uuid":"synth-', b'"uuid":"synth-%d-' % k, 1) + b"\n")
    db = tmp_path / "db.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nemo_core", "ingest", str(src), "--db", str(db), "--quiet", "--workers", "2"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint,
    )
    try:
        deadline = time.monotonic() + 60
        stored = 0
        while time.monotonic() < deadline and proc.poll() is None:  # wait until some batches are in
            time.sleep(0.05)
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=1) as conn:
                        stored = conn.execute("SELECT count(*) FROM conversations").fetchone()[0]
                except sqlite3.OperationalError:
                    continue
                if stored > 0:
                    break
        assert proc.poll() is None, "the ingest finished before it could be interrupted; make the file bigger"
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert b"re-run" in proc.stderr.read()
    with Store.open(db) as store:
        partial = store.n_conversations()
        assert 0 < partial < n
        whole_conversations_only(store)
        report = ingest(store, [src], workers=2)
        assert report.conversations_skipped_existing == partial
        assert store.n_conversations() == n
        whole_conversations_only(store)
