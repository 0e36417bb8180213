"""The overview aggregates: index-based histograms agree with the plain SQL, and are stored per ingest."""

from __future__ import annotations

import orjson
import pytest

from nemo_core.data import overview
from nemo_core.base.config import DEMO_DIR
from nemo_core.data.ingest import ingest


def test_bin_labels():
    assert overview.bin_labels([0, 1, 2, 5]) == ["0", "1", "2–4", "≥5"]


@pytest.mark.parametrize("column", list(overview.HISTOGRAMS))
def test_index_histogram_matches_the_table_scan(demo_store, column):
    ranges = overview.split_rowid_ranges(demo_store)
    assert ranges is not None and set(ranges) == {"tool_calling", "interactive_agent"}
    bins = overview.HISTOGRAMS[column][1]
    expected = sorted(demo_store.histogram(column, bins), key=lambda r: (r["bin"], r["split"]))
    assert overview.histogram(demo_store, column, bins, ranges) == expected
    assert sum(r["n"] for r in expected) == demo_store.n_decision_points()


def test_interleaved_splits_fall_back_to_the_table_scan(empty_store):
    tc = sorted(DEMO_DIR.glob("tool_calling_demo.jsonl"))
    ia = sorted(DEMO_DIR.glob("interactive_agent_demo.jsonl"))
    tc_real = sorted(DEMO_DIR.glob("tool_calling_real_records.jsonl"))
    for files in (tc, ia, tc_real):
        ingest(empty_store, files, workers=1)
    assert overview.split_rowid_ranges(empty_store) is None
    bins = overview.HISTOGRAMS["n_tools"][1]
    assert overview.histogram(empty_store, "n_tools", bins, None) == empty_store.histogram("n_tools", bins)
    data = overview.compute_overview(empty_store)
    total = sum(r["n"] for r in data["histograms"]["n_tools"]["rows"])
    assert total == empty_store.n_decision_points()


def test_overview_is_stored_once_per_signature(demo_store):
    first = overview.overview(demo_store)
    assert first["counts"] == demo_store.counts()
    assert first["n_rejected"] == 4
    assert set(first["flags"]) == set(overview.FLAGS)
    stored = demo_store.query("SELECT signature, body FROM overview_cache")
    assert len(stored) == 1 and stored[0]["signature"] == overview.signature(demo_store)
    # the next call reads the stored copy (prove it by marking the stored copy)
    marked = {**orjson.loads(stored[0]["body"]), "conversations": -1}
    demo_store.conn.execute("UPDATE overview_cache SET body = ?", (orjson.dumps(marked).decode(),))
    assert overview.overview(demo_store)["conversations"] == -1


def test_a_new_ingest_changes_the_signature_and_recomputes(empty_store):
    ingest(empty_store, sorted(DEMO_DIR.glob("tool_calling_demo.jsonl")), workers=1)
    before = overview.overview(empty_store)
    sig = overview.signature(empty_store)
    ingest(empty_store, sorted(DEMO_DIR.glob("interactive_agent_demo.jsonl")), workers=1)
    assert overview.signature(empty_store) != sig
    after = overview.overview(empty_store)
    assert sum(after["counts"]["interactive_agent"].values()) > 0 == sum(before["counts"]["interactive_agent"].values())
    assert empty_store.scalar("SELECT count(*) FROM overview_cache") == 1
