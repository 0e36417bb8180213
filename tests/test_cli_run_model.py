"""`python -m nemo_core run-model`, in-process, against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from fake_openai import Reply, fake_openai  # noqa: F401  (fixture)
from nemo_core.cli.main import main
from nemo_core.data.store import Store


@pytest.fixture(autouse=True)
def _no_real_key(monkeypatch):
    """The LLM grader is off (keyword grader for messages) and nothing can reach OpenAI."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("NEMO_DB", raising=False)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def base_args(server, db, *extra: str) -> list[str]:
    return ["run-model", "--model", "fake-model", "--base-url", server.base_url, "--db", str(db), "--quiet", *extra]


def test_dry_run_prints_the_first_request_and_sends_nothing(capsys, fake_openai, demo_db):
    code, out, err = run_cli(capsys, *base_args(fake_openai, demo_db, "--split", "tool_calling", "--limit", "3",
                                                "--run", "dry", "--dry-run"))
    assert code == 0
    body = json.loads(out)
    assert body["model"] == "fake-model" and body["tool_choice"] == "required"
    assert body["messages"] and body["tools"][-1]["function"]["name"] == "submit_message"
    assert "3 decision points selected" in err and "nothing was sent" in err
    assert fake_openai.requests == []
    with Store.open(demo_db) as store:
        assert store.scalar("SELECT count(*) FROM runs") == 0


def test_dry_run_needs_no_endpoint(capsys, demo_db):
    code, out, _ = run_cli(capsys, "run-model", "--model", "m", "--db", str(demo_db), "--limit", "1", "--dry-run")
    assert code == 0 and json.loads(out)["model"] == "m"


def test_a_run_stores_graded_predictions_and_errors(capsys, fake_openai, demo_db):
    # the first request fails for good (context too long); the rest get a text reply
    fake_openai.script(Reply.error(400, "maximum context length is 10 tokens", code="context_length_exceeded"))
    code, out, err = run_cli(capsys, *base_args(fake_openai, demo_db, "--split", "interactive_agent", "--limit", "6",
                                                "--sample-seed", "7", "--concurrency", "1", "--run", "r1"))
    assert code == 0, err
    assert len(fake_openai.completion_requests) == 6
    with Store.open(demo_db) as store:
        run = store.query("SELECT * FROM runs WHERE name = 'r1'")[0]
        assert run["kind"] == "run-model" and run["model"] == "fake-model" and run["status"] == "completed"
        assert run["grader"] == "keyword" and run["n_predictions"] == 6 and run["n_graded"] == 5
        rows = store.query("SELECT * FROM predictions WHERE run_id = ? ORDER BY line", (run["id"],))
    failed = [r for r in rows if r["error"]]
    assert len(failed) == 1 and failed[0]["reward"] is None and "too long" in failed[0]["error"]
    assert json.loads(failed[0]["extra"])["error_kind"] == "context_too_long"
    graded = [r for r in rows if not r["error"]]
    for row in graded:
        assert json.loads(row["action"]) == {"type": "message", "content": "Sure, I can help with that."}
        assert row["latency_ms"] > 0 and json.loads(row["breakdown"])["grader"] in ("keyword", "rule")
        # a message where a call was expected scores 0 (wrong_action_type); otherwise the keyword grader ran
        assert (row["reason"] == "wrong_action_type") == (row["action_type"] == "function_call")
    assert "run 'r1'" in out and "context_too_long 1" in out and "mean reward" in out


def test_resume_skips_done_ids_and_asks_again_after_a_timeout(capsys, fake_openai, demo_db):
    fake_openai.script(Reply.slow(2.0, Reply.text("too late")))
    args = base_args(fake_openai, demo_db, "--split", "tool_calling", "--limit", "4", "--concurrency", "1",
                     "--timeout", "0.5", "--run", "resumable")
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "timeout 1" in out and len(fake_openai.completion_requests) == 4
    with Store.open(demo_db) as store:
        assert store.scalar("SELECT count(*) FROM predictions WHERE error IS NOT NULL") == 1
        timed_out = store.scalar("SELECT dp_id FROM predictions WHERE error IS NOT NULL")

    fake_openai.reset()
    code, out, _ = run_cli(capsys, *args)  # the same run again: only the timed-out one is asked
    assert code == 0 and "resumed" in out and "already done: 3" in out
    sent = fake_openai.completion_requests
    assert len(sent) == 1
    with Store.open(demo_db) as store:
        run_id = store.scalar("SELECT id FROM runs WHERE name = 'resumable'")
        assert store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", (run_id,)) == 4
        assert store.scalar("SELECT count(*) FROM predictions WHERE run_id = ? AND error IS NOT NULL", (run_id,)) == 0
        assert store.scalar("SELECT count(*) FROM predictions WHERE dp_id = ?", (timed_out,)) == 1

    fake_openai.reset()
    code, out, _ = run_cli(capsys, *base_args(fake_openai, demo_db, "--split", "tool_calling", "--limit", "6",
                                              "--run", "resumable"))  # a larger selection: only the new ones
    assert code == 0 and len(fake_openai.completion_requests) == 2
    with Store.open(demo_db) as store:
        assert store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", (run_id,)) == 6


def test_resume_refuses_another_model_or_kind(capsys, fake_openai, demo_db):
    assert run_cli(capsys, *base_args(fake_openai, demo_db, "--limit", "1", "--run", "mine"))[0] == 0
    code, _, err = run_cli(capsys, "run-model", "--model", "other", "--base-url", fake_openai.base_url,
                           "--db", str(demo_db), "--limit", "1", "--run", "mine", "--quiet")
    assert code == 1 and "fake-model" in err and "--run" in err


def test_no_endpoint_is_a_one_line_error(capsys, demo_db):
    code, _, err = run_cli(capsys, "run-model", "--model", "m", "--db", str(demo_db), "--limit", "1", "--quiet")
    assert code == 1 and err.startswith("error: ") and "OPENAI_API_KEY" in err
    with Store.open(demo_db) as store:
        assert store.scalar("SELECT count(*) FROM runs") == 0


def test_concurrent_run_stores_every_answer_once(capsys, fake_openai, demo_db):
    """Several requests in flight (the server waits 0.1 s per reply): every id answered and stored once."""
    fake_openai.delay = 0.1
    code, out, err = run_cli(capsys, *base_args(fake_openai, demo_db, "--limit", "40", "--concurrency", "8",
                                                "--run", "parallel"))
    assert code == 0, err
    assert len(fake_openai.completion_requests) == 40
    with Store.open(demo_db) as store:
        run_id = store.scalar("SELECT id FROM runs WHERE name = 'parallel'")
        rows = store.query("SELECT dp_id, line FROM predictions WHERE run_id = ?", (run_id,))
        assert sorted(r["dp_id"] for r in rows) == sorted(store.ids(None, limit=40))
        assert sorted(r["line"] for r in rows) == list(range(1, 41))


def test_the_stored_base_url_keeps_no_credentials(capsys, fake_openai, demo_db):
    from nemo_core.runs.model_runner import public_url

    assert public_url("http://user:sk-secret@127.0.0.1:8000/v1?key=sk-secret") == "http://127.0.0.1:8000/v1"
    url = fake_openai.base_url.replace("http://", "http://user:sk-secret@")
    code, _, err = run_cli(capsys, "run-model", "--model", "m", "--base-url", url, "--db", str(demo_db), "--limit",
                           "1", "--run", "creds", "--quiet")
    assert code == 0, err
    with Store.open(demo_db) as store:
        settings = json.loads(store.scalar("SELECT settings FROM runs WHERE name = 'creds'"))
    assert settings["base_url"] == fake_openai.base_url
    for path in demo_db.parent.glob(demo_db.name + "*"):  # the database and its WAL
        assert b"sk-secret" not in path.read_bytes()


def test_a_key_echoed_by_the_endpoint_is_redacted_in_everything_stored(capsys, fake_openai, demo_db, monkeypatch):
    """Issue 20: an endpoint that hands back the key it received (in a tool call's arguments and its keys, in
    a text reply, in the LLM grader's reason, in an error) leaves no copy of it in the database or output."""
    from fake_openai import authorization, echo_authorization

    key = "sk-run-model-env-key-4c5d6e7f8a9b"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)  # the key's own endpoint: it may go there

    def respond(request):  # calls the first tool offered; the LLM grader gets the key in its reason
        if (request.body.get("response_format") or {}).get("type"):
            return echo_authorization(None)(request)
        return echo_authorization(request.body["tools"][0]["function"]["name"])(request)

    fake_openai.responder = respond
    fake_openai.script(Reply.error(400, f"invalid request from Bearer {key}"))
    args = ["run-model", "--model", "fake-model", "--db", str(demo_db), "--quiet", "--split", "interactive_agent",
            "--limit", "6", "--concurrency", "1"]
    code, out, err = run_cli(capsys, *args, "--action-type", "function_call", "--run", "echo-calls")
    assert code == 0, err
    fake_openai.responder = echo_authorization(None)  # text replies, graded by the LLM grader
    code2, out2, err2 = run_cli(capsys, *args, "--action-type", "message", "--run", "echo-messages")
    assert code2 == 0, err2
    assert key not in out + err + out2 + err2
    assert {authorization(r) for r in fake_openai.completion_requests} == {f"Bearer {key}"}  # the echo had the key
    with Store.open(demo_db) as store:
        rows = store.query("SELECT p.*, r.name AS run FROM predictions p JOIN runs r ON r.id = p.run_id")
        assert len(rows) == 12
        assert key not in json.dumps(rows)
        assert sum("[redacted]" in (r["action"] or "") for r in rows) == 11  # all but the failed request
        assert all("[redacted]" in r["extra"] for r in rows)
        assert sum("[redacted]" in (r["error"] or "") for r in rows) == 1
        calls = [json.loads(r["breakdown"]) for r in rows if r["run"] == "echo-calls" and r["breakdown"]]
        submitted = [(k["key"], k["submitted"]) for b in calls for k in b["keys"]]
        assert ("note", "you sent Bearer [redacted]") in submitted  # the arguments as graded
        assert ("Bearer [redacted]", "as a key") in submitted  # an argument named after the key
        messages = [json.loads(r["breakdown"]) for r in rows if r["run"] == "echo-messages"]
        assert {b["llm_reason"] for b in messages} == {"graded with Bearer [redacted]"}  # the grader's reason
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not any(key.encode() in p.read_bytes() for p in demo_db.parent.glob(demo_db.name + "*"))
