"""Issue 20, points 8 and 9, a run's lifecycle: bad --workers and --out values are one-line errors before any
work; two processes never run one run-model run at once; `report` says when a run is partial; after Ctrl-C,
the same `grade` command grades the file again into the same run.

Interruptions are real: the commands run in their own processes, which get SIGINT or SIGKILL, against a real
OpenAI-compatible server on 127.0.0.1 (tests/fake_openai.py) slowed down so there is time to stop them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interrupt import default_sigint

from fake_openai import FakeOpenAI
from nemo_core.cli.options import check_workers, max_workers
from nemo_core.cli.main import main
from nemo_core.base.errors import OptionError
from nemo_core.data.store import Store

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NEMO_GRADER_MODEL", "NEMO_DB"):
        monkeypatch.delenv(name, raising=False)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)


def count(db: Path, sql: str, params: tuple = ()) -> int:
    with Store.open(db) as store:
        return store.scalar(sql, params) or 0


def partly_graded_file(db: Path, path: Path) -> tuple[int, int]:
    """A file whose first batch of 2,000 lines (`grading.BATCH_LINES`) grades at once (unknown ids, then
    calls graded by rule, so its last line is stored) and whose second batch waits on the LLM grader:
    (lines, message lines)."""
    with Store.open(db) as store:
        calls = [r["id"] for r in store.query("SELECT id FROM decision_points WHERE action_type = 'function_call'")]
        messages = [r["id"] for r in store.query("SELECT id FROM decision_points WHERE action_type = 'message'")]
    lines = [{"id": f"tool_calling/unknown-{n}/1", "action": {"type": "message", "content": "x"}}
             for n in range(2000 - len(calls))]
    lines += [{"id": i, "action": {"type": "function_call", "name": "f", "arguments": {}}} for i in calls]
    lines += [{"id": i, "action": {"type": "message", "content": f"reply {n}"}} for n, i in enumerate(messages)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return len(lines), len(messages)


def message_predictions(db: Path, path: Path) -> int:
    """A predictions file answering every message decision point of the demo database; how many lines."""
    with Store.open(db) as store:
        ids = [r["id"] for r in store.query("SELECT id FROM decision_points WHERE action_type = 'message' ORDER BY id")]
    path.write_text("".join(json.dumps({"id": i, "action": {"type": "message", "content": f"reply {n}"}}) + "\n"
                            for n, i in enumerate(ids)))
    return len(ids)


def command(*argv: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m nemo_core ARGV` in its own process (so it can be interrupted for real)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NEMO_DB")}
    return subprocess.Popen([sys.executable, "-m", "nemo_core", *argv], cwd=REPO, env={**clean, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


# ---- --workers -------------------------------------------------------------------------------------------
def test_grade_rejects_a_negative_worker_count_before_creating_a_run(demo_db, tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    message_predictions(demo_db, preds)
    code, _, err = run_cli(capsys, "grade", preds, "--db", demo_db, "--run", "w", "--workers", "-1", "--quiet")
    assert code == 1
    one_line_error(err, "--workers -1", "must be from 0")
    assert count(demo_db, "SELECT count(*) FROM runs") == 0  # no run, let alone one left `running`


@pytest.mark.parametrize("workers", [-1, max_workers() + 1, 100_000])
def test_absurd_worker_counts_are_refused(workers):
    # checked on the function the commands call first, not through `grade`: were the check ever lost, a
    # test asking `grade` for 100,000 workers would fork them
    with pytest.raises(OptionError, match=f"--workers {workers}: must be from 0"):
        check_workers(workers, zero="none")
    check_workers(0, zero="none")
    check_workers(max_workers(), zero="none")


def test_grade_with_zero_workers_grades_in_this_process(demo_db, tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    n = message_predictions(demo_db, preds)
    code, _, err = run_cli(capsys, "grade", preds, "--db", demo_db, "--run", "w0", "--workers", "0", "--quiet")
    assert code == 0, err
    assert count(demo_db, "SELECT n_predictions FROM runs WHERE name = 'w0' AND status = 'completed'") == n


def test_ingest_rejects_a_bad_worker_count_before_reading(tmp_path, capsys):
    db = tmp_path / "fresh.db"
    raw = REPO / "data" / "demo" / "tool_calling.jsonl"
    code, _, err = run_cli(capsys, "ingest", raw, "--db", db, "--workers", "-1", "--quiet")
    assert code == 1
    one_line_error(err, "--workers -1")
    assert count(db, "SELECT count(*) FROM conversations") == 0


# ---- --out / --report into a folder that does not exist ----------------------------------------------------
def test_grade_out_into_a_missing_folder_is_a_one_line_error_before_any_work(demo_db, tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    message_predictions(demo_db, preds)
    out = tmp_path / "no-such-folder" / "results.jsonl"
    code, _, err = run_cli(capsys, "grade", preds, "--db", demo_db, "--run", "o", "--out", out, "--quiet")
    assert code == 1
    one_line_error(err, "--out", "does not exist")
    assert not out.parent.exists()  # not created: a typo must not make folders
    assert count(demo_db, "SELECT count(*) FROM runs") == 0
    code, _, err = run_cli(capsys, "grade", preds, "--db", demo_db, "--run", "o", "--out", tmp_path, "--quiet")
    assert code == 1
    one_line_error(err, "is a folder")


def test_ingest_report_into_a_missing_folder_is_refused_before_reading(tmp_path, capsys):
    db = tmp_path / "fresh.db"
    raw = REPO / "data" / "demo" / "tool_calling.jsonl"
    code, _, err = run_cli(capsys, "ingest", raw, "--db", db, "--report", tmp_path / "nope" / "r.json", "--quiet")
    assert code == 1
    one_line_error(err, "--report", "does not exist")
    assert count(db, "SELECT count(*) FROM conversations") == 0


def test_campaign_export_out_into_a_missing_folder(demo_db, tmp_path, capsys):
    assert run_cli(capsys, "campaign", "create", "c1", "--size", "4", "--db", demo_db)[0] == 0
    code, _, err = run_cli(capsys, "campaign", "export", "c1", "--out", tmp_path / "nope" / "c.csv", "--db", demo_db)
    assert code == 1
    one_line_error(err, "--out", "does not exist")


# ---- run-model: one process per run, and report on a partial run --------------------------------------------
def test_a_second_resume_of_a_running_model_run_is_refused_and_a_killed_run_reports_partial(demo_db, capsys):
    with FakeOpenAI(delay=0.25) as server:
        common = ["run-model", "--model", "fake-model", "--base-url", server.base_url, "--db", str(demo_db),
                  "--quiet", "--split", "tool_calling", "--concurrency", "1", "--run", "shared"]
        assert run_cli(capsys, *common, "--limit", "2")[0] == 0  # a finished run, then resumed on a larger selection
        first = command(*common, "--limit", "40")
        try:
            wait_for(lambda: count(demo_db, "SELECT count(*) FROM predictions p JOIN runs r ON r.id = p.run_id "
                                            "WHERE r.name = 'shared' AND r.status = 'running'") >= 4,
                     "the first resume to be answering")
            asked = len(server.completion_requests)
            code, _, err = run_cli(capsys, *common, "--limit", "40")  # a second resume, at the same time
            assert code == 1
            one_line_error(err, "run 'shared' is being run right now by process", str(first.pid))
            assert len(server.completion_requests) <= asked + 1  # it asked nothing (the first one asks on)
            first.send_signal(signal.SIGKILL)  # killed: it cannot record how it ended
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        with Store.open(demo_db) as store:
            stored = store.scalar("SELECT n FROM (SELECT count(*) AS n, count(DISTINCT dp_id) AS d FROM predictions "
                                  "WHERE run_id = (SELECT id FROM runs WHERE name = 'shared')) WHERE n = d")
        assert stored is not None and 4 <= stored < 40  # every id once: no double work

        code, out, err = run_cli(capsys, "report", "--run", "shared", "--db", demo_db)
        assert code == 0, err
        assert f"status: interrupted, partial: {stored:,} of 40 decision points" in out
        code, out, _ = run_cli(capsys, "report", "--run", "shared", "--db", demo_db, "--json")
        progress = json.loads(out)["progress"]
        assert json.loads(out)["status"] == "interrupted"
        assert progress == {"status": "interrupted", "complete": False, "done": stored, "total": 40,
                            "unit": "decision points", "partial": f"partial: {stored} of 40 decision points"}

        server.delay = 0
        code, out, err = run_cli(capsys, *common, "--limit", "40")  # now it resumes, and finishes
        assert code == 0, err and f"already done: {stored}" in out
        code, out, _ = run_cli(capsys, "report", "--run", "shared", "--db", demo_db)
        assert "partial" not in out and "status:" not in out
        code, out, _ = run_cli(capsys, "report", "--run", "shared", "--db", demo_db, "--json")
        assert json.loads(out)["progress"]["partial"] is None and json.loads(out)["status"] == "completed"
    assert count(demo_db, "SELECT count(*) FROM predictions WHERE run_id = (SELECT id FROM runs WHERE name = 'shared')") == 40


def test_report_says_a_failed_grade_run_is_partial(demo_db, tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    n = message_predictions(demo_db, preds)
    assert run_cli(capsys, "grade", preds, "--db", demo_db, "--run", "cut", "--quiet")[0] == 0
    with Store.open(demo_db) as store, store.transaction() as conn:  # as if it had stopped after line 40
        run_id = store.scalar("SELECT id FROM runs WHERE name = 'cut'")
        conn.execute("DELETE FROM predictions WHERE run_id = ? AND line > 40", (run_id,))
        conn.execute("UPDATE runs SET status = 'failed' WHERE id = ?", (run_id,))
    code, out, _ = run_cli(capsys, "report", "--run", "cut", "--db", demo_db)
    assert code == 0 and f"status: failed, partial: 40 of {n} lines: the figures below cover only those" in out
    assert "re-run the same grade command (same --run)" in out
    code, out, _ = run_cli(capsys, "report", "--run", "cut", "--db", demo_db, "--json")
    data = json.loads(out)
    assert data["status"] == "failed" and data["progress"]["partial"] == f"partial: 40 of {n} lines"
    assert data["progress"]["complete"] is False and data["progress"]["done"] == 40 and data["progress"]["total"] == n
    preds.unlink()  # the file is gone: its total is unknown
    code, out, _ = run_cli(capsys, "report", "--run", "cut", "--db", demo_db)
    assert "status: failed, partial: 40 lines of an unknown total" in out


# ---- grade: Ctrl-C, then the same command -----------------------------------------------------------------
def test_after_ctrl_c_the_same_grade_command_grades_the_file_into_the_same_run(demo_db, tmp_path, capsys, monkeypatch):
    preds = tmp_path / "answers.jsonl"
    n, n_messages = partly_graded_file(demo_db, preds)
    with FakeOpenAI(delay=0.1) as server:
        env = {"OPENAI_API_KEY": "sk-lifecycle-test", "OPENAI_BASE_URL": server.base_url}
        argv = ["grade", str(preds), "--db", str(demo_db), "--run", "nightly", "--grader", "llm", "--concurrency", "1",
                "--quiet"]
        proc = command(*argv, env=env)
        try:
            wait_for(lambda: count(demo_db, "SELECT count(*) FROM llm_grade_cache") >= 5, "some lines to be graded")
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "run the same command again with --run nightly" in err
        with Store.open(demo_db) as store:
            run = store.query("SELECT * FROM runs WHERE name = 'nightly'")[0]
            cached = store.scalar("SELECT count(*) FROM llm_grade_cache")
            last_line = store.scalar("SELECT max(line) FROM predictions WHERE run_id = ?", (run["id"],))
        assert run["status"] == "interrupted" and last_line == 2000 and cached < n_messages
        assert f"keeps the {run['n_predictions']:,} predictions stored" in err

        code, out, err = run_cli(capsys, "report", "--run", "nightly", "--db", demo_db)
        assert code == 0 and f"status: interrupted, partial: 2,000 of {n:,} lines" in out, out

        asked_before = len(server.completion_requests)
        server.delay = 0
        monkeypatch.setenv("OPENAI_API_KEY", "sk-lifecycle-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        code, out, err = run_cli(capsys, *argv)  # the same command: graded again, whole, into the same name
        assert code == 0, err
        assert "note: run 'nightly' did not finish" in err
        # the grades cached before the stop were not asked again
        assert len(server.completion_requests) - asked_before == n_messages - cached
    with Store.open(demo_db) as store:
        runs = store.query("SELECT * FROM runs WHERE name = 'nightly'")
        assert len(runs) == 1 and runs[0]["status"] == "completed" and runs[0]["n_lines"] == n
        stored = store.scalar("SELECT count(DISTINCT dp_id) FROM predictions WHERE run_id = ?", (runs[0]["id"],))
        assert stored == runs[0]["n_predictions"] == 180  # every call and message line, once
    code, _, err = run_cli(capsys, *argv)  # a completed run is not graded over
    assert code == 1
    one_line_error(err, "already exists")


def test_grade_into_a_run_of_another_file_is_refused(demo_db, tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    message_predictions(demo_db, a)
    message_predictions(demo_db, b)
    with Store.open(demo_db) as store, store.transaction() as conn:  # an interrupted run of a.jsonl
        conn.execute("INSERT INTO runs(name, created_at, status, kind, source_file, grader, rule_version) "
                     "VALUES ('x', '2025-01-01', 'interrupted', 'grade', ?, 'keyword', 'r')", (str(a),))
    code, _, err = run_cli(capsys, "grade", b, "--db", demo_db, "--run", "x", "--quiet")
    assert code == 1
    one_line_error(err, "already exists")
    assert count(demo_db, "SELECT count(*) FROM runs WHERE name = 'x' AND status = 'interrupted'") == 1


def test_check_not_in_progress():
    import socket

    from nemo_core.runs.run import RunError, check_not_in_progress

    here = socket.gethostname()
    with pytest.raises(RunError, match=f"run 'r' is being run right now by process {os.getpid()}$"):
        check_not_in_progress("r", "running", json.dumps({"process": {"pid": os.getpid(), "host": here}}))
    with pytest.raises(RunError, match="by process 7 on elsewhere"):  # another machine: cannot tell, assumed alive
        check_not_in_progress("r", "running", {"process": {"pid": 7, "host": "elsewhere"}})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    check_not_in_progress("r", "running", {"process": {"pid": dead.pid, "host": here}})  # gone: free to take
    check_not_in_progress("r", "interrupted", {"process": {"pid": os.getpid(), "host": here}})
    for garbage in ("not json", "[1, 2]", json.dumps({"process": "x"}), None):
        check_not_in_progress("r", "running", garbage)
