"""`python -m nemo_core audit`, run in-process on a copy of the demo database against the local fake server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from interrupt import default_sigint

from fake_openai import fake_openai  # noqa: F401  (fixture)
from nemo_core.cli.main import build_parser, main
from nemo_core.runs.grade_file import grade_file
from nemo_core.data.store import Store
from test_audit_flow import judge

REPO = Path(__file__).resolve().parent.parent

KEYS = {"n", "pearson", "spearman", "mae", "kappa_at_0_5", "best_threshold"}


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NEMO_GRADER_MODEL", "NEMO_DB"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(fake_openai, monkeypatch):  # noqa: F811
    fake_openai.responder = judge
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-audit")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    return fake_openai


def test_calibration_json_then_resume_without_new_calls(demo_db, server, capsys):
    assert main(["audit", "--calibration", "--db", str(demo_db), "--limit", "4", "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert KEYS <= set(data)
    assert data["n"] == 12 and data["set"] == "calibration"
    assert data["pearson"] > 0.5 and 0 <= data["mae"] <= 1
    assert data["kappa_at_0_5"] is not None and 0 <= data["best_threshold"] <= 1
    assert "about 12 API calls" in captured.err
    assert "sk-cli-audit" not in captured.out + captured.err
    assert len(server.completion_requests) == 12

    assert main(["audit", "--calibration", "--db", str(demo_db), "--limit", "4", "--json", "--quiet"]) == 0
    again = capsys.readouterr()
    assert json.loads(again.out)["n"] == 12
    assert "12 already scored, 0 to grade" in again.err
    assert len(server.completion_requests) == 12


def test_run_audit_text_output_and_progress_bar(demo_db, server, tmp_path, capsys):
    store = Store.open(demo_db)
    try:
        ids = [r["id"] for r in store.query("SELECT id FROM decision_points WHERE action_type = 'message' "
                                            "AND flag_empty_expected = 0 ORDER BY id LIMIT 5")]
        lines = [{"id": i, "action": {"type": "message", "content": store.get(i).expected_content if n % 2 else "no idea"}}
                 for n, i in enumerate(ids)]
        path = tmp_path / "p.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        grade_file(store, path, run_name="model-a", grader="keyword")
    finally:
        store.close()
    assert main(["audit", "--run", "model-a", "--db", str(demo_db), "--limit", "4"]) == 0
    captured = capsys.readouterr()
    assert "audit set 'run:model-a'" in captured.err and "4 items" in captured.err
    assert "audit:" in captured.err  # the tqdm bar
    assert "keyword vs LLM (gpt-5-mini) on 4 items scored by both" in captured.out
    assert "by candidate length:" in captured.out and "by split:" in captured.out
    assert len(server.completion_requests) == 4


def test_dry_run_makes_no_call_and_needs_no_key(demo_db, fake_openai, capsys):  # noqa: F811
    assert main(["audit", "--calibration", "--db", str(demo_db), "--limit", "2", "--dry-run", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["estimate"]["n_calls"] == 6 and data["estimate"]["n_items"] == 6
    assert fake_openai.completion_requests == []


def test_errors_are_one_line_with_the_fix(demo_db, capsys):
    assert main(["audit", "--calibration", "--db", str(demo_db)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "OPENAI_API_KEY" in err and "--dry-run" in err
    assert main(["audit", "--run", "nope", "--db", str(demo_db), "--dry-run"]) == 1
    assert "no run 'nope'" in capsys.readouterr().err
    assert main(["audit", "--calibration", "--db", str(demo_db), "--limit", "0", "--dry-run"]) == 1
    assert "--limit must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["audit", "--db", str(demo_db)])  # neither --run nor --calibration
    with pytest.raises(SystemExit):
        main(["audit", "--run", "x", "--calibration"])


def test_help_lists_the_json_keys():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices["audit"].format_help()
    for key in KEYS:
        assert key in text
    out = subprocess.run([sys.executable, "-m", "nemo_core", "--help"], capture_output=True, text=True, check=True).stdout
    assert "audit" in out


def test_ctrl_c_stops_and_the_same_command_resumes(demo_db, fake_openai, tmp_path):  # noqa: F811
    """A real process, a real SIGINT: the scores received are kept, and the rerun pays only for the rest."""
    import os
    import signal
    import time

    fake_openai.responder = judge
    fake_openai.delay = 0.25
    env = {**os.environ, "OPENAI_API_KEY": "sk-cli-audit", "OPENAI_BASE_URL": fake_openai.base_url,
           "PYTHONPATH": str(REPO)}
    env.pop("NEMO_DB", None)
    cmd = [sys.executable, "-m", "nemo_core", "audit", "--calibration", "--db", str(demo_db), "--limit", "10",
           "--concurrency", "1", "--json", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    deadline = time.time() + 60
    while len(fake_openai.completion_requests) < 4 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopped: the items scored so far are kept" in err
    paid = len(fake_openai.completion_requests)
    assert 4 <= paid < 30
    store = Store.open(demo_db)
    try:
        scored = store.scalar("SELECT count(*) FROM audit_scores WHERE llm_score IS NOT NULL")
        cached = store.scalar("SELECT count(*) FROM llm_grade_cache")
    finally:
        store.close()
    assert scored <= paid == cached  # every answer paid for is kept (stored, or at least in the cache)

    fake_openai.delay = 0.0
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n"] == 30
    assert len(fake_openai.completion_requests) == 30  # nothing asked twice


def test_campaign_source_dry_run(demo_db, capsys):
    from test_audit_flow import insert_campaign

    store = Store.open(demo_db)
    try:
        insert_campaign(store, "c1", n_items=2)
    finally:
        store.close()
    assert main(["audit", "--campaign", "c1", "--db", str(demo_db), "--dry-run", "--json"]) == 0
    captured = capsys.readouterr()
    assert "audit set 'campaign:c1'" in captured.err and "4 items" in captured.err
    assert json.loads(captured.out)["estimate"]["n_items"] == 4
    assert main(["audit", "--campaign", "nope", "--db", str(demo_db), "--dry-run"]) == 1
    assert "no campaign 'nope'" in capsys.readouterr().err
