"""Grading views (grading_view.py): written at ingest, read by the keyword grader's loader, equal in every
respect to what the whole conversation gives, and filled in for a database from before they existed."""

from __future__ import annotations

import json

import pytest

from nemo_core.data import grading_view
from nemo_core.cli.main import main
from nemo_core.grading.grade import TargetLoader, grade_action
from nemo_core.runs.grade_file import grade_file
from nemo_core.data.grading_view import fill_views, missing_views, read_view
from nemo_core.data.store import Store

from test_taxonomy import _mixed_predictions, _write


def _all_ids(store) -> list[str]:
    return [r["id"] for r in store.query("SELECT id FROM decision_points ORDER BY id")]


def test_ingest_writes_one_current_view_per_conversation(demo_store):
    assert demo_store.n_conversations() > 0
    assert demo_store.scalar("SELECT count(*) FROM grading_views") == demo_store.n_conversations()
    assert missing_views(demo_store) == 0


def test_targets_from_views_equal_targets_from_conversations(demo_store):
    """Same expected calls (names, arguments, errors), same reference text, same tools and schemas, same
    flags, for every demo decision point; and the view path really was taken (no conversation read)."""
    ids = _all_ids(demo_store)
    whole = TargetLoader(demo_store, with_context=True).load(ids)
    loader = TargetLoader(demo_store, with_context=False)
    viewed = loader.load(ids)
    assert loader.n_from_conversations == 0
    assert set(viewed) == set(whole) == set(ids)
    for dp_id in ids:
        a, b = whole[dp_id], viewed[dp_id]
        assert b.context is None and isinstance(a.context, list)
        assert (a.split, a.action_type, a.flags, a.ungradeable_reason) == (b.split, b.action_type, b.flags,
                                                                           b.ungradeable_reason)
        assert a.expected_calls == b.expected_calls
        assert a.expected_content == b.expected_content
        assert a.toolset.names == b.toolset.names
        for call in a.expected_calls:
            assert a.toolset.schema_of(call.name) == b.toolset.schema_of(call.name)


def test_integers_beyond_64_bits_are_exact_in_the_view(tmp_path):
    from nemo_core.data.ingest import ingest

    big = 12345678901234567890123
    row = {"uuid": "big", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "",
           "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"n": 0}}}]}], "tools": []}
    path = tmp_path / "tool_calling_big.jsonl"
    path.write_text(json.dumps(row).replace('"n": 0', f'"n": {big}') + "\n")
    with Store.open(tmp_path / "t.db") as store:
        ingest(store, [path], workers=1)
        tools, turns = read_view(store.scalar("SELECT body FROM grading_views"))
        assert turns[1][0][0]["function"]["arguments"]["n"] == big  # an int, not the float orjson would make
        target = TargetLoader(store, with_context=False).load(["tool_calling/big/1"])["tool_calling/big/1"]
        assert target.expected_calls[0].arguments == {"n": big}


def test_the_llm_grader_is_never_given_a_target_without_its_conversation(demo_store):
    from nemo_core.grading.endpoint import EndpointConfig

    dp_id = demo_store.scalar("SELECT id FROM decision_points WHERE action_type = 'message' LIMIT 1")
    target = TargetLoader(demo_store, with_context=False).load([dp_id])[dp_id]
    config = EndpointConfig(api_key="sk-test", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="needs the conversation"):
        grade_action(None, target, {"type": "message", "content": "hi"}, grader="llm", llm=config)


def test_a_database_without_views_grades_the_same_and_upgrade_fills_them(demo_db, tmp_path, capsys):
    preds = _write(tmp_path / "mixed.jsonl", _mixed_predictions_of(demo_db))
    with Store.open(demo_db) as store:
        with_views = _grade(store, preds, "with-views", tmp_path)
        store.conn.execute("DELETE FROM grading_views")
        n = store.n_conversations()
        assert missing_views(store) == n
        loader = TargetLoader(store, with_context=False)
        loader.load(_all_ids(store))
        assert loader.n_from_conversations == n
        assert _grade(store, preds, "without-views", tmp_path) == with_views

    assert main(["grade", str(preds), "--db", str(demo_db), "--grader", "keyword", "--quiet"]) == 0
    assert f"{n:,} conversations have no grading view" in capsys.readouterr().err
    assert main(["upgrade", "--db", str(demo_db), "--quiet"]) == 0
    assert f"wrote {n:,} grading views" in capsys.readouterr().out
    assert main(["upgrade", "--db", str(demo_db), "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["grade", str(preds), "--db", str(demo_db), "--grader", "keyword", "--quiet"]) == 0
    assert "grading view" not in capsys.readouterr().err
    with Store.open(demo_db) as store:
        assert missing_views(store) == 0
        assert _grade(store, preds, "upgraded", tmp_path) == with_views


def test_an_interrupted_fill_keeps_its_batches_and_the_next_one_finishes(demo_store, monkeypatch):
    demo_store.conn.execute("DELETE FROM grading_views")
    n = demo_store.n_conversations()
    monkeypatch.setattr(grading_view, "FILL_BATCH", 3)
    real, calls = grading_view.build_view, []

    def fail_in_second_batch(row, line):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(row, line)

    monkeypatch.setattr(grading_view, "build_view", fail_in_second_batch)
    with pytest.raises(KeyboardInterrupt):
        fill_views(demo_store)
    assert missing_views(demo_store) == n - 3  # the first batch is kept, the second rolled back whole
    assert fill_views(demo_store) == n - 3
    assert missing_views(demo_store) == 0


def test_a_view_of_an_older_version_is_not_used(demo_store, monkeypatch):
    """A view written by an older VIEW_VERSION may hold less or another shape: it is read around, and
    `upgrade` rewrites it."""
    demo_store.conn.execute("UPDATE grading_views SET version = version - 1 WHERE conversation_id = 1")
    assert missing_views(demo_store) == 1
    dp_id = demo_store.scalar("SELECT id FROM decision_points WHERE conversation_id = 1 LIMIT 1")
    loader = TargetLoader(demo_store, with_context=False)
    assert dp_id in loader.load([dp_id]) and loader.n_from_conversations == 1
    assert fill_views(demo_store) == 1
    assert missing_views(demo_store) == 0


def _mixed_predictions_of(db) -> list[dict]:
    with Store.open(db) as store:
        return _mixed_predictions(store)


def _grade(store, preds, name, tmp_path) -> list[dict]:
    out = tmp_path / f"{name}.jsonl"
    with out.open("wb") as fh:
        grade_file(store, preds, run_name=name, grader="keyword", out=fh, workers=0)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) > 20 and any(r["reward"] == 1.0 for r in lines) and any(r["reward"] == 0.0 for r in lines)
    return lines


def test_recomputed_taxonomy_reads_tool_names_from_views_or_else_conversations(demo_store, tmp_path):
    """`compute_taxonomy` (model runs, a new taxonomy version) needs each task's tool names to tell a
    hallucinated tool from a wrong one: the same rows whether they come from views or conversations."""
    from nemo_core.runs.taxonomy import compute_taxonomy, taxonomy_table

    path = _write(tmp_path / "mixed.jsonl", _mixed_predictions(demo_store))
    run_id = grade_file(demo_store, path, run_name="tax", grader="keyword", workers=0).run_id
    table = taxonomy_table(run_id)
    live = demo_store.query(f"SELECT * FROM {table} ORDER BY prediction_id")
    assert {r["category"] for r in live} >= {"hallucinated_tool", "wrong_tool"}
    compute_taxonomy(demo_store, run_id)
    assert demo_store.query(f"SELECT * FROM {table} ORDER BY prediction_id") == live
    demo_store.conn.execute("DELETE FROM grading_views")
    compute_taxonomy(demo_store, run_id)
    assert demo_store.query(f"SELECT * FROM {table} ORDER BY prediction_id") == live
