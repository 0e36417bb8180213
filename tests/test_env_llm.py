"""serve-env's LLM grader: secrets given at session creation (`openai_api_key`, `openai_base_url`) turn it on
for that session's message task, against the fake OpenAI-compatible server on 127.0.0.1; the grade equals
`grade --grader llm` on the same reply; the key never appears in the server's log, an error, metadata, the
store or a journal."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest

pytest.importorskip("openreward")

from openreward.api.environments.types import Task  # noqa: E402

from nemo_core.cli import main as cli  # noqa: E402
from nemo_core.data.store import Store  # noqa: E402

from env_client import ENV_NAME, episode, run_all, run_sync  # noqa: E402
from env_server import EnvServer  # noqa: E402
from fake_openai import FakeOpenAI, Reply, fake_openai  # noqa: E402,F401  (fixture)

KEY = "sk-serve-env-secret-4f9d2c"
REPLY = "I have updated the delivery address on your order."


def task(dp_id: str) -> Task:
    return Task(server_name=ENV_NAME, environment_name="nemotron-agentic", task_spec={"id": dp_id}, namespace=None)


def test_session_secrets_turn_on_the_llm_grader_and_the_key_stays_secret(demo_db, fake_openai, monkeypatch, tmp_path):
    with Store.open(demo_db, readonly=True) as store:
        messages = [r["id"] for r in store.query("SELECT id FROM decision_points WHERE action_type = 'message' "
                                                 "AND flag_ungradeable = 0 ORDER BY id LIMIT 2")]
        call = store.get(store.scalar("SELECT id FROM decision_points WHERE action_type = 'function_call' "
                                      "AND flag_ungradeable = 0 ORDER BY id LIMIT 1"))
    graded_db = tmp_path / "graded.db"  # for `grade` below: a copy without the environment's runs and LLM cache
    shutil.copy(demo_db, graded_db)
    # the well-known secret name goes as a string; any other secret with the hosts it may be sent to
    secrets = {"openai_api_key": KEY, "openai_base_url": (fake_openai.base_url, ["127.0.0.1"])}
    # the server's own key and endpoint are neither used for a session without a key nor sent a session's key
    other = FakeOpenAI().start()
    server = EnvServer(demo_db, record="llm", env={"OPENAI_API_KEY": "sk-server-own-key", "OPENAI_BASE_URL": other.base_url})
    with server, contextlib.ExitStack() as cleanup:
        cleanup.callback(other.stop)
        first = run_sync(run_all(server.base_url, [
            lambda env: episode(env, "submit_message", {"message": REPLY}, task=task(messages[0]), secrets=secrets),
            lambda env: episode(env, "submit_message", {"message": REPLY}, task=task(messages[1])),  # no key
            lambda env: episode(env, call.expected_calls[0].name, dict(call.expected_calls[0].arguments),
                                task=task(call.id), secrets=secrets),
        ], concurrency=1))
        requests = list(fake_openai.completion_requests)
        # the grader API fails (an error body that echoes the key): the keyword grader answers, key redacted
        fake_openai.script(Reply.error(401, f"invalid key {KEY}"))  # not retried
        (fallback,) = run_sync(run_all(server.base_url, [
            lambda env: episode(env, "submit_message", {"message": REPLY + " Anything else?"}, task=task(messages[0]),
                                secrets=secrets)], concurrency=1))
    llm, keyword, function_call = first
    assert [e.error for e in (llm, keyword, function_call, fallback)] == [None] * 4

    assert llm.result.metadata["grader"] == "llm" and llm.result.metadata["grader_model"] == "gpt-5-mini"
    assert llm.result.reward == 0.7 and llm.result.metadata["llm_score"] == 7  # the fake's default score
    assert len(requests) == 1 and {k.lower(): v for k, v in requests[0].headers.items()}["authorization"] == f"Bearer {KEY}"
    assert REPLY in json.dumps(requests[0].body)  # the candidate went to the grader
    assert keyword.result.metadata["grader"] == "keyword"  # no key, no LLM
    assert other.requests == []
    assert function_call.result.metadata["grader"] == "function_call" and function_call.result.reward == 1.0
    assert fallback.result.metadata["grader"] == "keyword" and "HTTP 401" in fallback.result.metadata["llm_error"]

    # the same reply through `grade --grader llm`, against the same fake server: the same grade
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": messages[0], "action": {"type": "message", "content": REPLY}}) + "\n")
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with contextlib.redirect_stdout(io.TextIOWrapper(io.BytesIO())), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["grade", str(preds), "--db", str(graded_db), "--grader", "llm", "--base-url",
                         fake_openai.base_url, "--run", "g", "--out", str(out)]) == 0
    line = json.loads(out.read_text())
    line.pop("line")
    served = dict(llm.result.metadata)
    assert served.pop("llm_cached") is False and line.pop("llm_cached") is False
    assert served == line

    # the key: nowhere in the log, the metadata, the database (and its WAL) or a journal
    assert KEY not in server.output
    for ep in (llm, keyword, function_call, fallback):
        assert KEY not in json.dumps(dict(ep.result.metadata)) and KEY not in str(ep.result)
    for path in demo_db.parent.glob(demo_db.name + "*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
        else:
            for journal in path.iterdir():
                assert KEY.encode() not in journal.read_bytes(), journal
    with Store.open(demo_db, readonly=True) as store:
        rows = store.query("SELECT * FROM predictions")
        runs = store.query("SELECT * FROM runs")
    assert len(rows) == 4 and KEY not in json.dumps(rows) + json.dumps(runs)
