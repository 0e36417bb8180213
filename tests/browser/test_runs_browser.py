"""Debugging runs in a real browser: upload two prediction files on the Runs page (a bad line shown with its
number), read the taxonomy, open a failure beside its expected action, compare the runs, delete them.

Uses the app served by `tests/browser/conftest.py` (a copy of the demo database). The runs it creates are
deleted at the end, through the page, so other browser tests see the database as it was.
Screenshots: artifacts/screenshots/runs_*.png.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from playwright.sync_api import expect

from browser_helpers import screenshot, type_in, upload_predictions, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture
def prediction_files(demo_db_master, tmp_path):
    """alpha: two exact calls, one made-up tool, one call where a message was expected, one bad line.
    beta: the same decision points answered with the wrong action type."""
    conn = sqlite3.connect(f"file:{demo_db_master}?mode=ro", uri=True)
    try:
        calls = [r[0] for r in conn.execute(
            "SELECT id FROM decision_points WHERE action_type = 'function_call' AND n_expected_calls = 1 "
            "AND ungradeable_reason IS NULL ORDER BY id LIMIT 3")]
        msg = conn.execute("SELECT id FROM decision_points WHERE action_type = 'message' ORDER BY id LIMIT 1").fetchone()[0]
    finally:
        conn.close()
    from nemo_core.data.store import Store

    store = Store.open(demo_db_master, readonly=True)
    try:
        exact = [store.get(i).expected_calls[0] for i in calls[:2]]
    finally:
        store.close()
    alpha = [{"id": i, "action": {"type": "function_call", "name": c.name, "arguments": c.arguments}}
             for i, c in zip(calls, exact)]
    alpha += [{"id": calls[2], "action": {"type": "function_call", "name": "imaginary_tool", "arguments": {}}},
              {"id": msg, "action": {"type": "function_call", "name": "imaginary_tool", "arguments": {}}}]
    beta = [{"id": i, "action": {"type": "message", "content": "no"}} for i in calls]
    beta.append({"id": msg, "action": {"type": "function_call", "name": "other", "arguments": {}}})
    a, b = tmp_path / "alpha-preds.jsonl", tmp_path / "beta-preds.jsonl"
    a.write_text("".join(json.dumps(x) + "\n" for x in alpha) + "{this line is not JSON\n")
    b.write_text("".join(json.dumps(x) + "\n" for x in beta))
    return a, b, calls


def upload(page, app_url, path, name):
    page.goto(app_url + "/runs")
    wait_idle(page)
    upload_predictions(page, str(path))
    type_in(page, page.get_by_label("Run name"), name)
    page.get_by_role("button", name="Grade the").click()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=30_000)


def test_upload_taxonomy_failure_compare_delete(page, app_url, outside_requests, prediction_files):
    alpha, beta, calls = prediction_files
    page.set_viewport_size({"width": 1400, "height": 900})

    # ---- upload: the bad line is listed with its number before anything is stored ---------------------
    page.goto(app_url + "/runs")
    wait_idle(page)
    upload_predictions(page, str(alpha))
    values = page.get_by_test_id("stMain").get_by_test_id("stMetricValue").all_inner_texts()
    assert values[:3] == ["5", "4", "1"]  # lines, good, bad
    page.wait_for_selector('[data-testid="stDataFrame"] canvas')
    screenshot(page, "runs_upload_checked")
    type_in(page, page.get_by_label("Run name"), "browser-alpha")
    page.get_by_role("button", name="Grade the 4 good lines").click()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=30_000)
    expect(page.get_by_text("Stored run 'browser-alpha'")).to_be_visible()
    expect(page.get_by_text("Failure taxonomy")).to_be_visible()
    assert page.get_by_test_id("stPlotlyChart").count() == 2  # taxonomy bars and reward histogram
    screenshot(page, "runs_page")

    # ---- the failure list, and one failure beside its expected action -------------------------------
    page.get_by_text("Open this run's failures").click()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas', timeout=20_000)
    assert "/failures" in page.url and "run=browser-alpha" in page.url
    expect(page.get_by_text("2 predictions match")).to_be_visible()
    screenshot(page, "runs_failures")
    page.get_by_text("Open the prediction beside the expected action").click()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stChatMessage"]', timeout=20_000)
    assert "/decision_point" in page.url and "run=browser-alpha" in page.url
    expect(page.get_by_role("heading", name="Expected action and prediction", exact=True)).to_be_visible()
    expect(page.get_by_text("Category:").first).to_be_visible()
    assert "Reward" in page.get_by_test_id("stMain").get_by_test_id("stMetricLabel").all_inner_texts()
    screenshot(page, "runs_failure_decision_point")

    # ---- a second run, then compare ------------------------------------------------------------------
    upload(page, app_url, beta, "browser-beta")
    page.goto(app_url + "/compare?a=browser-alpha&b=browser-beta")
    wait_idle(page)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas', timeout=20_000)
    values = dict(zip(page.get_by_test_id("stMain").get_by_test_id("stMetricLabel").all_inner_texts(),
                      page.get_by_test_id("stMain").get_by_test_id("stMetricValue").all_inner_texts()))
    assert values["Shared decision points"] == "4"
    assert (values["A wins"], values["B wins"], values["Ties"]) == ("2", "0", "2")
    screenshot(page, "runs_compare")
    page.get_by_text("Open both predictions beside the expected action").click()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stChatMessage"]', timeout=20_000)
    assert "vs=browser-beta" in page.url
    expect(page.get_by_text("Run B").first).to_be_visible()
    # expected, A and B side by side: their boxes start at one height, left to right, all within 1280 px
    tops = [page.get_by_text(text, exact=True).first.bounding_box() for text in ("Action type:", "Run A", "Run B")]
    assert max(b["y"] for b in tops) - min(b["y"] for b in tops) < 10, tops
    assert tops[0]["x"] < tops[1]["x"] < tops[2]["x"] and tops[2]["x"] + tops[2]["width"] < 1280, tops
    screenshot(page, "runs_side_by_side")

    # ---- delete both, each after a confirmation ------------------------------------------------------
    for name in ("browser-beta", "browser-alpha"):
        page.goto(app_url + f"/runs?run={name}")
        wait_idle(page)
        page.get_by_role("button", name=f"Delete run {name}").click()
        wait_idle(page)
        page.get_by_text("This cannot be undone").wait_for(timeout=20_000)  # the rerun can start late under load
        if name == "browser-beta":
            screenshot(page, "runs_delete_confirm")
        page.get_by_role("button", name="Yes, delete it").click()
        wait_idle(page)
        page.get_by_text(f"Deleted run '{name}'").wait_for(timeout=20_000)
    page.get_by_text("No runs yet").wait_for(timeout=20_000)
    screenshot(page, "runs_all_deleted")
    assert outside_requests == []
