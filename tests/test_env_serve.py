"""serve-env under load, through the SDK's own client against real servers on 127.0.0.1: 200 concurrent
sessions over two workers (correct rewards, a recorded run holding exactly the submissions made, visible on
the Runs, Failures and Compare pages while the server runs), and a server stopped or killed mid-load loses
nothing it graded."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from functools import partial

import pytest

pytest.importorskip("openreward")

from nemo_core.grading.actions import parse_action  # noqa: E402
from nemo_core.base.config import SUBMIT_MESSAGE  # noqa: E402
from nemo_core.grading.grade import grade_action  # noqa: E402
from nemo_core.runs.analysis import count_failures  # noqa: E402
from nemo_core.data.store import Store  # noqa: E402

from env_client import all_tasks, episode, load, run_all, run_sync  # noqa: E402
from app_runner import run_app_page  # noqa: E402
from env_server import EnvServer  # noqa: E402
from test_env_parity import variants  # noqa: E402

RUNS, FAILURES, COMPARE = "app_pages/runs.py", "app_pages/failures.py", "app_pages/compare.py"


def stored(db, base: str) -> dict[str, list[dict]]:
    """The predictions of each round of a record, by run name."""
    with Store.open(db, readonly=True) as store:
        runs = store.query("SELECT id, name, status, kind FROM runs WHERE name = ? OR name LIKE ? ORDER BY id",
                           (base, base + "@%"))
        return {r["name"]: store.query("SELECT dp_id, reward, action, breakdown, extra FROM predictions "
                                       "WHERE run_id = ?", (r["id"],)) for r in runs}


def wait_for(predicate, timeout: float = 15.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def app_page(db, monkeypatch, page: str, **query: str):
    monkeypatch.setenv("NEMO_DB", str(db))
    return run_app_page(page, query)


def test_200_concurrent_sessions_are_graded_and_recorded_while_pages_watch(demo_db, monkeypatch):
    store = Store.open(demo_db, readonly=True)
    with EnvServer(demo_db, record="load", workers=2) as server:
        tasks = run_sync(all_tasks(server.base_url))
        dps = {t.task_spec["id"]: store.get(t.task_spec["id"]) for t in tasks}
        plan = []  # (task, tool, arguments, expected reward): the expected action, then a perturbed one
        for i in range(200):
            task = tasks[i % len(tasks)]
            dp = dps[task.task_spec["id"]]
            name, args = variants(dp)[0 if i < len(tasks) else 1]
            action = {"type": "function_call", "name": name, "arguments": args}
            plan.append((task, name, args, grade_action(None, dp, parse_action(action)).reward))
        jobs = [partial(episode, tool=name, args=args, task=task) for task, name, args, _ in plan]
        episodes = run_sync(run_all(server.base_url, jobs, concurrency=200))
        assert [ep.error for ep in episodes] == [None] * 200
        for ep, (task, _name, _args, reward) in zip(episodes, plan):
            assert ep.result.reward == reward and ep.result.metadata["id"] == task.task_spec["id"]
        assert len({ep.sid for ep in episodes}) == 200

        # stored within a flush interval, while the server still runs: the pages show the live runs
        rounds = wait_for(lambda: (lambda s: s if sum(map(len, s.values())) == 200 else None)(stored(demo_db, "load")))
        assert {name: len(rows) for name, rows in rounds.items()} == {"load": 177, "load@2": 23}
        with Store.open(demo_db, readonly=True) as live:
            assert {r["status"] for r in live.query("SELECT status FROM runs")} == {"running"}
        table = app_page(demo_db, monkeypatch, RUNS, run="load").dataframe[0].value
        assert dict(zip(table["run"], table["n"])) == {"load": 177, "load@2": 23}
        assert dict(zip(table["run"], table["status"])) == {"load": "running", "load@2": "running"}
        failures = app_page(demo_db, monkeypatch, FAILURES, run="load@2")
        assert not [i for i in failures.info if "still running" in i.value]
        with Store.open(demo_db, readonly=True) as live:  # its failures, listed (fewer than a page)
            n_failures = count_failures(live, live.scalar("SELECT id FROM runs WHERE name = 'load@2'"))
        assert 0 < len(failures.dataframe[0].value) == n_failures
        compare = app_page(demo_db, monkeypatch, COMPARE, a="load", b="load@2")
        assert {m.label: m.value for m in compare.metric}["Shared decision points"] == "23"
    store.close()

    assert server.proc.returncode == 0
    after = stored(demo_db, "load")
    sessions = {json.loads(row["extra"])["session_id"]: row for rows in after.values() for row in rows}
    assert sessions.keys() == {ep.sid for ep in episodes}  # exactly the submissions made, each once
    for ep in episodes:
        row = sessions[ep.sid]
        assert row["reward"] == ep.result.reward and json.loads(row["breakdown"]) == dict(ep.result.metadata)
    with Store.open(demo_db, readonly=True) as done:
        assert {(r["name"], r["status"], r["n_predictions"], r["source_file"]) for r in done.query("SELECT * FROM runs")} \
            == {("load", "completed", 177, f"serve-env {server.base_url}"),
                ("load@2", "completed", 23, f"serve-env {server.base_url}")}


# ---- stopping or killing a server mid-load ----------------------------------------------------------------------
def probe_job(tasks, n: int):
    """Episode n: a reply that names it, so its stored row can be found."""
    return partial(episode, tool=SUBMIT_MESSAGE, args={"message": f"probe {n} reply"}, task=tasks[n % len(tasks)])


def run_load_until(server, tasks, *, answered: int, then) -> list:
    """Load the server (8 sessions at a time) until `answered` episodes got their reward, call `then()`, and
    return every episode started (those cut off by `then` have an error)."""
    stop = threading.Event()
    result: list = []
    thread = threading.Thread(target=lambda: result.extend(run_sync(load(
        server.base_url, lambda n: probe_job(tasks, n), stop, concurrency=8, limit=400))))
    thread.start()
    # `result` fills only at the end; count answers from the journal-backed store instead of the client
    assert wait_for(lambda: thread.is_alive() and _answered(server) >= answered or not thread.is_alive(), 60)
    then()
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    return result


def _answered(server) -> int:
    """Submissions graded so far: the lines of the workers' journals (each holds all its worker graded)."""
    journals = list((server.db.parent / (server.db.name + "-serve-env")).glob("journal-*.jsonl"))
    return sum(max(0, p.read_bytes().count(b"\n") - 1) for p in journals)


def unstored_journal_lines(db, journals) -> int:
    """Journal lines (after the header) beyond the count the store says it took from each journal."""
    with Store.open(db, readonly=True) as store:
        return sum(max(0, p.read_bytes().count(b"\n") - 1 - int(store.meta(f"serve-env journal {p.name}") or 0))
                   for p in journals)


def probes_stored(db, base: str) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {}
    for rows in stored(db, base).values():
        for row in rows:
            n = int(json.loads(row["action"])["content"].split()[1])
            found.setdefault(n, []).append(row)
    return found


@pytest.mark.parametrize("how", ["sigterm", "sigkill-supervisor", "sigkill-all"])
def test_a_server_stopped_or_killed_mid_load_loses_nothing_it_graded(demo_db, how):
    """SIGTERM: workers finish the calls in flight and store everything before exiting. SIGKILL of the
    supervisor alone: the workers get SIGTERM from the kernel (PR_SET_PDEATHSIG) and do the same. SIGKILL of
    every process: the graded submissions not yet stored are in the journals, and the next start stores them."""
    server = EnvServer(demo_db, record="kill", workers=2)
    actions = {"sigterm": lambda: server.send(signal.SIGTERM), "sigkill-supervisor": lambda: server.send(signal.SIGKILL),
               "sigkill-all": lambda: server.kill_group(signal.SIGKILL)}
    try:
        server.start()
        tasks = run_sync(all_tasks(server.base_url))
        episodes = run_load_until(server, tasks, answered=40, then=actions[how])
        server.wait(60)
        if how == "sigkill-supervisor":  # the orphaned workers flush and exit by themselves
            assert wait_for(lambda: not list((demo_db.parent / (demo_db.name + "-serve-env")).glob("journal-*")), 30)
    finally:
        server.stop()
    answered = {ep.extra["n"]: ep for ep in episodes if ep.error is None}
    assert len(answered) >= 25  # (40 were graded when the signal went; a kill may cut some answers off)
    if how == "sigkill-all":
        journals = list((demo_db.parent / (demo_db.name + "-serve-env")).glob("journal-*.jsonl"))
        assert journals  # left behind by the killed workers
        pending = unstored_journal_lines(demo_db, journals)
        with EnvServer(demo_db, record="kill", workers=1) as again:
            # the next start stores what the journals hold beyond what the killed workers stored; when the
            # kill came right after a flush there is nothing left, and nothing is said (seen under load)
            said = re.search(r"stored (\d+) submissions left in the journals of a server that was killed", again.output)
            assert (int(said.group(1)) if said else 0) == pending, again.output
        assert not list((demo_db.parent / (demo_db.name + "-serve-env")).glob("journal-*.jsonl"))
    found = probes_stored(demo_db, "kill")
    assert all(len(rows) == 1 for rows in found.values())  # nothing stored twice
    for n, ep in answered.items():  # everything graded and answered is stored, with its reward
        assert n in found, f"episode {n} was answered (reward {ep.result.reward}) but is not stored"
        assert found[n][0]["reward"] == ep.result.reward
    assert set(found) <= {ep.extra["n"] for ep in episodes}
