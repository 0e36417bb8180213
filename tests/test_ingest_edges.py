"""Edge cases found after the first test pass: a byte-order mark, the report of a failed ingest,
a one-bin histogram."""

from __future__ import annotations

import socket
import json
from pathlib import Path

import pytest

import nemo_core.data.ingest as ingest_module
from nemo_core.cli.main import main
from nemo_core.data.store import Store

SHAPES = Path(__file__).resolve().parent / "data" / "tool_calling_shapes.jsonl"


def test_a_utf8_byte_order_mark_does_not_lose_the_first_row(tmp_path):
    path = tmp_path / "tool_calling_bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + SHAPES.read_bytes())
    n_rows = len(SHAPES.read_bytes().splitlines())
    with Store.open(tmp_path / "t.db") as store:
        report = ingest_module.ingest(store, [path], workers=1)
        assert report.rows_rejected == 0
        assert report.conversations_stored == n_rows


def test_a_failed_ingest_still_writes_its_report(tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real = Store.insert_conversations

    def fail_second(self, items, ingest_id=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return real(self, items, ingest_id)

    monkeypatch.setattr(Store, "insert_conversations", fail_second)
    real_plan = ingest_module.plan_chunks
    monkeypatch.setattr(ingest_module, "plan_chunks", lambda path, chunk_bytes=2_000: real_plan(path, chunk_bytes))
    out = tmp_path / "report.json"
    with pytest.raises(OSError):
        main(["ingest", str(SHAPES), "--db", str(tmp_path / "t.db"), "--workers", "1", "--report", str(out)])
    report = json.loads(out.read_text())
    assert report["status"] == "failed"
    assert "disk full" in report["error"]
    assert report["conversations_stored"] >= 1  # the first batch is kept and counted


def test_histogram_with_one_bin_counts_everything(demo_store):
    rows = demo_store.histogram("n_tools", [0])
    assert sum(r["n"] for r in rows) == demo_store.n_decision_points()
    assert {r["bin"] for r in rows} == {0}


def _dp_indexes(store: Store) -> set[str]:
    return {r["name"] for r in store.query(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'decision_points' AND name LIKE 'dp_%'")}


def test_a_bulk_load_rebuilds_every_index_at_the_end(tmp_path, monkeypatch):
    from nemo_core.data.schema import DP_INDEXES

    monkeypatch.setattr(ingest_module, "BULK_BYTES", 0)
    with Store.open(tmp_path / "t.db") as store:
        seen_during = []
        real = Store.insert_conversations

        def spy(self, items, ingest_id=None):
            seen_during.append(_dp_indexes(self))
            return real(self, items, ingest_id)

        monkeypatch.setattr(Store, "insert_conversations", spy)
        ingest_module.ingest(store, [SHAPES], workers=1)
        assert seen_during and seen_during[0] == set()  # rows went in without the secondary indexes
        assert _dp_indexes(store) == set(DP_INDEXES)
        plan = store.query("EXPLAIN QUERY PLAN SELECT * FROM decision_points WHERE id = ?", ("x",))
        assert "dp_id" in " ".join(r["detail"] for r in plan)


def test_an_interrupted_bulk_load_gets_its_indexes_back_on_the_next_open(tmp_path, monkeypatch):
    from nemo_core.data.schema import DP_INDEXES

    monkeypatch.setattr(ingest_module, "BULK_BYTES", 0)
    monkeypatch.setattr(Store, "create_decision_point_indexes", lambda self: None)  # as if killed first
    with Store.open(tmp_path / "t.db") as store:
        ingest_module.ingest(store, [SHAPES], workers=1)
        assert _dp_indexes(store) == set()
    monkeypatch.undo()
    with Store.open(tmp_path / "t.db") as store:
        assert _dp_indexes(store) == set(DP_INDEXES)


def test_integers_beyond_64_bits_survive_storage_and_grading(tmp_path):
    """orjson turns them into floats silently; what is read back and graded must be the exact value."""
    from nemo_core.runs.grade_file import grade_file

    big = 12345678901234567890123
    row = ('{"uuid": "big-int", "messages": [{"role": "system", "content": ""}, {"role": "user", "content": "x"}, '
           '{"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": '
           f'{{"name": "f", "arguments": {{"n": {big}}}}}}}]}}], "tools": []}}\n')
    path = tmp_path / "tool_calling_big.jsonl"
    path.write_text(row)
    with Store.open(tmp_path / "t.db") as store:
        ingest_module.ingest(store, [path], workers=1)
        dp = store.get("tool_calling/big-int/2")
        assert dp.expected_calls[0].arguments == {"n": big}
        assert isinstance(dp.expected_calls[0].arguments["n"], int)
        preds = tmp_path / "preds.jsonl"
        near = big + 1  # the same float, a different integer
        preds.write_text(
            f'{{"id": "tool_calling/big-int/2", "action": {{"type": "function_call", "name": "f", "arguments": {{"n": {near}}}}}}}\n')
        result = grade_file(store, preds, run_name="big")
        reward = store.scalar("SELECT reward FROM predictions WHERE run_id = ?", (result.run_id,))
        assert reward == 0.5  # right name, the one argument differs


def test_an_ingest_whose_process_was_killed_is_marked_interrupted(tmp_path):
    """SIGKILL leaves no chance to record the end: the next look at the ingests notices the process is gone."""
    import signal
    import subprocess
    import sys

    import orjson

    with Store.open(tmp_path / "t.db") as store:
        victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        killed = store.start_ingest(["a.jsonl"], "2026-01-01T00:00:00+00:00")
        store.conn.execute("UPDATE ingests SET report = ? WHERE id = ?",  # as if that process had started it
                           (orjson.dumps({"process": {"pid": victim.pid, "host": socket.gethostname()}}).decode(), killed))
        alive = store.start_ingest(["b.jsonl"], "2026-01-01T00:00:01+00:00")  # this process: still running
        elsewhere = store.start_ingest(["c.jsonl"], "2026-01-01T00:00:02+00:00")
        store.conn.execute("UPDATE ingests SET report = ? WHERE id = ?",
                           (orjson.dumps({"process": {"pid": victim.pid, "host": "another-machine"}}).decode(), elsewhere))
        assert {r["id"]: r["status"] for r in store.ingests()}[killed] == "running"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        status = {r["id"]: r["status"] for r in store.ingests()}
        assert status == {killed: "interrupted", alive: "running", elsewhere: "running"}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_uuid_repeated_in_the_input_is_reported_with_both_lines(tmp_path, workers, monkeypatch):
    """The first copy is stored; the later one is a rejected line naming the kept copy, not "already stored"."""
    import random

    from nemo_core.data.synth import tool_calling_row

    rng = random.Random(3)
    rows = [tool_calling_row(rng, "dup-a"), tool_calling_row(rng, "only-b"), tool_calling_row(rng, "dup-a")]
    rows += [tool_calling_row(rng, f"filler-{i}") for i in range(20)] + [tool_calling_row(rng, "only-b")]
    src = tmp_path / "tool_calling_dups.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    real_plan = ingest_module.plan_chunks  # small chunks: with 2 workers the copies land in different chunks
    monkeypatch.setattr(ingest_module, "plan_chunks", lambda path, chunk_bytes=3_000: real_plan(path, chunk_bytes))
    with Store.open(tmp_path / "t.db") as store:
        report = ingest_module.ingest(store, [src], workers=workers)
        assert report.conversations_stored == 22 and report.conversations_skipped_existing == 0
        assert [(r["line"], r["reason"]) for r in sorted(report.rejected, key=lambda r: r["line"])] == [
            (3, "uuid 'dup-a' repeated in this input: the copy on line 1 of 'tool_calling_dups.jsonl' was kept"),
            (24, "uuid 'only-b' repeated in this input: the copy on line 2 of 'tool_calling_dups.jsonl' was kept"),
        ]
        assert store.scalar("SELECT source_line FROM conversations WHERE uuid = 'dup-a'") == 1
        assert store.scalar("SELECT count(*) FROM rejected_rows") == 2
        again = ingest_module.ingest(store, [src], workers=workers)  # a second ingest: all stored before it
        assert again.conversations_stored == 0 and again.conversations_skipped_existing == 24
        assert again.rows_rejected == 0 and store.scalar("SELECT count(*) FROM rejected_rows") == 2
