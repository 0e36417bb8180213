"""At 1280x800, the columns people open Browse, Runs and Compare for are drawn inside the window (issue 19).

`st.dataframe` draws on a canvas, so a column's place is not in the DOM. Each key column has a header tooltip
(its `help`), which is a DOM element: the test moves the mouse along the header row in 40-px steps (every key
column is wider), resting on each as a person would, and records where each tooltip shows. A key column cut off at the right (or pushed past the table's visible width)
never shows its tooltip, and the test names it.
"""

from __future__ import annotations

import pytest

from browser_helpers import screenshot, wait_idle

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1280, 800
TOOLTIP = "[role=tooltip]"
DWELL_MS = 650  # the grid shows a header tooltip after the pointer rests on it for about half a second


def header_tooltips(page, table_index: int = 0, step: int = 40) -> dict[str, float]:
    """{tooltip text: the leftmost x where hovering the header shows it} for one table on the page."""
    table = page.get_by_test_id("stDataFrame").nth(table_index)
    table.scroll_into_view_if_needed()
    box = table.bounding_box()
    found: dict[str, float] = {}
    x = box["x"] + 4
    while x < min(box["x"] + box["width"], WIDTH):
        page.mouse.move(x, box["y"] + 17)  # the header row is 35 px high
        page.wait_for_timeout(DWELL_MS)
        for text in page.locator(TOOLTIP).all_inner_texts():
            found.setdefault(text.strip(), x)
        x += step
    page.mouse.move(1, 1)
    return found


def open_at_1280(page, url: str) -> None:
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    page.goto(url)
    wait_idle(page)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas', timeout=20_000)
    page.wait_for_timeout(500)


@pytest.mark.parametrize("path, wanted", [
    ("/browse", ["split/conversation uuid/message index", "The expected tool, or the message's first words"]),
    ("/runs", ["Mean reward over the run's graded predictions", "Lower end of the mean reward's 95%",
               "Upper end of the mean reward's 95%"]),
    ("/compare?a=baseline-keyword-router&b=baseline-first-tool", ["Run A's reward minus run B's"]),
])
def test_key_columns_are_inside_a_1280_window(page, shipped_app_url, outside_requests, path, wanted):
    open_at_1280(page, shipped_app_url + path)
    table = page.get_by_test_id("stDataFrame").first
    found = header_tooltips(page)
    screenshot(page, "columns_1280_" + path.strip("/").split("?")[0])
    right = min(table.bounding_box()["x"] + table.bounding_box()["width"], WIDTH)
    for start in wanted:
        xs = [x for text, x in found.items() if text.startswith(start)]
        assert xs, f"{path}: the column {start!r}... is not drawn inside the 1280-px window (tooltips: {found})"
        assert xs[0] < right - 30, f"{path}: the column {start!r}... starts at x={xs[0]}, at the window's edge"
