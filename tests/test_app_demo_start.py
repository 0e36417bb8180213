"""A fresh start on the demo data (no NEMO_DB, no data/nemo.db): the app builds the shipped demo database
itself, and the Runs, Failures, Compare, Grader audit and Campaigns pages show content, not their empty
states (issue 18)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app_runner import run_app_page
from nemo_core.people import demo_content as D


@pytest.fixture
def fresh_start(tmp_path, monkeypatch):
    """No database anywhere: the app's default path builds the demo database (here under tmp_path)."""
    import ui.db

    for name in ("NEMO_DB", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ui.db, "DEFAULT_DB", tmp_path / "nemo.db")  # absent
    built = tmp_path / "demo.db"
    real = D.ensure_full_demo_db
    monkeypatch.setattr(D, "ensure_full_demo_db", lambda *a, **k: real(built))

    def open_page(page: str) -> AppTest:
        at = run_app_page(page, timeout=60)
        assert built.exists()
        return at

    return open_page


def texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.warning, *at.success, *at.error)]
    return "\n".join(str(p) for p in parts).replace("\\", "").replace("\u2060", "")


def test_runs_page_lists_the_four_baselines(fresh_start):
    at = fresh_start("app_pages/runs.py")
    table = at.dataframe[0].value
    assert sorted(table["run"]) == sorted(D.baseline_run_name(n) for n in ("always-message", "first-tool",
                                                                          "keyword-router", "copy-last-call"))
    assert {m.label: m.value for m in at.metric}["Predictions"] == "180"
    assert set(table["source"]) == {"—"}, list(table["source"])  # a baseline reads no file: "—", never None
    assert at.get("plotly_chart")


def test_failures_page_lists_failures(fresh_start):
    at = fresh_start("app_pages/failures.py")
    assert not at.info or "No prediction matches" not in at.info[0].value
    assert len(at.dataframe[0].value) > 0


def test_compare_page_compares_two_baselines(fresh_start):
    at = fresh_start("app_pages/compare.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Shared decision points"] == "180"


def test_grader_audit_page_shows_the_calibration_set(fresh_start):
    at = fresh_start("app_pages/audit.py")
    body = texts(at)
    assert "No audit set yet" not in body and D.AUDIT_SET_NAME in body
    assert {m.label: m.value for m in at.metric}["Items"] == str(3 * D.AUDIT_LIMIT)


def test_campaigns_page_shows_the_synthetic_campaign(fresh_start):
    at = fresh_start("app_pages/campaigns.py")
    (picker,) = [s for s in at.selectbox if s.label == "Campaign"]
    assert picker.options == [f"{D.CAMPAIGN_NAME} (open)"]
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Answers"]) >= 2 * D.CAMPAIGN_SIZE - 1 and metrics["Human baseline reward"] != "—"
    # one skip in the synthetic campaign: counted as "1 skip", not "1 skips" (progress bar, results, export)
    body = texts(at) + "\n".join(str(p.proto.text) for p in at.get("progress"))
    assert "1 skip)" in body and "1 skip\n" in body + "\n" and "1 skips" not in body, body
