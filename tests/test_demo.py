"""The bundled demo data (demo.py, data/demo/): generator and files in sync, every shape and flag present,
and the demo database built with the broken lines reported."""

from __future__ import annotations

import json
import os
import sqlite3
import shutil
from pathlib import Path

import pytest

from nemo_core.base.config import DEMO_DIR
from nemo_core.data.demo import BROKEN_LINES, FILES_META_KEY, _meta, ensure_demo_db, files_fingerprint, write_demo_files
from nemo_core.data.extract import FLAGS
from nemo_core.data.store import Store

GENERATED = ["tool_calling_demo.jsonl", "interactive_agent_demo.jsonl", "tool_calling_demo_broken_lines.jsonl"]


def test_the_generator_reproduces_the_committed_files_byte_for_byte(tmp_path):
    written = write_demo_files(tmp_path)
    assert sorted(p.name for p in written) == sorted(GENERATED)
    for name in GENERATED:
        assert (tmp_path / name).read_bytes() == (DEMO_DIR / name).read_bytes(), (
            f"data/demo/{name} is out of date: run `python -m nemo_core demo --write` and commit it")


def test_demo_files_are_the_generated_ones_and_the_real_rows():
    assert sorted(p.name for p in DEMO_DIR.glob("*.jsonl")) == sorted(
        [*GENERATED, "tool_calling_real_records.jsonl", "interactive_agent_real_records.jsonl"])


def demo_rows() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(DEMO_DIR.glob("*.jsonl")):
        if "broken" in path.name:
            continue
        split = "tool_calling" if path.name.startswith("tool_calling") else "interactive_agent"
        with open(path, encoding="utf-8") as fh:
            out.extend((split, json.loads(line)) for line in fh)
    return out


def test_demo_data_covers_every_shape_of_spec_section_1():
    seen: set[str] = set()
    for split, row in demo_rows():
        tools = row.get("tools")
        if tools == []:
            seen.add("tools: []")
        names = [t["function"].get("name") for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
        if len(names) != len(set(names)):
            seen.add("duplicate tool names")
        for t in tools:
            if not isinstance(t, dict):
                seen.add("non-object tool")
                continue
            fn = t.get("function", {})
            params = fn.get("parameters")
            if not fn.get("name"):
                seen.add("nameless tool")
            if fn.get("name") == "submit_message":
                seen.add("task tool named submit_message")
            if params is None or (isinstance(params, dict) and "properties" not in params):
                seen.add("no properties")
            elif isinstance(params, dict) and params.get("properties") == {}:
                seen.add("empty properties")
            if isinstance(params, dict) and params.get("type") not in (None, "object"):
                seen.add("root type not object")
            if isinstance(params, dict) and "type" not in params:
                seen.add("parameters without type")
            if "required" in fn:
                seen.add("required at function level")
        if set(row) - {"uuid", "messages", "tools", "license", "used_in", "reasoning"}:
            seen.add("extra top-level key")
        calls_waiting = 0
        for msg in row["messages"]:
            if msg["role"] == "assistant":
                if "tool_calls" in msg and msg["tool_calls"] is None:
                    seen.add("tool_calls: null")
                if "reasoning_content" not in msg:
                    seen.add("missing reasoning_content")
                calls = msg.get("tool_calls") or []
                if calls_waiting:
                    seen.add("unanswered call")
                calls_waiting = len(calls)
                if len(calls) > 1:
                    seen.add("parallel calls")
                for c in calls:
                    args = c["function"]["arguments"]
                    seen.add(f"{split} arguments {type(args).__name__}")
                    if "index" in c:
                        seen.add("call with index")
                if not calls and not str(msg.get("content") or "").strip():
                    seen.add("empty expected message")
            elif msg["role"] == "tool":
                seen.add(f"tool content {type(msg['content']).__name__}")
                if "tool_call_id" not in msg:
                    seen.add("tool reply without tool_call_id")
                if calls_waiting == 0:
                    seen.add("orphan tool reply")
                calls_waiting = max(0, calls_waiting - 1)
            else:
                calls_waiting = 0
    expected = {
        "tools: []", "duplicate tool names", "non-object tool", "nameless tool", "task tool named submit_message",
        "no properties", "empty properties", "root type not object", "parameters without type",
        "required at function level", "tool_calls: null", "missing reasoning_content", "unanswered call",
        "parallel calls", "tool_calling arguments dict", "tool_calling arguments list", "interactive_agent arguments str",
        "call with index", "empty expected message", "tool content dict", "tool content list", "tool content bool",
        "tool content str", "tool reply without tool_call_id", "orphan tool reply", "extra top-level key",
    }
    assert expected - seen == set()


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    path = ensure_demo_db(tmp_path_factory.mktemp("demo") / "demo.db")
    store = Store.open(path)
    yield store
    store.close()


def test_the_demo_database_has_both_splits_and_every_flag(demo_store):
    counts = demo_store.counts()
    for split in ("tool_calling", "interactive_agent"):
        assert counts[split]["function_call"] > 10 and counts[split]["message"] > 10, counts
    flags = demo_store.flag_counts()
    assert {name for name, n in flags.items() if n == 0} == set()
    assert set(flags) == set(FLAGS)
    assert demo_store.n_conversations() >= 40


def test_the_broken_lines_are_rejected_with_their_line_numbers(demo_store):
    rejected = [r for r in demo_store.rejected() if r["file"].endswith("tool_calling_demo_broken_lines.jsonl")]
    assert [r["line"] for r in rejected] == list(range(1, len(BROKEN_LINES) + 1))
    reasons = [r["reason"] for r in rejected]
    assert reasons[0].startswith("malformed JSON")
    assert "not an object" in reasons[1]
    assert "no 'messages'" in reasons[2]
    assert "unknown role 'moderator'" in reasons[3]
    assert demo_store.n_rejected() == len(BROKEN_LINES)  # nothing else in the demo is rejected
    (ingest,) = demo_store.ingests()
    assert ingest["status"] == "completed" and ingest["report"]["rows_rejected"] == len(BROKEN_LINES)


def test_the_demo_database_is_left_as_a_single_file(tmp_path):
    db = ensure_demo_db(tmp_path / "demo.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.db"]  # no -wal, -shm or temporary file
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_ensure_demo_db_rebuilds_only_when_the_files_change_and_keeps_the_old_one(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(DEMO_DIR, src)
    db = tmp_path / "demo.db"
    ensure_demo_db(db, src)
    with sqlite3.connect(db) as conn:  # the user's own work in the demo database
        conn.execute("INSERT INTO meta (key, value) VALUES ('user_work', 'a run of mine')")
    stamp = db.stat().st_mtime_ns
    # a checkout gives the files a newer time but the same bytes: kept as is (it was rebuilt before)
    for f in src.glob("*.jsonl"):
        os.utime(f, ns=(stamp + 10**9, stamp + 10**9))
    ensure_demo_db(db, src)
    assert db.stat().st_mtime_ns == stamp and _meta(db, "user_work") == "a run of mine"
    # a demo file changes: rebuilt, the new row is in, and the database it replaced is kept beside it
    extra = src / "tool_calling_demo.jsonl"
    row = json.loads(extra.read_text(encoding="utf-8").splitlines()[0])
    row["uuid"] = "added-later"
    with open(extra, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    ensure_demo_db(db, src)
    with Store.open(db) as store:
        assert store.conversation_row("tool_calling", "added-later") is not None
    assert _meta(db, "user_work") is None
    kept = list(tmp_path.glob("demo.replaced-*.db"))
    assert len(kept) == 1 and _meta(kept[0], "user_work") == "a run of mine"
    assert not list(tmp_path.glob(".demo-*"))  # no temporary file left behind


def test_a_demo_database_from_before_the_fingerprint_is_judged_by_time(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(DEMO_DIR, src)
    db = tmp_path / "demo.db"
    ensure_demo_db(db, src)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM meta WHERE key = ?", (FILES_META_KEY,))
    first = db.stat().st_mtime_ns
    os.utime(db, ns=(first + 10**9, first + 10**9))  # newer than the files: kept
    ensure_demo_db(db, src)
    assert db.stat().st_mtime_ns == first + 10**9
    for f in src.glob("*.jsonl"):  # files newer than it: rebuilt (with the fingerprint from now on)
        os.utime(f, ns=(first + 2 * 10**9, first + 2 * 10**9))
    ensure_demo_db(db, src)
    assert _meta(db, FILES_META_KEY) == files_fingerprint(sorted(src.glob("*.jsonl")))


def test_ensure_demo_db_accepts_a_string_path(tmp_path):
    path = ensure_demo_db(str(tmp_path / "demo.db"))
    assert Path(path).exists()


def test_the_real_rows_are_attributed():
    readme = (DEMO_DIR / "README.md").read_text(encoding="utf-8")
    assert "CC-BY-4.0" in readme.upper().replace(" ", "-") and "nvidia/Nemotron-Agentic-v1" in readme
    assert "real_records" in readme
