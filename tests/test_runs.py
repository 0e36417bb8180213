"""Runs and predictions in the store: creation rules, stored rows, summaries that never count None as 0."""

from __future__ import annotations

import pytest

from nemo_core.grading.grade import RULE_VERSION, GradingTarget, grade_action
from nemo_core.data.records import normalise_tools, parse_tool_calls
from nemo_core.runs.run import RunError, create_run, delete_run, get_run, insert_predictions, list_runs, prediction_row, predictions, summarise_run, unique_run_name
from nemo_core.runs.owner import finish_run


def target(dp_id: str, split: str, expected: dict | None, flags: tuple = ()) -> GradingTarget:
    calls = parse_tool_calls([{"name": "f", "arguments": expected}]) if expected is not None else []
    return GradingTarget(dp_id, split, "function_call" if calls else "message", list(flags), calls,
                         None if calls else "Refund issued today", normalise_tools([]), [])


def test_create_run_rules(empty_store):
    run_id = create_run(empty_store, "r1", kind="grade", grader="keyword", rule_version=RULE_VERSION, source_file="p.jsonl")
    run = get_run(empty_store, run_id)
    assert (run.name, run.kind, run.status, run.grader, run.rule_version, run.source_file) == (
        "r1", "grade", "running", "keyword", RULE_VERSION, "p.jsonl")
    assert get_run(empty_store, "r1").id == run_id
    with pytest.raises(RunError, match="already exists"):
        create_run(empty_store, "r1", kind="grade", grader="keyword", rule_version=RULE_VERSION)
    with pytest.raises(RunError, match="unknown run kind"):
        create_run(empty_store, "r2", kind="nope", grader="keyword", rule_version=RULE_VERSION)
    with pytest.raises(RunError):
        get_run(empty_store, "missing")
    assert unique_run_name(empty_store, "r1") == "r1-2" and unique_run_name(empty_store, "new") == "new"
    for kind in ("run-model", "upload", "human"):
        create_run(empty_store, f"k-{kind}", kind=kind, grader="keyword", rule_version=RULE_VERSION)
    assert [r.kind for r in list_runs(empty_store, kind="human")] == ["human"]
    assert len(list_runs(empty_store)) == 4


def test_predictions_stored_and_summarised(empty_store):
    run_id = create_run(empty_store, "s", kind="grade", grader="keyword", rule_version=RULE_VERSION)
    cases = [
        (target("tool_calling/a/2", "tool_calling", {"x": 1}), {"type": "function_call", "name": "f", "arguments": {"x": 1}}),  # 1.0
        (target("tool_calling/a/4", "tool_calling", {"x": 1}), {"type": "function_call", "name": "f", "arguments": {"x": 2}}),  # 0.5
        (target("interactive_agent/b/2", "interactive_agent", None), {"type": "message", "content": "Refund issued today"}),  # 1.0
        (target("interactive_agent/b/4", "interactive_agent", [1], ("ungradeable",)), {"type": "function_call", "name": "f", "arguments": {}}),
    ]
    rows = []
    for t, action in cases:
        b = grade_action(None, t, action, grader="keyword")
        rows.append(prediction_row(run_id, t.id, b, action=action, extra={"model": "m"}, split=t.split,
                                   action_type=t.action_type, latency_ms=5))
    rows.append(prediction_row(run_id, "tool_calling/a/6", None, action={"type": "bogus"}, split="tool_calling",
                               action_type="function_call", error="invalid action: unknown action type"))
    assert insert_predictions(empty_store, rows) == 5
    finish_run(empty_store, run_id, n_lines=5, problems=[{"line": 5, "id": "tool_calling/a/6", "problem": "x"}])
    run = get_run(empty_store, run_id)
    assert (run.status, run.n_lines, run.n_predictions, run.n_graded, run.n_problems) == ("completed", 5, 5, 3, 1)
    assert run.problems[0]["line"] == 5

    s = summarise_run(empty_store, run_id, seed=1)
    assert s.overall.mean == pytest.approx(2.5 / 3) and s.overall.n == 3 and s.overall.n_ungraded == 2
    assert s.by_split["tool_calling"].mean == 0.75 and s.by_split["tool_calling"].n_ungraded == 1
    assert s.by_split["interactive_agent"].mean == 1.0 and s.by_split["interactive_agent"].n_ungraded == 1
    assert s.by_action_type["message"].n == 1 and s.by_action_type["function_call"].n_ungraded == 2
    assert s.overall.low <= s.overall.mean <= s.overall.high
    assert "mean reward: 0.833" in s.to_text() and "2 ungraded" in s.to_text()

    page = predictions(empty_store, run_id, order="reward")
    assert [p["reward"] for p in page] == [0.5, 1.0, 1.0, None, None]
    first = predictions(empty_store, run_id, limit=1)[0]
    assert first["breakdown"]["reason"] == "exact_match" and first["extra"] == {"model": "m"}
    assert first["action"]["arguments"] == {"x": 1} and first["grader"] == "function_call"

    with pytest.raises(Exception):  # one prediction per decision point per run
        insert_predictions(empty_store, rows[:1])
    delete_run(empty_store, run_id)
    assert empty_store.scalar("SELECT count(*) FROM predictions") == 0 and list_runs(empty_store) == []


def test_a_run_whose_process_was_killed_is_finished_as_interrupted(empty_store):
    """A run still `running` after its process died (SIGKILL: nothing recorded the end) is finished as
    interrupted, with its counts, the next time runs are listed; one whose process lives is left running."""
    import signal
    import subprocess
    import sys

    from nemo_core.runs.run import claim_run, list_runs, mark_abandoned_runs

    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed = create_run(empty_store, "killed", kind="grade", grader="keyword", rule_version="x")
    alive = create_run(empty_store, "alive", kind="run-model", grader="keyword", rule_version="x")
    insert_predictions(empty_store, [prediction_row(killed, f"tool_calling/u{i}/2", None, error="x") for i in range(3)])
    with empty_store.transaction() as conn:  # as if the victim had started (or resumed) it
        conn.execute("UPDATE runs SET settings = json_set(settings, '$.process.pid', ?) WHERE id = ?",
                     (victim.pid, killed))
    assert mark_abandoned_runs(empty_store) == 0
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    status = {r.name: (r.status, r.n_predictions) for r in list_runs(empty_store)}
    assert status == {"killed": ("interrupted", 3), "alive": ("running", 0)}
    with empty_store.transaction() as conn:  # resumed by this process: its own again, running
        claim_run(conn, killed)
    assert {r.name: r.status for r in list_runs(empty_store)}["killed"] == "running"
