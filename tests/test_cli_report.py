"""`report --run NAME [--db DB] [--json]`, run in-process on a run graded from a hand-made file."""

from __future__ import annotations

import json

import pytest

from nemo_core.cli.main import main
from nemo_core.data.store import Store


@pytest.fixture
def graded_db(demo_db, tmp_path):
    store = Store.open(demo_db)
    try:
        call = store.query("SELECT id, expected_tool FROM decision_points WHERE action_type = 'function_call' "
                           "AND n_expected_calls = 1 AND ungradeable_reason IS NULL ORDER BY id LIMIT 1")[0]
        msg = store.query("SELECT id FROM decision_points WHERE split = 'interactive_agent' AND action_type = 'message' "
                          "ORDER BY id LIMIT 1")[0]
    finally:
        store.close()
    lines = [
        {"id": call["id"], "action": {"type": "message", "content": "hi"}},                  # wrong action type
        {"id": msg["id"], "action": {"type": "function_call", "name": "x", "arguments": {}}},  # wrong action type
        {"id": call["id"].replace("/2", "/9999"), "action": {"type": "message", "content": "x"}},  # unknown id
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["grade", str(path), "--db", str(demo_db), "--run", "r1", "--grader", "keyword", "--quiet"]) == 0
    return demo_db


def test_report_json_has_the_documented_keys(graded_db, capsys):
    capsys.readouterr()
    assert main(["report", "--run", "r1", "--db", str(graded_db), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"run", "n", "mean_reward", "by_split", "by_action_type", "taxonomy"} <= set(data)
    assert data["run"] == "r1" and data["n"] == 2
    assert data["mean_reward"]["mean"] == 0.0 and data["mean_reward"]["n"] == 2
    assert data["taxonomy"]["wrong_action_type"] == 2 and sum(data["taxonomy"].values()) == 2
    assert set(data["by_action_type"]) == {"function_call", "message"}
    assert {(r["sub_kind"], r["n"]) for r in data["sub_kinds"]} == {("call_for_message", 1), ("message_for_call", 1)}


def test_report_text(graded_db, capsys):
    capsys.readouterr()
    assert main(["report", "--run", "r1", "--db", str(graded_db)]) == 0
    out = capsys.readouterr().out
    assert "run 'r1'" in out and "2 predictions" in out
    assert "mean reward: 0.000 [0.000, 0.000] (n=2)" in out
    assert "wrong_action_type" in out and "100.0%" in out


def test_report_unknown_run_is_one_line_with_a_fix(graded_db, capsys):
    capsys.readouterr()
    assert main(["report", "--run", "nope", "--db", str(graded_db)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no run 'nope'") and len(err.strip().splitlines()) == 1


def test_report_needs_a_run(graded_db):
    with pytest.raises(SystemExit):
        main(["report", "--db", str(graded_db)])
