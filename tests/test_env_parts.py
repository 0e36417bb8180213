"""The parts of serve-env without a server: the task order, the prompt conversion, the recorder (rounds,
journal replay), the schema 4 migration of a database made before it, and `stats`' task counts."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from nemo_core.cli import main as cli
from nemo_core.grading.actions import parse_action
from nemo_core.environment import recorder as rec
from nemo_core.environment.tasks import TaskError, TaskIndex, check_task_spec
from nemo_core.grading.grade import grade_action
from nemo_core.runs.run import RunError, create_run, get_run, list_runs
from nemo_core.data.schema import SCHEMA_VERSION
from nemo_core.data.store import Store
from nemo_core.runs.taxonomy import taxonomy_is_current

DATA = Path(__file__).resolve().parent / "data"


# ---- tasks ----------------------------------------------------------------------------------------------------
def test_task_index_is_the_gradeable_decision_points_in_id_order(demo_store):
    index = TaskIndex.build(demo_store)
    assert index.counts() == demo_store.task_counts() == {"tool_calling": 111, "interactive_agent": 66}
    for split in ("tool_calling", "interactive_agent"):
        expected = [r["id"] for r in demo_store.query(
            "SELECT id, action_type FROM decision_points WHERE split = ? AND flag_ungradeable = 0 ORDER BY id", (split,))]
        specs = index.specs(split)
        assert [s.id for s in specs] == expected
        assert index.spec(split, 0) == specs[0] and index.spec(split, -1) == specs[-1]
        assert [s.id for s in index.specs(split, 5, 9)] == expected[5:9]
        assert [s.id for s in index.specs(split, -3, None)] == expected[-3:]
        assert all(s.split == split for s in specs)
    with pytest.raises(TaskError, match=r"task index 66 is out of range: split interactive_agent has 66 tasks \(0 to 65\)"):
        index.spec("interactive_agent", 66)
    with pytest.raises(TaskError, match="unknown split 'train': the splits are tool_calling, interactive_agent"):
        index.count("train")


def test_a_task_range_is_bounded(demo_store, monkeypatch):
    from nemo_core.environment import tasks

    monkeypatch.setattr(tasks, "MAX_TASK_RANGE", 50)
    index = TaskIndex.build(demo_store)
    assert len(index.specs("tool_calling", 0, 50)) == 50
    with pytest.raises(TaskError, match="111 tasks asked for at once; at most 50 per range"):
        index.specs("tool_calling")


def test_a_task_spec_names_a_gradeable_decision_point(demo_store):
    ok = demo_store.scalar("SELECT id FROM decision_points WHERE flag_ungradeable = 0 LIMIT 1")
    bad = demo_store.scalar("SELECT id FROM decision_points WHERE flag_ungradeable = 1 LIMIT 1")
    assert check_task_spec({"id": ok}, demo_store).id == ok
    for spec, message in (([ok], "a task spec is a JSON object"), ({"id": 3}, 'no decision point "id" string'),
                          ({"id": "x/y/1"}, "no task 'x/y/1'"), ({"id": bad}, "is not a task"),
                          ({"id": ok, "split": "nope"}, "the task spec says split 'nope'")):
        with pytest.raises(TaskError, match=message):
            check_task_spec(spec, demo_store)


# ---- the prompt -------------------------------------------------------------------------------------------------
pytest.importorskip("openreward")
from nemo_core.environment.prompt import context_messages, task_tool_specs  # noqa: E402
from nemo_core.grading.request import NO_RESULT_PLACEHOLDER, UNLINKED_TOOL_RESULT_PREFIX, build_request  # noqa: E402
from openreward.api.environments.client import _parse_blocks, convert_messages  # noqa: E402
from openreward.api.environments.types import Message as ClientMessage  # noqa: E402


def as_client_received(messages) -> list:
    """The server's messages as the SDK client rebuilds them from the `/messages` JSON."""
    return [ClientMessage(role=m["role"], blocks=_parse_blocks(m["blocks"]), detail=m.get("detail"))
            for m in (json.loads(msg.model_dump_json()) for msg in messages)]


def test_context_messages_follow_the_sdk_placement_rules():
    context = [
        {"role": "system", "content": ""},
        {"role": "user", "content": "Weather in Oslo and Bergen?"},
        {"role": "assistant", "content": "", "reasoning_content": "SECRET-REASONING",
         "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}},
                        {"name": "get_weather", "arguments": {"city": "Bergen"}},
                        {"name": "get_time", "arguments": ["Oslo"]}]},
        {"role": "tool", "content": {"temp": 3}},
        {"role": "tool", "content": "rain"},
        {"role": "user", "content": "And tomorrow?"},
        {"role": "tool", "content": "stray reply"},
    ]
    messages = context_messages(context)
    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "user", "user"]
    assistant = messages[2]
    assert [b.type for b in assistant.blocks] == ["tool_call", "tool_call", "text"]
    assert assistant.blocks[0].input == {"city": "Oslo"} and assistant.blocks[0].id == "call_2_0"
    assert assistant.blocks[2].text == '[tool_call get_time] ["Oslo"]'  # not an object: shown as it is
    results = messages[3].blocks  # consecutive replies share one user turn
    assert [b.type for b in results] == ["tool_result", "tool_result", "text"]
    assert results[0].tool_call_id == "call_2_0" and results[0].blocks[0].text == '{"temp": 3}'
    assert results[1].blocks[0].text == "rain"
    assert results[2].text == f"[tool_result get_time] {NO_RESULT_PLACEHOLDER}"
    assert messages[5].blocks[0].text == UNLINKED_TOOL_RESULT_PREFIX + "stray reply"
    assert "SECRET-REASONING" not in json.dumps([m.model_dump() for m in messages])


def is_object_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def test_messages_in_openai_format_are_the_workbench_request(demo_store):
    """The SDK's `format="openai"` gives back the exact request the workbench sends a model (arguments
    re-encoded by the SDK, so compared as JSON)."""
    def normal(messages):
        out = []
        for m in messages:
            m = dict(m)
            for call in m.get("tool_calls") or []:
                call["function"]["arguments"] = json.loads(call["function"]["arguments"])
            out.append(m)
        return out

    checked = 0
    for (dp_id,) in demo_store.conn.execute("SELECT id FROM decision_points WHERE flag_ungradeable = 0"):
        dp = demo_store.get(dp_id)
        request = build_request(dp)
        if not all(is_object_json(c["function"]["arguments"]) for m in request["messages"] for c in m.get("tool_calls") or []):
            continue  # a call whose arguments are not an object is shown as text instead
        served = convert_messages(as_client_received(context_messages(dp.context)), format="openai")
        assert normal(served) == normal(request["messages"]), dp_id
        specs = task_tool_specs(dp.toolset)
        assert [(s.name, s.description, s.input_schema) for s in specs] == [
            (t["function"]["name"], t["function"]["description"], t["function"]["parameters"]) for t in dp.toolset.task_tools]
        checked += 1
    assert checked > 150


# ---- the recorder --------------------------------------------------------------------------------------------
def submissions(store: Store, specs: list[tuple[str, str]]) -> list[rec.Submission]:
    """A graded `Submission` for each (decision point id, reply) — every action a message."""
    out = []
    for dp_id, reply in specs:
        dp = store.get(dp_id)
        action = parse_action({"type": "message", "content": reply})
        out.append(rec.Submission.of(dp, action, grade_action(None, dp, action), extra={"n": reply}))
    return out


OWNER = {"pid": os.getpid(), "host": "test"}


def test_each_submission_goes_to_the_first_round_without_its_decision_point(demo_store):
    a, b = [r["id"] for r in demo_store.query("SELECT id FROM decision_points WHERE flag_ungradeable = 0 LIMIT 2")]
    placed = rec.store_submissions(demo_store, "rl", submissions(demo_store, [(a, "1"), (a, "2"), (b, "3"), (a, "4")]),
                                   owner=OWNER)
    assert placed == {"rl": 2, "rl@2": 1, "rl@3": 1}
    placed = rec.store_submissions(demo_store, "rl", submissions(demo_store, [(b, "5"), (a, "6")]), owner=OWNER)
    assert placed == {"rl@2": 1, "rl@4": 1}
    rounds = {r.name: r for r in list_runs(demo_store, kind="environment")}
    assert set(rounds) == {"rl", "rl@2", "rl@3", "rl@4"}
    for run in rounds.values():  # classified as stored: every page can read a round while it grows
        assert run.status == "running" and run.settings["process"] == OWNER and taxonomy_is_current(demo_store, run.id)
    extras = {json.loads(r["extra"])["n"]: r["name"] for r in demo_store.query(
        "SELECT p.extra, r.name FROM predictions p JOIN runs r ON r.id = p.run_id")}
    assert extras == {"1": "rl", "2": "rl@2", "3": "rl", "4": "rl@3", "5": "rl@2", "6": "rl@4"}
    assert rec.close_record(demo_store, "rl") == ["rl", "rl@2", "rl@3", "rl@4"]
    assert get_run(demo_store, "rl").n_predictions == 2 and get_run(demo_store, "rl@4").status == "completed"
    assert [r.name for r in rec.open_record(demo_store, "rl")] == ["rl", "rl@2", "rl@3", "rl@4"]  # continued
    assert get_run(demo_store, "rl@3").status == "running"


def test_a_record_name_taken_by_another_kind_of_run_is_refused(demo_store):
    create_run(demo_store, "taken@2", kind="grade", grader="keyword", rule_version="x")
    create_run(demo_store, "taken", kind="environment", grader="auto", rule_version="x")
    with pytest.raises(rec.RecordError, match="run 'taken@2' exists and is a grade run"):
        rec.open_record(demo_store, "taken")
    with pytest.raises(RunError, match="unknown run kind"):
        create_run(demo_store, "x", kind="training", grader="auto", rule_version="x")


def test_a_record_another_live_server_is_writing_is_refused(demo_store):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {"pid": sleeper.pid, "host": socket.gethostname()}
        ids = [r["id"] for r in demo_store.query("SELECT id FROM decision_points WHERE flag_ungradeable = 0 LIMIT 1")]
        rec.store_submissions(demo_store, "busy", submissions(demo_store, [(ids[0], "x")]), owner=owner)
        with pytest.raises(RunError, match=f"run 'busy' is being run right now by process {sleeper.pid}"):
            rec.open_record(demo_store, "busy")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert [r.name for r in rec.open_record(demo_store, "busy")] == ["busy"]  # its owner is gone: continued


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_journal_left_by_a_killed_process_is_stored_exactly_once(demo_db, tmp_path):
    store = Store.open(demo_db)
    ids = [r["id"] for r in store.query("SELECT id FROM decision_points WHERE flag_ungradeable = 0 LIMIT 5")]
    subs = submissions(store, [(i, f"reply {n}") for n, i in enumerate(ids)])
    directory = rec.journal_dir(demo_db)
    journal = rec.Journal(directory, "rl")
    for sub in subs:
        journal.append(sub.to_line())
    os.close(journal.fd)
    # the killed process had stored the first two (and said so in the same transaction)
    rec.store_submissions(store, "rl", subs[:2], owner=OWNER, journal=(journal.name, 2))
    header = json.loads(journal.path.read_bytes().split(b"\n")[0])
    header["process"]["pid"] = dead_pid()
    lines = journal.path.read_bytes().split(b"\n")
    journal.path.write_bytes(b"\n".join([json.dumps(header).encode(), *lines[1:]]) + b'{"row": [1, 2')  # torn
    live = rec.Journal(directory, "other")  # this process is alive: its journal is left alone
    live.append(subs[0].to_line())

    assert rec.replay_journals(store, directory, owner=OWNER) == {"rl": 3}
    assert rec.replay_journals(store, directory, owner=OWNER) == {}  # nothing twice
    assert not journal.path.exists() and live.path.exists()
    stored = [json.loads(r["extra"])["n"] for r in store.query("SELECT extra FROM predictions ORDER BY id")]
    assert stored == [f"reply {n}" for n in range(5)]
    assert store.meta(f"serve-env journal {journal.name}") is None
    live.remove()
    store.close()


def test_the_recorder_journals_first_then_stores_in_batches_and_cleans_up(demo_db):
    with Store.open(demo_db) as store:
        ids = [r["id"] for r in store.query("SELECT id FROM decision_points WHERE flag_ungradeable = 0 LIMIT 3")]
        subs = submissions(store, [(i, "x") for i in ids])
    recorder = rec.RunRecorder(demo_db, "live", owner=OWNER, flush_seconds=30)  # no timed flush in this test
    for sub in subs:
        recorder.record(sub)
    assert recorder.journal.path.read_bytes().count(b"\n") == 4  # header + 3, before anything is stored
    with Store.open(demo_db, readonly=True) as store:
        assert store.scalar("SELECT count(*) FROM predictions") == 0
    assert recorder.flush() == 3
    with Store.open(demo_db, readonly=True) as store:
        assert store.scalar("SELECT count(*) FROM predictions") == 3
        assert store.meta(f"serve-env journal {recorder.journal.name}") == "3"
    recorder.record(subs[0])
    path = recorder.journal.path
    assert recorder.close() and not path.exists()
    with Store.open(demo_db, readonly=True) as store:
        assert store.scalar("SELECT count(*) FROM predictions") == 4 and not store.query(
            "SELECT key FROM meta WHERE key LIKE 'serve-env journal%'")


# ---- schema 4 ------------------------------------------------------------------------------------------------
def test_a_database_made_before_schema_4_accepts_environment_runs_and_keeps_its_runs(tmp_path):
    """`tests/data/demo-schema3.db.zst`: the demo database built by main before this change (commit ba940e7,
    schema 3) with one `grade` run of 20 predictions."""
    db = tmp_path / "old.db"
    db.write_bytes(zstandard.ZstdDecompressor().decompress((DATA / "demo-schema3.db.zst").read_bytes(),
                                                           max_output_size=50_000_000))
    import sqlite3

    raw = sqlite3.connect(db)
    assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    before = raw.execute("SELECT * FROM runs").fetchall()
    n_predictions = raw.execute("SELECT count(*) FROM predictions").fetchone()[0]
    with pytest.raises(sqlite3.IntegrityError):  # what the old table does with the new kind
        raw.execute("INSERT INTO runs(name, created_at, kind, grader, rule_version) VALUES ('e', 'now', 'environment', 'auto', 'x')")
    raw.close()

    store = Store.open(db)
    assert store.meta("schema_version") == str(SCHEMA_VERSION) == "4"
    assert [tuple(r.values()) for r in store.query("SELECT * FROM runs")] == before
    assert store.scalar("SELECT count(*) FROM predictions") == n_predictions == 20
    triggers = {r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'runs'")}
    assert triggers == {"taxonomy_state_delete_run", "run_summary_cache_delete_run"}
    env_id = create_run(store, "env", kind="environment", grader="auto", rule_version="x")
    assert get_run(store, env_id).kind == "environment"
    from nemo_core.runs.analysis import delete_run_with_analysis, report

    assert report(store, "main-grade")["n"] == 20  # the old run still reads (and classifies) as before
    delete_run_with_analysis(store, 1)  # its triggers work on the rebuilt table
    assert not store.query("SELECT * FROM taxonomy_state WHERE run_id = 1")
    assert not store.query("SELECT * FROM run_summary_cache WHERE run_id = 1")
    store.close()
    assert Store.open(db).meta("schema_version") == "4"  # a second open has nothing to do


def test_stats_counts_tasks_and_says_why_they_differ(demo_db):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["stats", "--db", str(demo_db)]) == 0
    assert "tasks (serve-env): 177  tool_calling 111, interactive_agent 66  (decision points minus the 3 ungradeable" \
        in out.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["stats", "--db", str(demo_db), "--json"]) == 0
    assert json.loads(out.getvalue())["tasks"] == {"tool_calling": 111, "interactive_agent": 66}


def test_a_journal_whose_lines_are_all_stored_is_rotated_past_its_size(demo_db, monkeypatch):
    monkeypatch.setattr(rec, "ROTATE_BYTES", 1)
    with Store.open(demo_db) as store:
        ids = [r["id"] for r in store.query("SELECT id FROM decision_points WHERE flag_ungradeable = 0 LIMIT 4")]
        subs = submissions(store, [(i, "x") for i in ids])
    recorder = rec.RunRecorder(demo_db, "rot", owner=OWNER, flush_seconds=30)
    first = recorder.journal.path
    recorder.record(subs[0])
    recorder.record(subs[1])
    assert recorder.flush() == 2
    assert not first.exists() and recorder.journal.path != first and recorder.journal.written == 0
    recorder.record(subs[2])
    recorder.record(subs[3])
    second = recorder.journal.path
    assert second.read_bytes().count(b"\n") == 3
    assert recorder.close() and not second.exists()
    with Store.open(demo_db, readonly=True) as store:
        assert store.scalar("SELECT count(*) FROM predictions") == 4
        assert not store.query("SELECT key FROM meta WHERE key LIKE 'serve-env journal%'")
