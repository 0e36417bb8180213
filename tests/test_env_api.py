"""serve-env's API with one server for the whole file, driven by the SDK's own client and by raw HTTP: the
README's client example runs as written; bad input gets the SDK's error shapes and a clear message, never a
500 with a traceback (unknown split, index out of range, a task id that does not exist, arguments that are not
an object, submit_message without a message, a second call); and a database that is missing or not ingested
is the command's one-line error."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest

pytest.importorskip("openreward")

from openreward.api.environments.types import Task  # noqa: E402
from openreward.api.errors import ToolCallError  # noqa: E402

from nemo_core.cli import main as cli  # noqa: E402
from nemo_core.data.store import Store  # noqa: E402

from env_client import ENV_NAME, client, run_sync  # noqa: E402
from env_server import REPO, EnvServer  # noqa: E402

PATH = "/nemotron-agentic"


@pytest.fixture(scope="module")
def server(demo_db_master):
    with EnvServer(demo_db_master) as s:
        yield s
    # no request failed inside the server: the only tracebacks in its log are the SDK logging FastAPI's
    # validation of a malformed body (answered 422, as the tests check)
    assert "unhandled_exception" not in s.output and "status': 500" not in s.output
    assert s.output.count("Traceback") == s.output.count("fastapi.exceptions.RequestValidationError:"), s.output


def http(server, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, dict | list | str]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(server.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode()
    assert "Traceback" not in text
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


async def with_env(server, fn):
    or_client = client()
    env = or_client.environments.get(ENV_NAME, base_url=server.base_url)
    try:
        return await fn(env)
    finally:
        await or_client.environments.aclose()


def sdk(server, fn):
    return run_sync(with_env(server, fn))


def sdk_error(server, fn) -> tuple[int, str]:
    """(HTTP status, message) of the error the SDK client raises."""
    async def run(env):
        try:
            await fn(env)
        except Exception as exc:  # noqa: BLE001
            return exc
        raise AssertionError("no error")

    exc = sdk(server, run)
    return getattr(exc, "status", None), getattr(exc, "message", str(exc))


def task(dp_id: str, **extra) -> Task:
    return Task(server_name=ENV_NAME, environment_name="nemotron-agentic", task_spec={"id": dp_id, **extra},
                namespace=None)


def test_the_readme_client_example_runs_as_written(server):
    readme = (REPO / "README.md").read_text()
    start = readme.index("# serve-env client example")
    code = readme[start:readme.index("```", start)].replace("http://127.0.0.1:8080", server.base_url)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "['tool_calling', 'interactive_agent'] 111 66"
    reward, reason, finished = lines[1].split(" ", 2)[0], lines[1].split(" ", 1)[1].rsplit(" ", 1)[0], lines[1].rsplit(" ", 1)[1]
    assert float(reward) >= 0 and reason and finished == "True"


# ---- the task API ------------------------------------------------------------------------------------------
def test_unknown_split_is_a_400_that_names_the_splits(server):
    for path, body in (("/num_tasks", {"split": "train"}), ("/task", {"split": "train", "index": 0}),
                       ("/task_range", {"split": "train"})):
        status, answer = http(server, "POST", PATH + path, body)
        assert status == 400 and answer == {"detail": "Invalid split: the splits are tool_calling, interactive_agent"}
    status, message = sdk_error(server, lambda env: env.num_tasks("train"))
    assert status == 400 and "tool_calling, interactive_agent" in message
    status, message = sdk_error(server, lambda env: env.session(split="train", index=0).__aenter__())
    assert status == 400 and "Invalid split" in message


def test_index_out_of_range_says_how_many_tasks_there_are(server):
    status, message = sdk_error(server, lambda env: env.get_task("interactive_agent", 66))
    assert status == 400 and message == "task index 66 is out of range: split interactive_agent has 66 tasks (0 to 65)"
    assert sdk_error(server, lambda env: env.get_task("tool_calling", -112))[0] == 400
    last = sdk(server, lambda env: env.get_task("tool_calling", -1))  # Python indexing, as the SDK's default
    assert last.task_spec == sdk(server, lambda env: env.get_task("tool_calling", 110)).task_spec
    status, message = sdk_error(server, lambda env: env.session(split="tool_calling", index=500).__aenter__())
    assert status == 400 and "out of range" in message
    status, answer = http(server, "POST", PATH + "/task", {"split": "tool_calling", "index": "zero"})
    assert status == 422 and isinstance(answer["detail"], list)  # FastAPI's validation error shape


def test_list_tasks_points_at_the_index_api(server):
    status, answer = http(server, "POST", PATH + "/tasks", {"split": "tool_calling"})
    assert status == 400 and "num_tasks + get_task" in answer["detail"]


def test_a_task_that_does_not_exist_or_is_not_a_task_is_refused_at_session_creation(server, demo_db_master):
    with Store.open(demo_db_master, readonly=True) as store:
        ungradeable = store.scalar("SELECT id FROM decision_points WHERE flag_ungradeable = 1 LIMIT 1")
        real = store.scalar("SELECT id FROM decision_points WHERE flag_ungradeable = 0 AND split = 'tool_calling' LIMIT 1")
    cases = {
        "tool_calling/no-such-conversation/3": "no task 'tool_calling/no-such-conversation/3': no such decision point",
        "not an id": "no task 'not an id'",
        ungradeable: f"{ungradeable} is not a task: its expected call cannot be graded",
    }
    for dp_id, expected in cases.items():
        status, message = sdk_error(server, lambda env, dp_id=dp_id: env.session(task=task(dp_id)).__aenter__())
        assert status == 400 and message.startswith(expected), message
    status, message = sdk_error(server, lambda env: env.session(task=task(real, split="interactive_agent")).__aenter__())
    assert status == 400 and "is in tool_calling" in message
    sid = str(uuid.uuid4())
    status, answer = http(server, "POST", "/create", {"task_spec": {"no_id": 1}}, {"X-Session-ID": sid})
    assert status == 400 and answer == {"detail": 'the task spec has no decision point "id" string'}


# ---- the call ------------------------------------------------------------------------------------------------
def open_session(env, index: int = 3):
    return env.session(split="tool_calling", index=index)


def test_arguments_that_are_not_an_object_are_refused_not_graded(server):
    async def run(env):
        async with open_session(env) as session:
            with pytest.raises(ToolCallError) as raised:
                await session.call_tool("get_weather", ["Paris"])  # the SDK client checks first
            assert raised.value.reason == "bad_input_shape"
            # the same through raw HTTP: FastAPI's 422, and the session is still open for a good call
            for bad in (["Paris"], "{\"city\": \"Paris\"}", None):
                status, answer = await asyncio.to_thread(
                    http, server, "POST", PATH + "/call", {"name": "get_weather", "input": bad}, {"X-Session-ID": session.sid})
                assert status == 422 and answer["detail"][0]["loc"][-1] == "input", answer
            result = await session.call_tool("submit_message", {"message": "hello"})
            assert result.finished and result.reward is not None

    sdk(server, run)


def test_submit_message_without_a_message_is_an_input_error_and_the_episode_goes_on(server):
    async def run(env):
        async with open_session(env, 4) as session:
            for bad in ({}, {"text": "hi"}, {"message": 5}, {"message": None}):
                with pytest.raises(ToolCallError) as raised:
                    await session.call_tool("submit_message", bad)
                assert raised.value.reason == "input_validation" and "message" in raised.value.detail
            with pytest.raises(ToolCallError) as raised:
                await session.call_tool("", {})
            assert raised.value.reason == "not_found"
            first = await session.call_tool("submit_message", {"message": "a reply"})
            assert first.finished and first.metadata["submitted_type"] == "message"
            with pytest.raises(ToolCallError) as raised:  # one call ends the episode
                await session.call_tool("submit_message", {"message": "another"})
            assert raised.value.reason == "episode_finished"

    sdk(server, run)


def test_a_lone_surrogate_is_an_input_error_and_the_episode_goes_on(server):
    async def run(env):
        async with open_session(env, 6) as session:
            for call in ({"name": "submit_message", "input": {"message": "bad \ud800 text"}},
                         {"name": "get_\udc00x", "input": {}}, {"name": "f", "input": {"k\ud83d": 1}}):
                status, answer = await asyncio.to_thread(http, server, "POST", PATH + "/call", call,
                                                         {"X-Session-ID": session.sid})
                data = json.loads("".join(line[5:].strip() for line in answer.splitlines()
                                          if line.startswith("data:") and "{" in line))
                assert status == 200 and data["ok"] is False and data["reason"] == "input_validation", answer
                assert "lone surrogate" in data["error"]
            emoji = await session.call_tool("submit_message", {"message": "fine \U0001F600"})  # a real pair is text
            assert emoji.finished and emoji.reward is not None

    sdk(server, run)


def test_two_calls_at_once_are_never_both_graded(server):
    async def run(env):
        async with open_session(env, 5) as session:
            results = await asyncio.gather(session.call_tool("submit_message", {"message": "one"}),
                                           session.call_tool("some_tool", {"a": 1}), return_exceptions=True)
            graded = [r for r in results if not isinstance(r, Exception)]
            refused = [r for r in results if isinstance(r, ToolCallError)]
            assert len(graded) == 1 and len(refused) == 1 and refused[0].reason == "episode_finished"

    sdk(server, run)


def test_a_call_on_an_unknown_session_is_a_404(server):
    status, answer = http(server, "POST", PATH + "/call", {"name": "submit_message", "input": {"message": "x"}},
                          {"X-Session-ID": str(uuid.uuid4())})
    assert status == 404 and answer == {"detail": "Active environment not found"}
    status, answer = http(server, "GET", PATH + "/messages")
    assert status == 400 and answer == {"detail": "X-Session-ID header is required"}


# ---- the database --------------------------------------------------------------------------------------------
def serve_env_error(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["serve-env", "--port", "0", *args])
    return code, err.getvalue()


def test_a_missing_or_not_ingested_database_is_a_one_line_error(tmp_path):
    missing = tmp_path / "missing.db"
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    text = tmp_path / "text.db"
    text.write_text("not a database\n")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    no_tasks = tmp_path / "no_tasks.db"
    Store.open(no_tasks).close()
    cases = {missing: "no database at", empty: "is not an ingested workbench database",
             text: "is not an ingested workbench database", other: "is not an ingested workbench database",
             no_tasks: "holds no task"}
    for path, expected in cases.items():
        for record in ((), ("--record", "r")):
            code, err = serve_env_error("--db", str(path), *record)
            assert code == 1 and err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
            assert "ingest data first" in err
    assert not missing.exists() and empty.read_bytes() == b""  # nothing was created or written


def test_a_run_name_taken_by_another_kind_of_run_is_refused(demo_db, tmp_path):
    from nemo_core.runs.grade_file import grade_file

    preds = tmp_path / "p.jsonl"
    with Store.open(demo_db) as store:
        dp_id = store.scalar("SELECT id FROM decision_points WHERE action_type = 'message' LIMIT 1")
        preds.write_text(json.dumps({"id": dp_id, "action": {"type": "message", "content": "hi"}}) + "\n")
        grade_file(store, preds, run_name="graded", grader="keyword")
    code, err = serve_env_error("--db", str(demo_db), "--record", "graded")
    assert code == 1 and "run 'graded' exists and is a grade run, not an environment run" in err
    for bad in (("--workers", "0"), ("--workers", "100000"), ("--port", "70000")):
        code, err = serve_env_error("--db", str(demo_db), *bad)
        assert code == 1 and err.startswith(f"error: {bad[0]} {bad[1]}: ") and err.count("\n") == 1, err
