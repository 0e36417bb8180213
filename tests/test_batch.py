"""OpenAI Batch: `run-model --write-batch` writes the exact requests; `grade` reads the Batch output file."""

from __future__ import annotations

import json
import random

import pytest

from nemo_core.runs.batch_requests import MAX_BYTES, MAX_REQUESTS, write_batch
from nemo_core.cli.main import main
from nemo_core.data.dp_stream import Selection
from nemo_core.data.filters import DecisionPointFilter
from nemo_core.grading.endpoint import EndpointConfig
from nemo_core.runs.model_runner import ModelRunner, select_ids
from nemo_core.runs.run import get_run
from nemo_core.data.store import Store


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NEMO_GRADER_MODEL"):
        monkeypatch.delenv(name, raising=False)


def read_lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_write_batch_writes_the_exact_requests_run_model_sends(demo_db, tmp_path, capsys):
    out = tmp_path / "batch.jsonl"
    assert main(["run-model", "--db", str(demo_db), "--model", "gpt-5-mini", "--split", "tool_calling",
                 "--write-batch", str(out), "--quiet"]) == 0
    assert "next: upload" in capsys.readouterr().out
    lines = read_lines(out)
    runner = ModelRunner(EndpointConfig.for_model("gpt-5-mini"), check=False)
    with Store.open(demo_db) as store:
        assert [x["custom_id"] for x in lines] == store.ids(DecisionPointFilter(split="tool_calling"))
        for line in lines:
            assert set(line) == {"custom_id", "method", "url", "body"}
            assert (line["method"], line["url"]) == ("POST", "/v1/chat/completions")
            assert line["body"] == json.loads(json.dumps(runner.request_body(store.get(line["custom_id"]))))
            assert line["body"]["tool_choice"] == "required" and line["body"]["model"] == "gpt-5-mini"


def test_limit_and_sample_select_what_run_model_selects(demo_db, tmp_path):
    with Store.open(demo_db) as store:
        for args, expected in (
            (["--limit", "7"], store.ids(DecisionPointFilter(action_type="message"))[:7]),
            (["--limit", "9", "--sample-seed", "4"], select_ids(store, DecisionPointFilter(action_type="message"),
                                                                limit=9, sample_seed=4)),
        ):
            out = tmp_path / "b.jsonl"
            assert main(["run-model", "--db", str(demo_db), "--model", "m", "--action-type", "message",
                         "--write-batch", str(out), "--quiet", *args]) == 0
            assert sorted(x["custom_id"] for x in read_lines(out)) == sorted(expected)


def test_files_are_split_under_the_batch_limits(demo_store, tmp_path):
    assert (MAX_REQUESTS, MAX_BYTES) == (50_000, 200_000_000)
    runner = ModelRunner(EndpointConfig.for_model("m"), check=False)
    files = write_batch(demo_store, runner, Selection(), tmp_path / "b.jsonl", max_requests=50)
    assert [p.name for p in files.paths] == ["b-001.jsonl", "b-002.jsonl", "b-003.jsonl", "b-004.jsonl"]
    assert [len(read_lines(p)) for p in files.paths] == [50, 50, 50, 30]
    by_size = write_batch(demo_store, runner, Selection(), tmp_path / "s.jsonl", max_bytes=200_000)
    assert len(by_size.paths) > 1 and all(p.stat().st_size <= 200_000 for p in by_size.paths)
    ids = [x["custom_id"] for p in by_size.paths for x in read_lines(p)]
    assert ids == demo_store.ids() and by_size.n_requests == 180
    assert not list(tmp_path.glob("*.partial"))


def chat_completion(custom_id: str, message: dict, n: int) -> dict:
    """A Batch API output line holding a Chat Completion, in the documented shape."""
    return {"id": f"batch_req_{n:06d}", "custom_id": custom_id, "error": None,
            "response": {"status_code": 200, "request_id": f"req_{n:06d}", "body": {
                "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1730000000, "model": "gpt-5-mini-2025-08-07",
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}}}


def expected_message(dp) -> dict:
    """The assistant message a model would return with exactly the expected action (every call of a parallel
    turn, in order; arguments as the JSON string the API writes)."""
    if dp.action_type == "function_call":
        return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments)}} for i, c in enumerate(dp.expected_calls)]}
    return {"role": "assistant", "content": dp.expected_content, "refusal": None}


def test_batch_output_built_from_our_input_grades_every_line_1_and_equals_our_format(demo_db, tmp_path, capsys):
    flt = DecisionPointFilter(exclude_flags=("ungradeable",))
    batch_in = tmp_path / "in.jsonl"
    runner = ModelRunner(EndpointConfig.for_model("gpt-5-mini"), check=False)
    with Store.open(demo_db) as store:
        write_batch(store, runner, Selection(flt), batch_in)
        requests = read_lines(batch_in)
        dps = {r["custom_id"]: store.get(r["custom_id"]) for r in requests}
    outputs = [chat_completion(r["custom_id"], expected_message(dps[r["custom_id"]]), n) for n, r in enumerate(requests)]
    random.Random(1).shuffle(outputs)  # the Batch API returns lines in any order
    batch_out = tmp_path / "out.jsonl"
    batch_out.write_text("".join(json.dumps(o) + "\n" for o in outputs))
    ours = tmp_path / "ours.jsonl"
    ours.write_text("".join(json.dumps({"id": o["custom_id"], "action": (
        {"type": "function_call", "name": dps[o["custom_id"]].expected_calls[0].name,
         "arguments": dps[o["custom_id"]].expected_calls[0].arguments}
        if dps[o["custom_id"]].action_type == "function_call"
        else {"type": "message", "content": dps[o["custom_id"]].expected_content})}) + "\n" for o in outputs))

    assert main(["grade", str(batch_out), "--db", str(demo_db), "--run", "batch", "--out", str(tmp_path / "r1.jsonl"),
                 "--quiet", "--grader", "keyword"]) == 0
    assert main(["grade", str(ours), "--db", str(demo_db), "--run", "ours", "--out", str(tmp_path / "r2.jsonl"),
                 "--quiet", "--grader", "keyword"]) == 0
    from_batch, from_ours = read_lines(tmp_path / "r1.jsonl"), read_lines(tmp_path / "r2.jsonl")
    assert len(from_batch) == len(requests) == 177
    assert all(r["reward"] == 1.0 for r in from_batch), [r for r in from_batch if r["reward"] != 1.0][:2]

    def comparable(r: dict) -> dict:
        return {k: v for k, v in r.items() if k != "notes"}

    assert [comparable(r) for r in from_batch] == [comparable(r) for r in from_ours]
    parallel = next(r for r in from_batch if dps[r["id"]].flags and "parallel" in dps[r["id"]].flags)
    assert any("ignored" in n for n in parallel["notes"])  # the other calls of a parallel turn are counted
    with Store.open(demo_db) as store:
        run = get_run(store, "batch")
        assert run.model == "gpt-5-mini-2025-08-07" and run.n_graded == 177


def test_failed_batch_requests_are_reported_per_line_as_not_graded(demo_db, tmp_path, capsys):
    with Store.open(demo_db) as store:
        ids = store.ids(DecisionPointFilter(action_type="message", exclude_flags=("empty_expected",)))[:6]
        dp = store.get(ids[0])
    lines = [
        chat_completion(ids[0], {"role": "assistant", "content": dp.expected_content}, 0),
        {"id": "batch_req_1", "custom_id": ids[1], "response": None,
         "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}},
        {"id": "batch_req_2", "custom_id": ids[2], "error": None, "response": {"status_code": 400, "request_id": "r",
         "body": {"error": {"message": "Invalid 'messages[2].tool_calls'", "type": "invalid_request_error",
                            "param": "messages", "code": None}}}},
        {"id": "batch_req_3", "custom_id": ids[3], "error": None,
         "response": {"status_code": 500, "request_id": "r", "body": {"error": {"message": "The server had an error"}}}},
        {"id": "batch_req_4", "custom_id": ids[4], "error": None,
         "response": {"status_code": 200, "request_id": "r", "body": "<html>bad gateway</html>"}},
        {"id": "batch_req_5", "custom_id": ids[5], "error": None,
         "response": {"status_code": 200, "request_id": "r", "body": {"object": "chat.completion", "choices": []}}},
    ]
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["grade", str(path), "--db", str(demo_db), "--run", "b", "--out", str(tmp_path / "r.jsonl"),
                 "--quiet"]) == 0
    results = read_lines(tmp_path / "r.jsonl")
    assert results[0]["reward"] == 1.0
    errors = [r["error"] for r in results[1:]]
    assert all(r["reward"] is None for r in results[1:])
    assert errors[0].startswith("server error: the batch request failed (batch_expired")
    assert errors[1].startswith("bad request: HTTP 400 (invalid_request_error: Invalid 'messages[2].tool_calls')")
    assert errors[2].startswith("server error: HTTP 500")
    assert errors[3].startswith("invalid response: the response body is a JSON string")
    assert errors[4].startswith("invalid response: the Chat Completion has no choices")
    err = capsys.readouterr().err
    assert "line 2: server error" in err and "line 3: bad request" in err
    with Store.open(demo_db) as store:
        rows = store.query("SELECT dp_id, error FROM predictions WHERE run_id = (SELECT id FROM runs WHERE name = 'b') "
                           "AND error IS NOT NULL")
        assert {r["dp_id"] for r in rows} == set(ids[1:])
        from nemo_core.runs.taxonomy import taxonomy_table
        run_id = get_run(store, "b").id
        kinds = store.query(f"SELECT sub_kind, count(*) AS n FROM {taxonomy_table(run_id)} "
                            "WHERE category = 'runner_error' GROUP BY sub_kind")
        assert {r["sub_kind"]: r["n"] for r in kinds} == {"api_error": 5}


def test_the_runs_page_upload_reads_a_batch_output_file(demo_store):
    """The upload checks and grades a Batch output file as `grade` does: failed requests are bad lines, each
    with its line number and reason, before anything is stored; the good ones are graded into the run."""
    from nemo_core.runs.run import predictions
    from nemo_core.runs.uploads import grade_upload, validate_predictions

    ids = demo_store.ids(DecisionPointFilter(action_type="message", exclude_flags=("empty_expected",)))[:3]
    dps = [demo_store.get(i) for i in ids]
    lines = [
        chat_completion(ids[0], expected_message(dps[0]), 0),
        {"id": "batch_req_1", "custom_id": ids[1], "response": None,
         "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}},
        chat_completion(ids[2], expected_message(dps[2]), 2),
    ]
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    check = validate_predictions(demo_store, data)
    assert (check.n_lines, check.n_good) == (3, 2)
    assert check.bad == [{"line": 2, "id": ids[1], "problem": check.bad[0]["problem"]}]
    assert check.bad[0]["problem"].startswith("server error: the batch request failed (batch_expired")
    assert demo_store.scalar("SELECT count(*) FROM runs") == 0

    result, graded = grade_upload(demo_store, data, run_name="up-batch", filename="batch_output.jsonl", grader="keyword")
    run = get_run(demo_store, "up-batch")
    assert run.model == "gpt-5-mini-2025-08-07" and [p["line"] for p in run.problems] == [2]
    assert [b["problem"] for b in graded.bad] == [check.bad[0]["problem"]]
    stored = {p["dp_id"]: p for p in predictions(demo_store, run.id)}
    assert stored[ids[0]]["reward"] == stored[ids[2]]["reward"] == 1.0


def test_files_of_an_earlier_batch_are_never_left_beside_a_new_one(demo_store, demo_db, tmp_path, capsys):
    """Every file named after FILE is this batch's: numbered files already there are refused before anything
    is written (they would be uploaded with it), and a single FILE of an earlier batch goes when it is split."""
    runner = ModelRunner(EndpointConfig.for_model("m"), check=False)
    (tmp_path / "b.jsonl").write_text("an earlier, smaller batch\n")
    files = write_batch(demo_store, runner, Selection(), tmp_path / "b.jsonl", max_requests=100)
    assert sorted(p.name for p in tmp_path.glob("b*")) == ["b-001.jsonl", "b-002.jsonl"] == [p.name for p in files.paths]
    assert main(["run-model", "--db", str(demo_db), "--model", "m", "--write-batch", str(tmp_path / "b.jsonl"),
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "b-001.jsonl already exists (2 numbered file(s) of an earlier batch)" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.glob("b*")) == ["b-001.jsonl", "b-002.jsonl"]
