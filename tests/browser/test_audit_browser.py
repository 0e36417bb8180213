"""The Grader audit page in a real browser (headless Chromium), offline.

Without a key: the shared app (conftest's `app_url`) says how to add one, builds a calibration set, takes a
blind judgement. With a key: a second app process started here, whose LLM grader talks to the fake
OpenAI-compatible server on 127.0.0.1: estimate, confirmation, grading, the charts, a disagreement with both
graders' reasons, the CSV download. Screenshots go to artifacts/screenshots/audit_*.png.
"""

from __future__ import annotations

import csv
import io
import re
import shutil

import pytest

from playwright.sync_api import expect

from browser_helpers import screenshot, serve_app, type_in, wait_idle
from fake_openai import FakeOpenAI
from nemo_core.people.audit.build import build_audit_set
from nemo_core.people.audit.grading import estimate
from nemo_core.data.store import Store

pytestmark = pytest.mark.browser


def test_audit_without_a_key(page, app_url, outside_requests):
    page.goto(app_url + "/audit")
    wait_idle(page)
    expect(page.get_by_text("No OpenAI key is configured")).to_be_visible()
    expect(page.get_by_text("secrets.toml").first).to_be_visible()
    if page.get_by_text("No audit set yet").count():
        screenshot(page, "audit_no_key_empty")
        type_in(page, page.get_by_label("Decision points (at most)"), "3")
        page.get_by_role("button", name="Build the audit set").click()
        wait_idle(page)
        screenshot(page, "audit_after_build")
        page.get_by_text("Audit set 'calibration': 9 items (9 new)").wait_for(timeout=20_000)
    page.get_by_text("No item has an LLM score yet").wait_for(timeout=20_000)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas', timeout=20_000)
    screenshot(page, "audit_no_key_keyword_side")

    page.get_by_test_id("stRadio").filter(has_text="View").get_by_text("Judge blind").click()
    wait_idle(page)
    assert page.get_by_test_id("stPlotlyChart").count() == 0 and page.get_by_test_id("stDataFrame").count() == 0
    page.get_by_label("Your name or initials").fill("browser-ann")
    page.get_by_label("Your name or initials").press("Enter")
    wait_idle(page)
    expect(page.get_by_text("Reference reply").last).to_be_visible()
    assert page.get_by_text("You said").count() == 0  # blind: nothing revealed yet
    page.get_by_role("button", name="Submit my judgement").click()
    wait_idle(page)
    page.get_by_text("You said 5/10. Keyword grader:").wait_for(timeout=20_000)
    screenshot(page, "audit_no_key_judged")
    assert outside_requests == []


@pytest.fixture(scope="module")
def keyed_app(demo_db_master, tmp_path_factory):
    """A second app whose LLM grader is the fake server (env key and base URL), on its own database copy
    holding a calibration set of 4 decision points (12 items)."""
    work = tmp_path_factory.mktemp("audit_app")
    db = work / "demo.db"
    shutil.copy(demo_db_master, db)
    store = Store.open(db)
    try:
        build_audit_set(store, "calibration", limit=4)
    finally:
        store.close()
    from test_audit_flow import judge

    server = FakeOpenAI().start()
    server.responder = judge
    env = {"OPENAI_API_KEY": "sk-browser-audit", "OPENAI_BASE_URL": server.base_url, "NEMO_GRADER_MODEL": ""}
    try:
        with serve_app(db, work, env) as url:
            yield url, server, db
    finally:
        server.stop()


def test_audit_with_a_key_grades_after_confirmation(page, keyed_app, outside_requests):
    url, server, _db = keyed_app
    page.goto(url + "/audit?set=calibration")
    wait_idle(page)
    assert page.get_by_text("No OpenAI key is configured").count() == 0
    expect(page.get_by_text("about 12 API calls").first).to_be_visible()
    grade = page.get_by_role("button", name="Grade now")
    assert grade.is_disabled()
    screenshot(page, "audit_estimate")
    page.get_by_text("Yes, make about 12 API calls").click()
    wait_idle(page)
    assert page.get_by_role("button", name="Grade now").is_enabled()
    page.get_by_role("button", name="Grade now").click()
    wait_idle(page, timeout=60_000)
    page.get_by_text("Graded 12 items").wait_for(timeout=60_000)
    assert len(server.completion_requests) == 12
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=20_000)
    assert page.get_by_test_id("stPlotlyChart").count() >= 2
    metrics = dict(zip(page.get_by_test_id("stMetricLabel").all_inner_texts(),
                       page.get_by_test_id("stMetricValue").all_inner_texts()))
    assert metrics.get("Scored by both") == "12"
    expect(page.get_by_text("Keyword overlap:").first).to_be_visible()  # the first disagreement, both graders
    opened = page.get_by_test_id("stSelectbox").filter(has_text="Open an item")
    value = opened.get_by_role("combobox").input_value()
    assert re.match(r"\|Δ\| 0\.\d\d · keyword", value), value  # the largest disagreement is opened first
    screenshot(page, "audit_graded")

    with page.expect_download() as info:
        page.get_by_role("button", name="Download the audit table (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(open(info.value.path(), encoding="utf-8").read())))
    assert len(rows) == 12 and all(r["llm_score"] != "" for r in rows)
    assert "sk-browser-audit" not in page.content()
    assert outside_requests == []


def test_audit_stops_midway_and_resumes_without_paying_twice(page, keyed_app, outside_requests):
    url, server, db = keyed_app
    store = Store.open(db)
    try:
        built = build_audit_set(store, "calibration", name="stoppable", limit=12, seed=99, split="interactive_agent")
        calls_needed = estimate(store, built.audit_set.id, "gpt-5-mini").n_calls
    finally:
        store.close()
    assert calls_needed >= 10
    before = len(server.completion_requests)
    server.delay = 0.3  # every answer takes 0.3 s: time to press Stop
    try:
        page.goto(url + "/audit?set=stoppable")
        wait_idle(page)
        page.get_by_label("Parallel requests").fill("1")
        page.get_by_label("Parallel requests").press("Enter")
        wait_idle(page)
        page.get_by_text(f"Yes, make about {calls_needed} API calls").click()
        wait_idle(page)
        page.get_by_role("button", name="Grade now").click()
        page.get_by_role("button", name="Stop").wait_for(timeout=10_000)
        page.wait_for_timeout(1200)
        page.get_by_role("button", name="Stop").click()
        wait_idle(page, timeout=30_000)
        screenshot(page, "audit_stopped")
        paid = len(server.completion_requests) - before
        assert 0 < paid < calls_needed, paid
        scored = int(dict(zip(page.get_by_test_id("stMetricLabel").all_inner_texts(),
                              page.get_by_test_id("stMetricValue").all_inner_texts()))["LLM-scored"])
        assert scored < calls_needed
        # answers that were in flight when stopping are in the cache: the estimate says so, and resuming is free for them
        page.get_by_text(f"about {calls_needed - paid} API calls").first.wait_for(timeout=10_000)
    finally:
        server.delay = 0.0
    page.get_by_text(f"Yes, make about {calls_needed - paid} API calls").click()
    wait_idle(page)
    page.get_by_role("button", name="Grade now").click()
    page.get_by_text("Graded").first.wait_for(timeout=60_000)
    wait_idle(page)
    assert len(server.completion_requests) - before == calls_needed  # nothing was asked twice
    # the page reruns once more after "Graded" shows: wait for it rather than look at once
    expect(page.get_by_text("Every item has an LLM score")).to_be_visible(timeout=20_000)
    assert outside_requests == []
