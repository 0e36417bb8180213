"""The main flows in a real browser (headless Chromium), on the demo database, offline.

Screenshots of every page land in artifacts/screenshots/ (look at them: a pass on a blank page proves
nothing). Every test asserts that no request left 127.0.0.1.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from browser_helpers import choose, screenshot, wait_idle

pytestmark = pytest.mark.browser

UNTRUSTED = "tool_calling/demo-untrusted-markup/4"


def test_overview(page, app_url, outside_requests):
    page.goto(app_url)
    wait_idle(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=20_000)
    metrics = page.get_by_test_id("stMetricValue").all_inner_texts()
    assert "180" in metrics  # decision points in the demo database
    expect(page.get_by_text("Rejected rows (4)")).to_be_visible()
    links = page.get_by_test_id("stSidebarNavLink").all_inner_texts()
    titles = {link.strip().splitlines()[-1].strip() for link in links}  # the icon comes first
    assert {"Overview", "Browse", "Decision point"} <= titles, links
    screenshot(page, "overview")
    assert outside_requests == []


def test_browse_filter_then_open_a_decision_point(page, app_url, outside_requests):
    page.goto(app_url + "/browse")
    wait_idle(page)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas', timeout=20_000)
    expect(page.get_by_text("180 decision points match")).to_be_visible()

    choose(page, "Split", "interactive_agent")
    page.get_by_role("button", name="Apply filters").click()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas')
    assert "split=interactive_agent" in page.url
    expect(page.get_by_text("68 decision points match")).to_be_visible()
    screenshot(page, "browse_filtered")

    # the URL alone restores the view
    page.reload()
    wait_idle(page)
    expect(page.get_by_text("68 decision points match")).to_be_visible()

    page.get_by_role("link", name="Open decision point").click()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stChatMessage"]', timeout=20_000)
    assert "/decision_point?" in page.url and "id=interactive_agent" in page.url
    assert "split=interactive_agent" in page.url, "the list filter travels with the decision point"
    screenshot(page, "decision_point_from_browse")

    page.get_by_role("button", name="Next in filtered list ▶").click()
    wait_idle(page)
    assert re.search(r"id=interactive_agent%2F", page.url) or "id=interactive_agent/" in page.url
    assert outside_requests == []


def test_decision_point_reveal(page, app_url, outside_requests):
    page.goto(app_url + "/decision_point?id=tool_calling/demo-parallel-calls/2")
    wait_idle(page)
    page.wait_for_selector('[data-testid="stChatMessage"]', timeout=20_000)
    expect(page.get_by_text("Hidden. Toggle to see")).to_be_visible()
    assert page.get_by_text("Action type:").count() == 0
    screenshot(page, "decision_point_hidden")

    page.get_by_text("Reveal the expected action").click()
    wait_idle(page)
    expect(page.get_by_text("Action type:")).to_be_visible()
    expect(page.get_by_text("A parallel turn: 3 calls")).to_be_visible()
    page.get_by_text("Request JSON").click()
    page.wait_for_selector('[data-testid="stCode"]')
    screenshot(page, "decision_point_revealed")
    assert outside_requests == []


def test_untrusted_markup_stays_inert(page, app_url, outside_requests):
    page.goto(app_url + f"/decision_point?id={UNTRUSTED}")
    wait_idle(page)
    page.wait_for_selector('[data-testid="stChatMessage"]', timeout=20_000)
    page.get_by_text("Reveal the expected action").click()
    wait_idle(page)
    page.get_by_text("Request JSON").click()
    wait_idle(page)
    page.wait_for_timeout(1_000)  # give any image a chance to be requested

    # the markup is shown as text ...
    assert page.get_by_text("![tracker](http://203.0.113.7/pixel.png)", exact=False).count() >= 1
    assert page.get_by_text("<img src='http://203.0.113.7/x.png'>", exact=False).count() >= 1
    # ... and became no element that could load or link anything
    assert page.locator('img[src*="203.0.113.7"]').count() == 0
    assert page.locator('a[href*="203.0.113.7"]').count() == 0
    assert page.locator("script:has-text('alert(1)')").count() == 0
    screenshot(page, "decision_point_untrusted_markup")
    assert outside_requests == [], f"the page tried to fetch: {outside_requests}"


def test_bad_id_gives_a_clear_message(page, app_url, outside_requests):
    page.goto(app_url + "/decision_point?id=not-an-id")
    wait_idle(page)
    error = page.get_by_test_id("stAlertContentError")
    assert "is not a decision point id" in error.inner_text()
    screenshot(page, "decision_point_bad_id")
    assert outside_requests == []


def test_markup_in_the_url_is_not_rendered(page, app_url, outside_requests):
    page.goto(app_url + "/decision_point?id=" + "![x](http://203.0.113.7/url.png)")
    wait_idle(page)
    error = page.get_by_test_id("stAlertContentError")
    # shown as the literal text (with invisible word joiners that keep it from being autolinked)
    assert "![x](http://203.0.113.7/url.png)" in error.inner_text().replace("\u2060", "")
    assert page.locator('img[src*="203.0.113.7"]').count() == 0
    assert page.locator('a[href*="203.0.113.7"]').count() == 0
    page.goto(app_url + "/browse?split=" + "![x](http://203.0.113.7/split.png)")
    wait_idle(page)
    assert "unknown split" in page.get_by_test_id("stAlertContentError").inner_text()
    page.wait_for_timeout(500)
    assert outside_requests == [], f"the page tried to fetch: {outside_requests}"


@pytest.mark.parametrize("path", ["/browse", "/runs", "/annotate", f"/decision_point?id={UNTRUSTED}"])
def test_a_deep_link_keeps_the_app_navigation(page, app_url, outside_requests, path):
    """Opening a page's URL first must go through app.py's st.navigation: the sidebar lists the page
    titles, not the file names of a folder Streamlit discovered by itself (which it did while the pages
    lived in `pages/`, listing 'app' among them)."""
    page.goto(app_url + path)
    wait_idle(page)
    links = page.get_by_test_id("stSidebarNavLink").all_inner_texts()
    titles = {link.strip().splitlines()[-1].strip() for link in links}
    assert {"Overview", "Browse", "Decision point", "Runs", "Annotate"} <= titles, links
    assert not titles & {"app", "browse", "decision point", "overview"}, links
    assert outside_requests == []
