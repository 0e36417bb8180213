"""The failure taxonomy: every category on hand-made predictions, graded for real on the demo database,
then classified one by one (`classify`) and stored for a whole run (`compute_taxonomy`)."""

from __future__ import annotations

import json

import pytest

from nemo_core.grading.grade import Breakdown, grade_action, load_target
from nemo_core.runs.grade_file import grade_file
from nemo_core.runs.run import create_run, delete_run, insert_predictions, prediction_row
from nemo_core.runs.owner import finish_run
from nemo_core.runs.taxonomy import (CATEGORIES, LOW_MESSAGE_SCORE, argument_error_counts, classify, compute_taxonomy,
                                     ensure_taxonomy, runner_error_kind, taxonomy_is_current, taxonomy_table)


@pytest.fixture
def call_dp(demo_store):
    """A single-call function-call decision point with at least two task tools and two expected keys."""
    for row in demo_store.query(
            "SELECT id FROM decision_points WHERE action_type = 'function_call' AND n_expected_calls = 1 "
            "AND ungradeable_reason IS NULL AND n_tools >= 2 ORDER BY id"):
        target = load_target(demo_store, row["id"])
        call = target.expected_calls[0]
        if call.name in target.toolset.names and len(call.arguments or {}) >= 2:
            return target
    pytest.fail("the demo database has no suitable function-call decision point")


@pytest.fixture
def message_dp(demo_store):
    row = demo_store.query("SELECT id FROM decision_points WHERE action_type = 'message' AND expected_chars > 20 "
                           "AND ungradeable_reason IS NULL ORDER BY id LIMIT 1")[0]
    return load_target(demo_store, row["id"])


def expected(dp):
    call = dp.expected_calls[0]
    return call.name, dict(call.arguments)


def other_tool(dp):
    name, _ = expected(dp)
    return next(n for n in dp.toolset.names if n != name)


def grade_and_classify(store, dp, action):
    b = grade_action(store, dp, action, grader="keyword")
    return b, classify(b, dp.toolset.names)


def test_exact_call_is_correct(demo_store, call_dp):
    name, args = expected(call_dp)
    b, c = grade_and_classify(demo_store, call_dp, {"type": "function_call", "name": name, "arguments": args})
    assert b.reward == 1.0
    assert c.category == "correct" and c.expected_tool == name and c.predicted_tool == name


def test_message_where_call_expected(demo_store, call_dp):
    _, c = grade_and_classify(demo_store, call_dp, {"type": "message", "content": "hello"})
    assert (c.category, c.sub_kind) == ("wrong_action_type", "message_for_call")


def test_call_where_message_expected(demo_store, message_dp):
    _, c = grade_and_classify(demo_store, message_dp, {"type": "function_call", "name": "x", "arguments": {}})
    assert (c.category, c.sub_kind) == ("wrong_action_type", "call_for_message")
    assert c.predicted_tool == "x"


def test_hallucinated_tool(demo_store, call_dp):
    _, args = expected(call_dp)
    b, c = grade_and_classify(demo_store, call_dp,
                              {"type": "function_call", "name": "no_such_tool_xyz", "arguments": args})
    assert c.category == "hallucinated_tool" and c.predicted_tool == "no_such_tool_xyz"
    # without the tool names, the breakdown's schema note decides the same way
    assert classify(b, None).category == "hallucinated_tool"


def test_hallucinated_tool_with_invalid_arguments_needs_the_tool_names(demo_store, call_dp):
    b, c = grade_and_classify(demo_store, call_dp,
                              {"type": "function_call", "name": "no_such_tool_xyz", "arguments": "{not json"})
    assert c.category == "hallucinated_tool"


def test_wrong_tool(demo_store, call_dp):
    _, args = expected(call_dp)
    wrong = other_tool(call_dp)
    b, c = grade_and_classify(demo_store, call_dp, {"type": "function_call", "name": wrong, "arguments": args})
    assert b.reward == 0.5  # the arguments still earn their half (SPEC §4)
    assert c.category == "wrong_tool" and c.predicted_tool == wrong and c.expected_tool == expected(call_dp)[0]


def test_right_tool_with_each_kind_of_argument_error(demo_store, call_dp):
    name, args = expected(call_dp)
    keys = list(args)
    submitted = dict(args)
    del submitted[keys[0]]                                # missing key
    submitted["surprise_key"] = 1                         # extra key
    value = args[keys[1]]
    if isinstance(value, str):
        submitted[keys[1]] = 12345                        # wrong type (string expected)
    else:
        submitted[keys[1]] = "a string"
    b, c = grade_and_classify(demo_store, call_dp, {"type": "function_call", "name": name, "arguments": submitted})
    assert c.category == "argument_errors"
    assert (c.n_missing, c.n_extra, c.n_wrong_type, c.n_wrong_value) == (1, 1, 1, 0)


def test_wrong_value_is_not_wrong_type():
    keys = [{"key": "a", "status": "mismatch", "expected": "x", "submitted": "y"},
            {"key": "b", "status": "mismatch", "expected": 1, "submitted": 2.5},
            {"key": "c", "status": "mismatch", "expected": 5, "submitted": "5"},
            {"key": "d", "status": "match", "expected": 1, "submitted": 1},
            {"key": "e", "status": "missing", "expected": 1, "submitted": None},
            {"key": "f", "status": "extra", "expected": None, "submitted": None}]
    assert argument_error_counts(keys) == (1, 1, 2, 1)


def test_invalid_arguments_json(demo_store, call_dp):
    name, _ = expected(call_dp)
    b, c = grade_and_classify(demo_store, call_dp, {"type": "function_call", "name": name, "arguments": "{oops"})
    assert b.reason == "invalid_arguments"
    assert c.category == "invalid_arguments_json"


def test_low_message_score_and_good_message(demo_store, message_dp):
    b, c = grade_and_classify(demo_store, message_dp, {"type": "message", "content": "zebra quantum marmalade"})
    assert b.reward < LOW_MESSAGE_SCORE and c.category == "low_message_score"
    b, c = grade_and_classify(demo_store, message_dp, {"type": "message", "content": message_dp.expected_content})
    assert b.reward == 1.0 and c.category == "correct"


def test_threshold_is_a_parameter():
    b = Breakdown.graded_by_keyword(score=0.4, reason="f1")
    assert classify(b).category == "low_message_score"
    assert classify(b, low_message_score=0.3).category == "correct"


def test_runner_errors():
    assert classify(None, error="request timed out after 60 s").sub_kind == "timeout"
    assert classify(None, error="APIStatusError: 500 from the server").sub_kind == "api_error"
    assert classify(None, error="invalid action: no 'type'").sub_kind == "invalid_action"
    assert classify(None, error="something odd").sub_kind == "other"
    assert all(classify(None, error=e).category == "runner_error" for e in ("x", "timeout"))
    assert runner_error_kind("Timeout") == "timeout"


@pytest.mark.parametrize("text, kind", [
    ("timeout: no reply within 60 s", "timeout"),
    ("rate limited: 429 after 5 attempts", "api_error"),
    ("server error: 503", "api_error"),
    ("connection: refused", "api_error"),
    ("context too long: 200000 tokens", "api_error"),
    ("bad request: 400", "api_error"),
    ("auth: 401", "api_error"),
    ("invalid response: not a chat completion", "api_error"),
    ("empty reply: no content and no tool call", "invalid_action"),
    ("invalid action: a call with no name", "invalid_action"),
])
def test_runner_error_texts_of_run_model(text, kind):
    """The texts `model_runner` stores ("<kind in words>: ...") each map to their sub-kind."""
    assert classify(None, error=text) == classify(None, error=text.upper())
    assert classify(None, error=text).sub_kind == kind


def test_ungradeable_reference(demo_store):
    row = demo_store.query("SELECT id FROM decision_points WHERE ungradeable_reason IS NOT NULL "
                           "AND action_type = 'function_call' LIMIT 1")[0]
    dp = load_target(demo_store, row["id"])
    b, c = grade_and_classify(demo_store, dp, {"type": "function_call", "name": "anything", "arguments": {}})
    assert b.reward is None and c.category == "ungradeable_reference"


def test_classify_reads_stored_breakdown_json(demo_store, call_dp):
    name, args = expected(call_dp)
    b = grade_action(demo_store, call_dp, {"type": "function_call", "name": name, "arguments": {}}, grader="keyword")
    stored = json.loads(json.dumps(b.to_json()))
    assert classify(stored, call_dp.toolset.names) == classify(b, call_dp.toolset.names)


# ---- stored for a whole run ----------------------------------------------------------------------------
def _write(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_compute_taxonomy_for_a_graded_file(demo_store, call_dp, message_dp, tmp_path):
    name, args = expected(call_dp)
    # a hallucinated call with invalid arguments: only the stored tool names can tell it from a wrong tool
    hallucinated_dp = demo_store.query(
        "SELECT id FROM decision_points WHERE action_type = 'function_call' AND ungradeable_reason IS NULL "
        "AND id != ? ORDER BY id LIMIT 1", (call_dp.id,))[0]["id"]
    path = _write(tmp_path / "p.jsonl", [
        {"id": call_dp.id, "action": {"type": "function_call", "name": name, "arguments": args}},
        {"id": message_dp.id, "action": {"type": "function_call", "name": name, "arguments": args}},
        {"id": hallucinated_dp, "action": {"type": "function_call", "name": "made_up", "arguments": "[1"}},
        {"id": "tool_calling/nope/1", "action": {"type": "message", "content": "x"}},  # unknown id: not stored
    ])
    result = grade_file(demo_store, path, run_name="t1", grader="keyword")
    tax = compute_taxonomy(demo_store, result.run_id)
    assert tax.n == 3
    rows = {r["dp_id"]: r for r in demo_store.query(f"SELECT * FROM {taxonomy_table(result.run_id)}")}
    assert rows[call_dp.id]["category"] == "correct" and rows[call_dp.id]["reward"] == 1.0
    assert rows[message_dp.id]["category"] == "wrong_action_type"
    assert rows[message_dp.id]["sub_kind"] == "call_for_message"
    assert rows[hallucinated_dp]["category"] == "hallucinated_tool"
    assert rows[call_dp.id]["split"] == call_dp.split
    assert taxonomy_is_current(demo_store, result.run_id)
    assert ensure_taxonomy(demo_store, result.run_id) is None  # nothing to do


def test_runner_error_rows_and_recompute_replaces(demo_store, call_dp):
    run_id = create_run(demo_store, "runner", kind="run-model", grader="keyword", rule_version="x")
    insert_predictions(demo_store, [prediction_row(run_id, call_dp.id, None, split=call_dp.split,
                                                   action_type="function_call", error="timeout after 30 s")])
    finish_run(demo_store, run_id)
    compute_taxonomy(demo_store, run_id)
    compute_taxonomy(demo_store, run_id)
    rows = demo_store.query(f"SELECT category, sub_kind FROM {taxonomy_table(run_id)}")
    assert rows == [{"category": "runner_error", "sub_kind": "timeout"}]


def test_deleting_a_run_deletes_its_taxonomy(demo_store, call_dp):
    run_id = create_run(demo_store, "gone", kind="grade", grader="keyword", rule_version="x")
    insert_predictions(demo_store, [prediction_row(run_id, call_dp.id, None, error="timeout")])
    finish_run(demo_store, run_id)
    compute_taxonomy(demo_store, run_id)
    assert demo_store.scalar(f"SELECT count(*) FROM {taxonomy_table(run_id)}") == 1
    delete_run(demo_store, run_id)
    assert not demo_store.scalar("SELECT 1 FROM sqlite_schema WHERE name = ?", (taxonomy_table(run_id),))
    assert demo_store.scalar("SELECT count(*) FROM taxonomy_state WHERE run_id = ?", (run_id,)) == 0


def test_every_category_is_documented():
    assert list(CATEGORIES)[0] == "correct"
    assert {"wrong_action_type", "hallucinated_tool", "wrong_tool", "argument_errors", "invalid_arguments_json",
            "low_message_score", "runner_error"} <= set(CATEGORIES)


def _mixed_predictions(store, seed: int = 5) -> list[dict]:
    """One prediction for every demo decision point, each mutated in one of the ways the taxonomy tells apart."""
    import random

    rng = random.Random(seed)
    out = []
    for i, row in enumerate(store.query("SELECT id FROM decision_points ORDER BY id")):
        dp = load_target(store, row["id"])
        kind = i % 10
        if dp.expected_calls:
            name, args = dp.expected_calls[0].name, dict(dp.expected_calls[0].arguments or {})
            others = [n for n in dp.toolset.names if n != name]
            if kind == 1 and args:
                args[rng.choice(sorted(args))] = "changed"
            elif kind == 2:
                args["extra_key"] = 1
            elif kind == 3 and args:
                args.pop(sorted(args)[0])
            elif kind == 4:
                name = others[0] if others else "made_up"
            elif kind == 5:
                name = "made_up_tool"
            if kind == 6:
                action = {"type": "message", "content": "I can help with that."}
            elif kind == 7:
                action = {"type": "function_call", "name": name, "arguments": "[1"}
            elif kind == 8:
                action = {"type": "not an action"}
            else:
                action = {"type": "function_call", "name": name, "arguments": args}
        else:
            text = dp.expected_content or ""
            action = ({"type": "function_call", "name": "lookup", "arguments": {}} if kind == 6 else
                      {"type": "not an action"} if kind == 8 else
                      {"type": "message", "content": text if kind % 2 else "unrelated words entirely"})
        out.append({"id": dp.id, "action": action})
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_grade_classifies_as_it_grades_exactly_as_a_recomputation(demo_store, tmp_path, workers):
    """`grade` stores each prediction's category from the breakdown in memory (in worker processes with
    workers); recomputing from the stored breakdowns must give the same rows, every column."""
    path = _write(tmp_path / "mixed.jsonl", _mixed_predictions(demo_store))
    result = grade_file(demo_store, path, run_name=f"live-{workers}", grader="keyword", workers=workers)
    table = taxonomy_table(result.run_id)
    assert taxonomy_is_current(demo_store, result.run_id)
    live = demo_store.query(f"SELECT * FROM {table} ORDER BY prediction_id")
    n = demo_store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", (result.run_id,))
    assert len(live) == n == demo_store.n_decision_points()
    # the rows point at their own predictions
    joined = demo_store.query(f"SELECT count(*) AS n FROM {table} t JOIN predictions p ON p.id = t.prediction_id "
                              "AND p.dp_id = t.dp_id AND p.run_id = ?", (result.run_id,))[0]["n"]
    assert joined == n
    assert {r["category"] for r in live} == set(CATEGORIES)  # the mixed file reaches every category
    # indexes were built when the run finished
    indexes = {r["name"] for r in demo_store.query("SELECT name FROM sqlite_schema WHERE tbl_name = ? AND type = 'index'",
                                                   (table,))}
    assert indexes == {f"{table}_by_category", f"{table}_by_tool", f"{table}_by_dp"}
    compute_taxonomy(demo_store, result.run_id)
    assert demo_store.query(f"SELECT * FROM {table} ORDER BY prediction_id") == live


def test_an_interrupted_grade_keeps_what_it_graded_and_its_taxonomy(demo_store, tmp_path, monkeypatch):
    """Stopped after the first batch: the stored predictions and their taxonomy rows agree, and the
    taxonomy is indexed on first use."""
    import nemo_core.runs.grade_file as grading

    lines = _mixed_predictions(demo_store)
    path = _write(tmp_path / "mixed.jsonl", lines)
    monkeypatch.setattr(grading, "BATCH_LINES", 50)
    real = grading.grade_lines
    calls = {"n": 0}

    def stop_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(grading, "grade_lines", stop_on_second)
    with pytest.raises(KeyboardInterrupt):
        grade_file(demo_store, path, run_name="stopped", grader="keyword", workers=0)
    run_id = demo_store.scalar("SELECT id FROM runs WHERE name = 'stopped'")
    assert demo_store.scalar("SELECT status FROM runs WHERE id = ?", (run_id,)) == "interrupted"
    n = demo_store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", (run_id,))
    assert n == 50
    assert demo_store.scalar(f"SELECT count(*) FROM {taxonomy_table(run_id)}") == 50
    assert taxonomy_is_current(demo_store, run_id)


def test_a_failure_storing_the_last_predictions_fails_the_run_instead_of_leaving_it_running(demo_store, tmp_path,
                                                                                             monkeypatch):
    import nemo_core.runs.owner as runs

    path = _write(tmp_path / "mixed.jsonl", _mixed_predictions(demo_store))

    def disk_full(conn, rows):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(runs, "insert_numbered_predictions", disk_full)
    with pytest.raises(OSError, match="disk full"):
        grade_file(demo_store, path, run_name="full-disk", grader="keyword", workers=0)
    assert demo_store.scalar("SELECT status FROM runs WHERE name = 'full-disk'") == "failed"


def test_a_table_filled_while_grading_is_only_indexed_when_asked(demo_store, call_dp):
    """A `grade` still running has classified every stored prediction but has no indexes yet: pages wait for
    it (awaiting), and asking for it builds the indexes without recomputing the rows."""
    from nemo_core.runs.analysis import awaiting_taxonomy
    from nemo_core.runs.run import get_run, insert_numbered_predictions, next_prediction_id
    from nemo_core.runs.taxonomy import add_classified, start_taxonomy, taxonomy_row

    run_id = create_run(demo_store, "live-grade", kind="grade", grader="keyword", rule_version="x")
    with demo_store.transaction() as conn:
        start_taxonomy(conn, run_id)
        pid = next_prediction_id(conn)
        row = prediction_row(run_id, call_dp.id, None, split=call_dp.split, action_type="function_call",
                             error="timeout after 30 s")
        insert_numbered_predictions(conn, [(pid, *row)])
        # a row only the live writer could have written (a recomputation would say runner_error / timeout)
        add_classified(conn, run_id, [taxonomy_row(pid, call_dp.id, ("correct", None, None, None, 0, 0, 0, 0),
                                                   call_dp.split, "function_call", None)])
    assert awaiting_taxonomy(demo_store, get_run(demo_store, run_id))
    assert not taxonomy_is_current(demo_store, run_id)
    ensure_taxonomy(demo_store, run_id)
    assert taxonomy_is_current(demo_store, run_id) and not awaiting_taxonomy(demo_store, get_run(demo_store, run_id))
    assert demo_store.query(f"SELECT category FROM {taxonomy_table(run_id)}") == [{"category": "correct"}]
    compute_taxonomy(demo_store, run_id)  # a recomputation, by contrast, reclassifies from the stored row
    assert demo_store.query(f"SELECT category, sub_kind FROM {taxonomy_table(run_id)}") == [
        {"category": "runner_error", "sub_kind": "timeout"}]
