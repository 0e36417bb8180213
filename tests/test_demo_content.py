"""What the shipped demo database holds besides the data (`people/demo_content.py`), and the README's baseline
table, which must be what `scripts/baseline_table.py` makes of the stored runs' `report --json`."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_core.base.config import DEMO_DIR
from nemo_core.cli.main import main
from nemo_core.data import demo as demo_data
from nemo_core.data.store import Store
from nemo_core.people import demo_content as D
from nemo_core.runs.model_runner import select_ids
from nemo_core.runs.policies import POLICIES
from nemo_core.runs.policy_runner import PolicyRunner

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import baseline_table  # noqa: E402

RUNS = [D.baseline_run_name(name) for name in POLICIES]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("NEMO_DB", raising=False)


def test_the_shipped_demo_database_has_a_completed_run_of_each_baseline(shipped_demo_db):
    with Store.open(shipped_demo_db) as store:
        runs = {r["name"]: r for r in store.query("SELECT * FROM runs")}
        assert sorted(runs) == sorted(RUNS)
        ids = select_ids(store, None)
        for name in POLICIES:
            run = runs[D.baseline_run_name(name)]
            assert run["status"] == "completed" and run["model"] == f"baseline:{name}" and run["grader"] == "keyword"
            assert json.loads(run["settings"])["seed"] == D.BASELINE_SEED
            rows = store.query("SELECT dp_id, action FROM predictions WHERE run_id = ?", (run["id"],))
            assert sorted(r["dp_id"] for r in rows) == sorted(ids)  # every demo decision point
            runner = PolicyRunner(name, seed=D.BASELINE_SEED)
            for r in rows[::9]:  # the stored answer is the policy's
                assert json.loads(r["action"]) == runner.answer(store.get(r["dp_id"])).action_json()
        assert store.meta(demo_data.CONTENT_META_KEY) == D.CONTENT_VERSION


def test_the_shipped_campaign_is_answered_by_synthetic_annotators_who_say_so(shipped_demo_db):
    with Store.open(shipped_demo_db) as store:
        (campaign,) = store.query("SELECT * FROM campaigns")
        assert campaign["name"] == D.CAMPAIGN_NAME and "No person answered it" in campaign["instructions"]
        assert store.scalar("SELECT count(*) FROM campaign_items WHERE campaign_id = ?", (campaign["id"],)) == D.CAMPAIGN_SIZE
        answers = store.query("SELECT annotator, status, note FROM campaign_answers WHERE campaign_id = ?",
                              (campaign["id"],))
    answered = [a for a in answers if a["status"] == "answered"]
    assert {a["annotator"] for a in answers} == set(D.ANNOTATORS)
    assert len(answered) >= D.CAMPAIGN_SIZE * 2 - 1 and all(a["note"] == D.SYNTHETIC_NOTE for a in answered)
    assert sum(a["status"] == "skipped" for a in answers) == 1


def test_the_shipped_calibration_set_has_keyword_scores_and_no_llm_score(shipped_demo_db):
    with Store.open(shipped_demo_db) as store:
        (audit,) = store.query("SELECT * FROM audit_sets")
        items = store.query("SELECT kind, keyword_score FROM audit_items WHERE set_id = ?", (audit["id"],))
        assert audit["name"] == D.AUDIT_SET_NAME and audit["source"] == "calibration"
        assert len(items) == 3 * D.AUDIT_LIMIT and all(0.0 <= i["keyword_score"] <= 1.0 for i in items)
        assert sorted(i["kind"] for i in items) == sorted(["reference", "half_reference", "other_conversation"] * D.AUDIT_LIMIT)
        assert store.scalar("SELECT count(*) FROM audit_scores") == 0


def test_the_demo_readme_says_what_is_synthetic():
    text = (DEMO_DIR / "README.md").read_text()
    assert D.CAMPAIGN_NAME in text and "Synthetic: no person answered it" in text
    assert all(run in text for run in RUNS) and D.AUDIT_SET_NAME in text


def test_a_demo_database_without_the_content_is_built_again_and_one_with_it_left_alone(demo_db_master, tmp_path):
    path = tmp_path / "demo.db"
    shutil.copy(demo_db_master, path)  # the data alone, as an older version built it
    os.utime(path)  # newer than the files: only the missing content makes it stale
    D.ensure_full_demo_db(path)
    with Store.open(path, readonly=True) as store:
        assert store.scalar("SELECT count(*) FROM runs") == len(RUNS)
    before = path.stat().st_mtime_ns, path.stat().st_ino
    D.ensure_full_demo_db(path)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_a_failure_while_adding_the_content_leaves_the_old_database_and_no_leftover(demo_db_master, tmp_path):
    path = tmp_path / "demo.db"
    shutil.copy(demo_db_master, path)
    data = path.read_bytes()

    def broken(store):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        demo_data.ensure_demo_db(path, content=demo_data.DemoContent("x", broken))
    assert path.read_bytes() == data and sorted(p.name for p in tmp_path.iterdir()) == ["demo.db"]


def test_the_demo_command_builds_the_full_database(tmp_path, monkeypatch, capsys):
    target = tmp_path / "demo.db"
    real = D.ensure_full_demo_db
    monkeypatch.setattr(D, "ensure_full_demo_db", lambda rebuild=False: real(target, rebuild=rebuild))
    assert main(["demo"]) == 0
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == len(RUNS)


# ---- the README's table ---------------------------------------------------------------------------------------
def reports_json(db: Path, capsys) -> str:
    out = []
    for run in RUNS:
        capsys.readouterr()
        assert main(["report", "--db", str(db), "--run", run, "--json"]) == 0
        out.append(capsys.readouterr().out)
    return "".join(out)


def test_the_readme_table_is_the_scripts_output_for_the_stored_runs(shipped_demo_db, capsys):
    reports = baseline_table.read_reports(reports_json(shipped_demo_db, capsys))
    assert [r["run"] for r in reports] == RUNS
    table = baseline_table.markdown_table(reports)
    assert baseline_table.block_of((REPO / "README.md").read_text()) == table
    # and the figures are the runs' own: a cell is the stored predictions' mean
    with Store.open(shipped_demo_db, readonly=True) as store:
        mean = store.scalar("SELECT avg(p.reward) FROM predictions p JOIN runs r ON r.id = p.run_id "
                            "WHERE r.name = 'baseline-keyword-router' AND p.split = 'tool_calling' "
                            "AND p.action_type = 'function_call' AND p.reward IS NOT NULL")
    row = next(line for line in table.splitlines() if line.startswith("| keyword-router |"))
    assert row.split("|")[2].strip().startswith(f"{mean:.3f} [")


def test_the_script_reads_report_json_on_stdin_and_updates_a_file_between_the_markers(shipped_demo_db, capsys, tmp_path):
    text = reports_json(shipped_demo_db, capsys)
    script = [sys.executable, str(REPO / "scripts" / "baseline_table.py")]
    printed = subprocess.run(script, input=text, capture_output=True, text=True, check=True).stdout
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{baseline_table.BEGIN}\nold\n{baseline_table.END}\nafter\n")
    subprocess.run([*script, "--update", str(doc)], input=text, capture_output=True, text=True, check=True)
    assert doc.read_text() == f"before\n{baseline_table.BEGIN}\n{printed}{baseline_table.END}\nafter\n"


def test_the_script_refuses_what_is_not_report_json(tmp_path):
    script = [sys.executable, str(REPO / "scripts" / "baseline_table.py")]
    bad = subprocess.run(script, input='{"run": "x"}', capture_output=True, text=True)
    assert bad.returncode == 1 and "object 1 is not `report --json` output" in bad.stderr
    bad = subprocess.run(script, input="nope", capture_output=True, text=True)
    assert bad.returncode == 1 and "not JSON at character 0" in bad.stderr
