"""`python -m nemo_core grade`, run in-process on the demo database, then checked in the database."""

from __future__ import annotations

import json

import pytest

from fake_openai import Reply, fake_openai  # noqa: F401  (fixture)
from nemo_core.cli.main import main
from nemo_core.runs.run import get_run, predictions, summarise_run
from nemo_core.data.store import Store


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NEMO_GRADER_MODEL"):
        monkeypatch.delenv(name, raising=False)


def demo_lines(db) -> tuple[list[str], dict]:
    """A predictions file mixing good lines with every kind of bad line; returns lines and the ids used."""
    store = Store.open(db)
    try:
        calls = store.query("SELECT id FROM decision_points WHERE action_type = 'function_call' AND flag_ungradeable = 0 "
                            "AND flag_parallel = 0 ORDER BY id LIMIT 3")
        messages = store.query("SELECT id FROM decision_points WHERE action_type = 'message' ORDER BY id LIMIT 2")
        ungradeable = store.query("SELECT id FROM decision_points WHERE flag_ungradeable = 1 LIMIT 1")[0]["id"]
        dps = [store.get(r["id"]) for r in calls]
        message_dps = [store.get(r["id"]) for r in messages]
    finally:
        store.close()
    c0, c1, c2 = dps
    m0, m1 = message_dps
    exact = {"type": "function_call", "name": c0.expected_calls[0].name, "arguments": c0.expected_calls[0].arguments}
    lines = [
        json.dumps({"id": c0.id, "action": exact, "model": "m-1", "latency_ms": 120, "raw": {"any": "thing"}}),  # 1
        json.dumps({"id": m0.id, "action": {"type": "message", "content": m0.expected_content}}),  # 2
        json.dumps({"id": "tool_calling/no-such-uuid/3", "action": {"type": "message", "content": "x"}}),  # 3 unknown
        "{this is not json",  # 4 malformed
        json.dumps({"id": c0.id, "action": exact}),  # 5 duplicate of line 1
        "",  # 6 blank: skipped
        json.dumps({"id": c1.id, "action": {"type": "message", "content": "Sure."}}),  # 7 wrong type
        json.dumps({"id": c2.id, "action": {"type": "teleport"}}),  # 8 invalid action
        json.dumps({"action": exact}),  # 9 no id
        json.dumps({"id": ungradeable, "action": {"type": "function_call", "name": "f", "arguments": {}}}),  # 10
        json.dumps({"id": m1.id, "action": {"role": "assistant", "content": "Hello there"}}),  # 11
    ]
    return lines, {"c0": c0.id, "m0": m0.id, "c1": c1.id, "c2": c2.id, "m1": m1.id, "ungradeable": ungradeable}


def test_grade_file_results_in_order_problems_reported_run_stored(demo_db, tmp_path, capsys):
    lines, ids = demo_lines(demo_db)
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(lines) + "\n")
    out = tmp_path / "results.jsonl"
    rc = main(["grade", str(preds), "--db", str(demo_db), "--run", "demo-run", "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in results] == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]  # input order, blank line skipped
    by_line = {r["line"]: r for r in results}
    for r in results:
        assert {"id", "reward", "action_type_match", "name_match", "arg_match", "grader", "reason", "keys"} <= r.keys()
    assert by_line[1]["id"] == ids["c0"] and by_line[1]["reward"] == 1.0 and by_line[1]["keys"]
    assert all(k["status"] == "match" and {"key", "status", "expected", "submitted", "hint"} <= k.keys()
               for k in by_line[1]["keys"])
    assert by_line[2]["reward"] == 1.0 and by_line[2]["grader"] == "keyword"
    assert (by_line[2]["name_match"], by_line[2]["arg_match"], by_line[2]["keys"]) == (None, None, [])
    assert by_line[3]["reward"] is None and "unknown decision point id" in by_line[3]["error"]
    assert "malformed line" in by_line[4]["error"]
    assert "duplicate id (first on line 1)" in by_line[5]["error"]
    assert by_line[7]["reward"] == 0.0 and by_line[7]["reason"] == "wrong_action_type"
    assert "invalid action" in by_line[8]["error"] and "teleport" in by_line[8]["error"]
    assert "no \"id\"" in by_line[9]["error"]
    assert by_line[10]["reward"] is None and by_line[10]["reason"] == "ungradeable_reference"
    assert by_line[11]["grader"] == "keyword" and by_line[11]["id"] == ids["m1"]
    for n, what in ((3, "unknown decision point id"), (4, "malformed line"), (5, "duplicate id"), (8, "invalid action"),
                    (9, "malformed line: no \"id\"")):
        assert f"line {n}: {what}" in captured.err
    assert "mean reward:" in captured.out and "by split:" in captured.out and "by action type:" in captured.out
    assert "could not be graded: 6" in captured.out  # 5 problem lines + 1 ungradeable reference

    store = Store.open(demo_db)
    try:
        run = get_run(store, "demo-run")
        assert (run.kind, run.grader, run.grader_model, run.source_file, run.status) == (
            "grade", "keyword", None, str(preds), "completed")
        assert run.rule_version == "2025-11-spec-v1" and run.model == "m-1" and run.created_at
        assert (run.n_lines, run.n_graded, run.n_problems) == (10, 4, 5)
        rows = {r["dp_id"]: r for r in predictions(store, run.id, limit=100)}
        assert set(rows) == {ids["c0"], ids["m0"], ids["c1"], ids["c2"], ids["ungradeable"], ids["m1"]}
        first = rows[ids["c0"]]
        assert first["extra"] == {"model": "m-1", "latency_ms": 120, "raw": {"any": "thing"}}
        assert first["latency_ms"] == 120 and first["line"] == 1 and first["breakdown"]["reason"] == "exact_match"
        assert first["action"]["name"] and first["split"] and first["action_type"] == "function_call"
        assert rows[ids["c2"]]["reward"] is None and "invalid action" in rows[ids["c2"]]["error"]
        assert rows[ids["m1"]]["action"] == {"type": "message", "content": "Hello there"}
        summary = summarise_run(store, run.id)
        assert summary.overall.n == 4 and summary.overall.n_ungraded == 2
        assert summary.by_action_type["function_call"].n_ungraded == 2
    finally:
        store.close()


def test_worker_processes_give_the_same_results(demo_db, tmp_path, capsys):
    lines, _ = demo_lines(demo_db)
    store = Store.open(demo_db)
    extra = [json.dumps({"id": r["id"], "action": {"type": "message", "content": "ok thanks"}})
             for r in store.query("SELECT id FROM decision_points ORDER BY id")]
    store.close()
    preds = tmp_path / "p.jsonl"
    preds.write_text("\n".join(lines + extra + lines) + "\n")  # the second copy: all duplicates
    outputs = []
    for workers in ("0", "2"):
        out = tmp_path / f"r{workers}.jsonl"
        assert main(["grade", str(preds), "--db", str(demo_db), "--out", str(out), "--quiet", "--workers", workers,
                     "--run", f"w{workers}"]) == 0
        outputs.append([json.loads(x) for x in out.read_text().splitlines()])
    assert outputs[0] == outputs[1] and len(outputs[0]) == len(lines) - 1 + len(extra) + len(lines) - 1
    assert sum(1 for r in outputs[1] if "duplicate id" in (r.get("error") or "")) >= 8
    store = Store.open(demo_db)
    try:
        a, b = get_run(store, "w0"), get_run(store, "w2")
        assert (a.n_predictions, a.n_graded, a.n_problems) == (b.n_predictions, b.n_graded, b.n_problems)
        assert b.settings["workers"] == 2
    finally:
        store.close()
    capsys.readouterr()


def test_nothing_graded_is_a_failure(demo_db, tmp_path, capsys):
    preds = tmp_path / "bad.jsonl"
    preds.write_text('not json\n{"id": "tool_calling/nope/1", "action": {"type": "message", "content": "x"}}\n')
    rc = main(["grade", str(preds), "--db", str(demo_db), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "nothing could be graded" in err and "line 1: malformed" in err and "line 2: unknown" in err


def test_llm_without_key_is_a_clear_error(demo_db, tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    preds.write_text("{}\n")
    rc = main(["grade", str(preds), "--db", str(demo_db), "--grader", "llm"])
    err = capsys.readouterr().err
    assert rc == 1 and "needs an OpenAI API key" in err and "OPENAI_API_KEY" in err


def test_run_name_must_be_new(demo_db, tmp_path, capsys):
    lines, _ = demo_lines(demo_db)
    preds = tmp_path / "p.jsonl"
    preds.write_text(lines[0] + "\n")
    assert main(["grade", str(preds), "--db", str(demo_db), "--run", "r1", "--quiet"]) == 0
    assert main(["grade", str(preds), "--db", str(demo_db), "--run", "r1", "--quiet"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["grade", str(preds), "--db", str(demo_db), "--quiet"]) == 0  # a default name is always new


def test_llm_grader_through_the_cli(demo_db, tmp_path, fake_openai, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-test")
    store = Store.open(demo_db)
    message_ids = [r["id"] for r in store.query("SELECT id FROM decision_points WHERE action_type = 'message' ORDER BY id")]
    store.close()
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": i, "action": {"type": "message", "content": f"reply {n}"}}) + "\n"
                             for n, i in enumerate(message_ids)))
    scores = iter(range(10_000))

    def responder(request):  # the score tells which request answered which line
        text = request.body["messages"][-1]["content"]
        n = int(text.split("<<<FENCE CANDIDATE\nreply ")[1].split("\n")[0])
        next(scores)
        return Reply.json({"score": n % 11, "reason": f"line {n}"})

    fake_openai.responder = responder
    out = tmp_path / "r.jsonl"
    rc = main(["grade", str(preds), "--db", str(demo_db), "--grader", "auto", "--base-url", fake_openai.base_url,
               "--model", "grader-x", "--concurrency", "4", "--out", str(out), "--quiet", "--run", "llm-run"])
    assert rc == 0, capsys.readouterr().err
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in results] == message_ids
    assert [r["reward"] for r in results] == [(n % 11) / 10 for n in range(len(message_ids))]
    assert all(r["grader"] == "llm" and r["grader_model"] == "grader-x" for r in results)
    assert len(fake_openai.completion_requests) == len(message_ids)
    store = Store.open(demo_db)
    try:
        run = get_run(store, "llm-run")
        assert (run.grader, run.grader_model) == ("llm", "grader-x")
    finally:
        store.close()


def test_help_describes_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["grade", "--help"])
    out = capsys.readouterr().out
    for option in ("--db", "--run", "--grader", "--out", "--concurrency", "--base-url", "--model"):
        assert option in out
