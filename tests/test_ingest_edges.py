"""Edge cases found after the first test pass: a byte-order mark, the report of a failed ingest,
a one-bin histogram."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nemo_core.ingest as ingest_module
from nemo_core.cli import main
from nemo_core.store import Store

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
