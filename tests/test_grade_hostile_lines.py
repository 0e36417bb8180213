"""Issue 20, points 3 and 9: one line never loses a `grade` run or an upload. Whatever a line holds (any JSON
type in any field, lone surrogates, deep nesting, NaN, huge integers, a byte-order mark) it is graded or it
is that line's error with the reason; every other line is graded and stored, the run completes, and the
result lines (`--out`) agree with the store."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest

import nemo_core.grading.grade as grading_module
from nemo_core.cli.main import main
from nemo_core.data.jsontext import MAX_JSON_DEPTH
from nemo_core.runs.run import get_run, predictions
from nemo_core.data.store import Store
from nemo_core.runs.uploads import grade_upload, validate_predictions


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NEMO_GRADER_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ids(demo_db) -> dict:
    with Store.open(demo_db) as store:
        calls = [r["id"] for r in store.query(
            "SELECT id FROM decision_points WHERE action_type = 'function_call' AND flag_ungradeable = 0 "
            "AND flag_parallel = 0 ORDER BY id LIMIT 20")]
        messages = [r["id"] for r in store.query(
            "SELECT id FROM decision_points WHERE action_type = 'message' ORDER BY id LIMIT 5")]
        first = store.get(calls[0]).expected_calls[0]
    return {"calls": calls, "messages": messages, "name": first.name, "arguments": first.arguments}


def call_line(dp_id: str, name: str, arguments_text: str, extra: str = "") -> str:
    """A prediction line written as text, so values json.dumps cannot write (NaN, deep nesting) go in as-is."""
    return (f'{{"id": {json.dumps(dp_id)}, "action": {{"type": "function_call", "name": {json.dumps(name)}, '
            f'"arguments": {arguments_text}}}{extra}}}')


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def hostile_lines(ids: dict) -> tuple[list[str], dict[int, str | None]]:
    """Lines, and for each line number the error expected in its result (None: graded)."""
    c, m, name = ids["calls"], ids["messages"], ids["name"]
    good = json.dumps(ids["arguments"])
    # the line itself is level 1, the action 2, arguments 3, so arguments may hold MAX_JSON_DEPTH - 3 more
    cases: list[tuple[str, str | None]] = [
        (call_line(c[0], name, good), None),
        (json.dumps({"id": c[1], "action": {"type": ["function_call"], "name": name, "arguments": {}}}),
         "invalid action: unknown action type"),
        (call_line(c[2], name, '{"text": "lone \\ud800 here", "k\\udc00": 1}'), None),
        (call_line(c[3], name, '{"deep": ' + nested(MAX_JSON_DEPTH - 3) + "}"), None),
        (call_line(c[4], name, '{"deep": ' + nested(MAX_JSON_DEPTH - 2) + "}"),
         f"cannot read the line: JSON nested more than {MAX_JSON_DEPTH} levels deep (the limit)"),
        (call_line(c[5], name, '{"deep": ' + nested(950) + "}"), "cannot read the line: JSON nested more than"),
        (call_line(c[6], name, '{"deep": ' + nested(3000) + "}"), "cannot read the line: JSON nested more than"),
        (call_line(c[7], name, '{"x": NaN}'), "cannot read the line: NaN is not a JSON number"),
        (call_line(c[8], name, '{"x": -Infinity}'), "cannot read the line: -Infinity is not a JSON number"),
        (call_line(c[9], name, '{"x": 1e400}'), "cannot read the line: the number 1e400 is beyond the range"),
        (call_line(c[10], name, '{"x": ' + "7" * 5001 + "}"),
         "cannot read the line: an integer of 5,001 digits: the limit is 4,300 digits"),
        (call_line(c[11], name, '{"x": ' + "9" * 400 + "}"), None),
        (call_line(c[12], name, json.dumps('{"x": NaN}')), None),  # inside an arguments string: invalid_arguments
        (json.dumps({"id": c[13], "action": {"type": "function_call", "name": {"a": [1]}, "arguments": []}}),
         "invalid action: function_call action: 'name' must be a non-empty string"),
        (json.dumps({"id": c[14], "action": None}), "invalid action: the action is a JSON null"),
        (json.dumps({"id": c[15], "action": [[{"x": 1}]]}), "invalid action: the action is a JSON array"),
        (json.dumps({"id": 5, "action": {}}), 'malformed line: no "id" string'),
        (json.dumps({"id": m[0], "action": {"type": "message", "content": {"text": [1, 2]}}}),
         "invalid action: message action: 'content' must be a string"),
        (json.dumps({"id": m[1], "action": {"type": "message", "content": "ok"}, "model": ["not", "a", "name"],
                     "latency_ms": 10 ** 400, "extra": {"nested": [{"a": None}]}}), None),
        (json.dumps({"id": m[2], "action": {"type": "message", "content": "ok"}, "latency_ms": "soon"}), None),
        (call_line(c[16], name, good, ', "raw": "\\udfff"'), None),
    ]
    return [line for line, _ in cases], {i: err for i, (_, err) in enumerate(cases, start=1)}


def check_out_agrees_with_store(db, run_name: str, out_lines: list[dict]) -> None:
    """Every graded result line has its stored prediction with the same reward and reason; every error line
    is either stored as an error row with the same error, or (no decision point to attach it to) not stored."""
    with Store.open(db) as store:
        run = get_run(store, run_name)
        stored = {p["line"]: p for p in predictions(store, run.id, limit=10_000)}
    for result in out_lines:
        row = stored.get(result["line"])
        if result.get("error") is None:
            assert row is not None and row["error"] is None
            assert row["reward"] == result["reward"] and row["reason"] == result["reason"]
        elif row is not None:
            assert row["error"] == result["error"] and row["reward"] is None
    graded = [r for r in out_lines if r.get("error") is None]
    assert len([p for p in stored.values() if p["error"] is None]) == len(graded)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_no_line_loses_the_run_and_out_agrees_with_the_store(demo_db, tmp_path, capsys, ids, workers):
    lines, expected = hostile_lines(ids)
    preds = tmp_path / "preds.jsonl"
    preds.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())  # and a byte-order mark first
    out = tmp_path / "out.jsonl"
    rc = main(["grade", str(preds), "--db", str(demo_db), "--run", "hostile", "--out", str(out), "--quiet",
               "--workers", workers])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Traceback" not in captured.err
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in results] == list(range(1, len(lines) + 1))
    for r in results:
        want = expected[r["line"]]
        if want is None:
            assert r.get("error") is None and r["reward"] is not None, r
        else:
            assert r["error"].startswith(want), (r["line"], r["error"])
    with Store.open(demo_db) as store:
        run = get_run(store, "hostile")
        assert run.status == "completed"
        assert run.n_lines == len(lines)
        assert run.n_problems == sum(e is not None for e in expected.values())
        stored = {p["line"]: p for p in predictions(store, run.id, limit=100)}
    check_out_agrees_with_store(demo_db, "hostile", results)
    # the repaired line says so, and what was stored holds U+FFFD
    assert "2 lone UTF-16 surrogates in the line read as U+FFFD" in results[2]["notes"]
    assert stored[3]["action"]["arguments"] == {"text": "lone \ufffd here", "k\ufffd": 1}
    # an integer of 400 digits is graded and read back exact; an arguments string holding NaN is kept as sent
    assert stored[12]["action"]["arguments"] == {"x": int("9" * 400)}
    assert results[12]["reason"] == "invalid_arguments" and stored[13]["action"]["arguments"] == '{"x": NaN}'
    # a list where the action type goes is stored as that line's error, with no type
    assert stored[2]["submitted_type"] is None and stored[2]["error"].startswith("invalid action")
    assert stored[19]["latency_ms"] is None and stored[20]["latency_ms"] is None


def test_an_unforeseen_error_while_grading_one_line_is_that_lines_error(demo_db, tmp_path, capsys, ids, monkeypatch):
    real = grading_module.score_function_call

    def flaky(expected_calls, name, *args, **kwargs):
        if name == "explode":
            raise RecursionError("maximum recursion depth exceeded")
        if name == "explode-2":
            raise KeyError("nobody saw this coming")
        return real(expected_calls, name, *args, **kwargs)

    monkeypatch.setattr(grading_module, "score_function_call", flaky)
    c = ids["calls"]
    lines = [call_line(c[0], "explode", "{}"), call_line(c[1], ids["name"], "{}"), call_line(c[2], "explode-2", "{}")]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["grade", str(preds), "--db", str(demo_db), "--run", "boom", "--out", str(out), "--quiet",
                 "--workers", "0"]) == 0
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert results[0]["error"] == "could not be graded: the values are nested too deeply to compare"
    assert results[1].get("error") is None
    assert results[2]["error"] == "could not be graded: KeyError: 'nobody saw this coming'"
    check_out_agrees_with_store(demo_db, "boom", results)
    with Store.open(demo_db) as store:
        assert get_run(store, "boom").status == "completed"


def test_a_result_that_cannot_be_encoded_is_that_lines_error(demo_db, tmp_path, ids, monkeypatch):
    """The last step, encoding the result line, is guarded too: a value no encoder takes fails that line only."""
    real = grading_module.Breakdown.to_json

    def poisoned(self, dp_id=None):
        out = real(self, dp_id)
        if self.submitted_name == "poison":
            out["reason"] = "\ud800"  # no encoder can write it as UTF-8
        return out

    monkeypatch.setattr(grading_module.Breakdown, "to_json", poisoned)
    c = ids["calls"]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join([call_line(c[0], "poison", "{}"), call_line(c[1], ids["name"], "{}")]) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["grade", str(preds), "--db", str(demo_db), "--run", "enc", "--out", str(out), "--quiet",
                 "--workers", "0"]) == 0
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert results[0]["error"].startswith("could not be graded: UnicodeEncodeError")
    assert results[1].get("error") is None
    check_out_agrees_with_store(demo_db, "enc", results)


def test_an_upload_reads_the_same_lines_the_same_way(demo_store, ids):
    lines, expected = hostile_lines(ids)
    data = b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode()
    check = validate_predictions(demo_store, io.BytesIO(data))
    bad = {b["line"]: b["problem"] for b in check.bad}
    for line_no, want in expected.items():
        if want is None:
            assert line_no not in bad, (line_no, bad.get(line_no))
        else:
            assert bad[line_no].startswith(want), (line_no, bad[line_no])
    result, after = grade_upload(demo_store, io.BytesIO(data), run_name="up-hostile", filename="x.jsonl",
                                 grader="keyword")
    run = get_run(demo_store, "up-hostile")
    assert run.status == "completed" and result.n_graded == check.n_good
    assert after.n_bad == check.n_bad and run.n_problems == check.n_bad
    assert {b["line"] for b in check.bad} == {p["line"] for p in run.problems}
    stored = {p["line"]: p for p in predictions(demo_store, run.id, limit=100)}
    assert stored[1]["reward"] is not None and stored[3]["action"]["arguments"]["text"] == "lone \ufffd here"


def test_a_byte_order_mark_opens_a_file_for_grade_and_upload_as_for_ingest(demo_db, tmp_path, capsys, ids):
    line = call_line(ids["calls"][0], ids["name"], json.dumps(ids["arguments"]))
    preds = tmp_path / "bom.jsonl"
    preds.write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\n")
    assert main(["grade", str(preds), "--db", str(demo_db), "--run", "bom", "--quiet"]) == 0
    with Store.open(demo_db) as store:
        run = get_run(store, "bom")
        assert run.n_problems == 0 and run.n_graded == 1
        check = validate_predictions(store, preds.read_bytes())
        assert check.n_bad == 0 and check.n_good == 1


def test_nan_in_submitted_arguments_is_refused_not_stored_as_null(demo_db, tmp_path, capsys, ids):
    preds = tmp_path / "nan.jsonl"
    preds.write_text(call_line(ids["calls"][0], ids["name"], '{"x": NaN}') + "\n")
    main(["grade", str(preds), "--db", str(demo_db), "--run", "nan", "--quiet"])
    with sqlite3.connect(demo_db) as conn:
        assert conn.execute("SELECT count(*) FROM predictions p JOIN runs r ON r.id = p.run_id "
                            "WHERE r.name = 'nan'").fetchone()[0] == 0
    assert "NaN is not a JSON number" in capsys.readouterr().err
