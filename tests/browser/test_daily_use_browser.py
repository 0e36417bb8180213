"""Issue 19's major points as a person meets them in Chromium: Browse keeps its filters (in the widgets too)
on the way back, the Overview's histograms draw every decision point, and the tool filter picks a tool on
Enter. Screenshots land in artifacts/screenshots/ (look at them)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from browser_helpers import screenshot, wait_idle

pytestmark = pytest.mark.browser

FILTER = "split=tool_calling&action_type=function_call&min_tools=3&text=the"


def widget_filters(page) -> dict[str, str]:
    """What Browse's filter widgets show, in the URL's terms (only what is set)."""
    shown = {
        "split": page.get_by_role("combobox", name="Split").input_value(),
        "action_type": page.get_by_role("combobox", name="Action type").input_value(),
        "tool": page.get_by_role("combobox", name="Expected tool (type to search)").input_value(),
        "text": page.get_by_label("Full-text search (all words must occur in the conversation)").input_value(),
        "min_tools": page.get_by_label("Tools offered ≥").input_value(),
        "max_tools": page.get_by_label("Tools offered ≤").input_value(),
    }
    return {k: v for k, v in shown.items() if v not in ("", "(any)")}


def url_filters(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items() if k not in ("id", "page")}


def open_browse(page, url: str) -> None:
    page.goto(url)
    wait_idle(page)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas', timeout=20_000)


def test_browse_widgets_equal_the_url_after_coming_back(page, app_url, outside_requests):
    page.set_viewport_size({"width": 1280, "height": 800})
    open_browse(page, f"{app_url}/browse?{FILTER}")
    expected = {"split": "tool_calling", "action_type": "function_call", "min_tools": "3", "text": "the"}
    assert widget_filters(page) == url_filters(page) == expected
    count = page.get_by_text("decision points match").inner_text()
    length = page.evaluate("history.length")

    # open with the link, come back with "Back to the filtered list"
    page.get_by_role("link", name="Open decision point").click()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stChatMessage"]', timeout=20_000)
    assert page.evaluate("history.length") == length + 1
    page.get_by_role("link", name="Back to the filtered list").click()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas')
    assert url_filters(page) == expected
    assert widget_filters(page) == expected
    screenshot(page, "browse_back_to_the_filtered_list")

    # open by ticking a row, come back with the browser's Back: one history entry, not two
    length = page.evaluate("history.length")
    box = page.get_by_test_id("stDataFrame").bounding_box()
    page.mouse.click(box["x"] + 18, box["y"] + 35 * 2 + 17)  # the second row's checkbox
    page.wait_for_url("**/decision_point?**", timeout=20_000)
    wait_idle(page)
    assert page.evaluate("history.length") == length + 1
    page.go_back()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas')
    assert "id" not in parse_qs(urlparse(page.url).query), "Back lands on the list left, not on browse?id=..."
    assert url_filters(page) == expected
    assert widget_filters(page) == expected
    screenshot(page, "browse_after_browser_back")

    # Apply keeps the filter
    page.get_by_role("button", name="Apply filters").click()
    wait_idle(page)
    assert url_filters(page) == expected
    assert page.get_by_text("decision points match").inner_text() == count
    assert outside_requests == []


def test_tool_filter_enter_picks_the_matching_tool(page, app_url, outside_requests):
    open_browse(page, f"{app_url}/browse")
    box = page.get_by_role("combobox", name="Expected tool (type to search)")
    box.click()
    box.fill("forecast")
    page.wait_for_timeout(300)
    assert page.get_by_role("option").all_inner_texts()[0].startswith("get_forecast")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Apply filters").click()
    wait_idle(page)
    assert url_filters(page) == {"tool": "get_forecast"}
    expect(page.get_by_text("3 decision points match")).to_be_visible()
    screenshot(page, "browse_tool_enter")
    assert outside_requests == []


def test_unknown_tool_gives_a_hint(page, app_url, outside_requests):
    page.goto(f"{app_url}/browse?tool=forecast&split=tool_calling")
    wait_idle(page)
    expect(page.get_by_text("No decision point matches this filter.")).to_be_visible()
    expect(page.get_by_text("No decision point expects a tool named")).to_be_visible()
    expect(page.get_by_text("Loosen one part of the filter")).to_be_visible()
    screenshot(page, "browse_unknown_tool_hint")
    page.get_by_role("button", name="Use get_forecast (3)").click()
    page.wait_for_url("**tool=get_forecast**", timeout=20_000)
    wait_idle(page)
    assert url_filters(page) == {"tool": "get_forecast", "split": "tool_calling"}
    # the list drawn again for the new filter (a loaded machine can take a while to start the rerun)
    expect(page.get_by_text("No decision point matches this filter.")).to_have_count(0, timeout=20_000)
    screenshot(page, "browse_unknown_tool_hint_used")
    assert outside_requests == []


BARS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => ({
  title: (gd._fullLayout.title && gd._fullLayout.title.text) || '',
  total: gd.calcdata.flat().filter(p => Number.isFinite(p.p)).reduce((a, p) => a + p.s, 0),
  colours: Object.fromEntries(gd._fullData.map(t => [t.name, t.marker.color])),
}))"""


def test_overview_histograms_draw_every_decision_point(page, app_url, outside_requests):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(app_url + "/overview")
    wait_idle(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=20_000)
    page.wait_for_timeout(500)
    charts = [c for c in page.evaluate(BARS) if "tool_calling" in c["colours"]]
    assert len(charts) == 3
    for chart in charts:
        assert chart["total"] == 180, chart["title"]  # every bar drawn, none dropped off the axis
        assert chart["colours"] == {"tool_calling": "#1f77b4", "interactive_agent": "#ff7f0e"}
    assert any("task tools offered" in c["title"] for c in charts)
    assert page.locator(".modebar").count() == 0  # no Plotly toolbar over titles and labels
    assert page.get_by_text("Page not found").count() == 0  # /overview is the Overview, not an error
    screenshot(page, "overview_histograms")
    assert outside_requests == []
