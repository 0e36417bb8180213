"""The Try panel in a real browser (headless Chromium) on the demo database, offline: a person fills the form
generated from the tool's schema, submits, and sees the breakdown; a model is asked through a real
OpenAI-compatible server on 127.0.0.1 started by the test. Screenshots land in artifacts/screenshots/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from browser_helpers import choose, screenshot, type_in, wait_idle
from fake_openai import FakeOpenAI, Reply

pytestmark = pytest.mark.browser

SLOW = 60_000  # ms: the machine is shared, a page run can take a while under load
CALL_DP = "interactive_agent/synth-b81d1299-b213-6003-cf00484b/12"  # expects transfer_funds, 5 arguments


def test_fill_the_form_submit_and_see_the_breakdown(page, app_url, outside_requests):
    page.set_default_timeout(SLOW)
    page.goto(app_url + f"/decision_point?id={CALL_DP}")
    wait_idle(page, timeout=SLOW)
    page.wait_for_selector('[data-testid="stChatMessage"]', timeout=SLOW)
    page.get_by_text("Try an answer").scroll_into_view_if_needed()
    page.get_by_label("Your name (saved with each attempt)").fill("ada")
    page.get_by_label("Your name (saved with each attempt)").press("Tab")
    wait_idle(page, timeout=SLOW)
    # the name's rerun may still redraw the panel and close a dropdown opened too early: choose() retries
    choose(page, re.compile(r"^Tool"), "transfer_funds", timeout=SLOW)
    type_in(page, page.get_by_label("from_account *", exact=True), "CHK-009")
    type_in(page, page.get_by_label("to_account *", exact=True), "SAV-00A")
    page.get_by_label("amount *", exact=True).fill("250")
    page.get_by_label("amount *", exact=True).press("Tab")
    screenshot(page, "try_panel_form_filled")
    page.get_by_role("button", name="Grade this call").click()
    wait_idle(page, timeout=SLOW)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas', timeout=SLOW)
    values = page.get_by_test_id("stMetricValue").all_inner_texts()
    assert "0.800" in values and "0.600" in values and "✅ 1" in values, values
    expect(page.get_by_text("Your last answer (saved as attempt #1)")).to_be_visible()
    assert page.get_by_text("Attempts at this decision point (1)").count() == 1
    page.get_by_text("Your last answer").scroll_into_view_if_needed()
    screenshot(page, "try_panel_breakdown")
    assert outside_requests == []


def test_ask_a_model_on_a_local_server(page, app_url, outside_requests):
    page.set_default_timeout(SLOW)
    with FakeOpenAI() as server:
        server.script(Reply.tool_calls([("transfer_funds", {"from_account": "CHK-009", "to_account": "SAV-00A",
                                                            "amount": 250, "currency": "GBP"})]))
        page.goto(app_url + f"/decision_point?id={CALL_DP}")
        wait_idle(page, timeout=SLOW)
        page.wait_for_selector('[data-testid="stChatMessage"]', timeout=SLOW)
        page.get_by_role("tab", name="A model's answer").click()
        type_in(page, page.get_by_label("Base URL", exact=True), server.base_url)
        page.get_by_label("Model", exact=True).fill("fake-model")
        page.get_by_label("Model", exact=True).press("Tab")
        page.get_by_role("button", name="Ask the model").click()
        wait_idle(page, timeout=SLOW)
        # wait for the answer itself: a breakdown table may already be on the page (an earlier test's attempt at
        # this decision point), so a table alone does not say the model was asked yet
        page.get_by_text("fake-model's answer").wait_for(timeout=SLOW)
        page.wait_for_selector('[data-testid="stDataFrame"] canvas', timeout=SLOW)
        assert len(server.completion_requests) == 1
        assert server.completion_requests[0].body["tool_choice"] == "required"
    values = page.get_by_test_id("stMetricValue").all_inner_texts()
    assert "100" in values and "required" in values, values  # prompt tokens, tool_choice
    assert "0.800" in values, values  # 3 of 5 keys match (currency differs, memo missing): 0.5 + 0.5 * 0.6
    expect(page.get_by_text("fake-model's answer")).to_be_visible()
    page.get_by_text("fake-model's answer").scroll_into_view_if_needed()
    screenshot(page, "try_panel_model_answer")
    assert outside_requests == []
