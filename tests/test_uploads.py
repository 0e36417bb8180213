"""Uploaded predictions: every bad line reported with its line number, every good one graded and kept."""

from __future__ import annotations

import io
import json

import pytest

from nemo_core.runs.analysis import taxonomy_counts
from nemo_core.runs.run import get_run, predictions
from nemo_core.runs.uploads import grade_upload, validate_predictions


@pytest.fixture
def upload(demo_store) -> tuple[bytes, dict]:
    call = demo_store.query("SELECT id, expected_tool FROM decision_points WHERE action_type = 'function_call' "
                            "AND n_expected_calls = 1 AND ungradeable_reason IS NULL ORDER BY id LIMIT 1")[0]
    msg = demo_store.query("SELECT id FROM decision_points WHERE action_type = 'message' ORDER BY id LIMIT 1")[0]
    lines = [
        json.dumps({"id": call["id"], "action": {"type": "function_call", "name": call["expected_tool"],
                                                 "arguments": {}}, "model": "m1"}),   # 1 good
        "{not json",                                                                  # 2 bad: not JSON
        "",                                                                           # 3 blank
        json.dumps({"id": msg["id"], "action": {"type": "message", "content": "ok"}}),  # 4 good
        json.dumps({"id": "tool_calling/nope/3", "action": {"type": "message", "content": "x"}}),  # 5 unknown id
        json.dumps({"id": msg["id"], "action": {"type": "message", "content": "again"}}),  # 6 duplicate
        json.dumps({"id": call["id"].replace("/", "/x", 1), "action": {"type": "shout"}}),  # 7 invalid action
        json.dumps({"action": {"type": "message", "content": "x"}}),                  # 8 no id
        json.dumps([1, 2]),                                                           # 9 not an object
    ]
    return ("\n".join(lines) + "\n").encode(), {"call": call["id"], "msg": msg["id"]}


def test_validation_reports_bad_lines_with_numbers(demo_store, upload):
    data, _ = upload
    check = validate_predictions(demo_store, data)
    assert check.n_lines == 8 and check.n_blank == 1
    assert check.n_good == 2
    assert [b["line"] for b in check.bad] == [2, 5, 6, 7, 8, 9]
    problems = {b["line"]: b["problem"] for b in check.bad}
    assert "not JSON" in problems[2]
    assert "unknown decision point" in problems[5]
    assert "duplicate id (first on line 4)" in problems[6]
    assert problems[7].startswith("unknown decision point")  # as `grade` checks: the id first, then the action
    assert "no \"id\"" in problems[8]
    assert "not a JSON object" in problems[9]
    assert demo_store.scalar("SELECT count(*) FROM runs") == 0  # validation stores nothing


def test_grade_upload_keeps_the_good_lines(demo_store, upload):
    data, ids = upload
    result, check = grade_upload(demo_store, data, run_name="up1", filename="/some/where/preds.jsonl",
                                 grader="keyword")
    run = get_run(demo_store, "up1")
    assert run.kind == "upload" and run.status == "completed"
    assert run.n_predictions == 2 and run.n_lines == 8 and run.n_problems == 6
    assert [p["line"] for p in run.problems] == [2, 5, 6, 7, 8, 9]
    assert run.source_file == "upload: preds.jsonl" and run.model == "m1"
    stored = predictions(demo_store, run.id)
    assert [(p["dp_id"], p["line"]) for p in stored] == [(ids["call"], 1), (ids["msg"], 4)]
    assert all(p["reward"] is not None for p in stored)
    assert sum(taxonomy_counts(demo_store, run.id).values()) == 2


def test_an_upload_with_nothing_good(demo_store):
    result, check = grade_upload(demo_store, b"nope\n[]\n", run_name="empty-up", grader="keyword")
    assert check.n_good == 0 and check.n_bad == 2
    assert get_run(demo_store, "empty-up").n_predictions == 0


class StreamOnly(io.BytesIO):
    """An upload as the page holds it, that fails if anyone reads it whole instead of line by line."""

    def getvalue(self):
        raise AssertionError("the upload was copied whole (getvalue)")

    def read(self, size=-1):
        if size is None or size < 0:
            raise AssertionError("the upload was read whole (read())")
        return super().read(size)


def test_an_upload_is_read_as_a_stream_of_lines_never_whole(demo_store, upload):
    data, ids = upload
    check = validate_predictions(demo_store, StreamOnly(data))
    assert check.n_good == 2 and check.n_bad == 6
    result, after = grade_upload(demo_store, StreamOnly(data), run_name="streamed", filename="p.jsonl",
                                 grader="keyword")
    assert result.n_graded == 2 and after.n_bad == 6
    assert {b["line"] for b in after.bad} == {b["line"] for b in check.bad}
