"""A newcomer's first look, in headless Chromium: on the demo database as shipped, the debugging pages show
the baseline runs, the calibration set and the synthetic campaign instead of their empty states (issue 18).
Offline: every request outside 127.0.0.1 is blocked and must not happen. Screenshots:
artifacts/screenshots/demo_start_*.png."""

from __future__ import annotations

import pytest

from browser_helpers import screenshot, wait_idle

pytestmark = pytest.mark.browser

PAGES = {
    "runs": ["baseline-keyword-router", "Mean reward"],
    "failures": ["wrong_action_type"],
    "compare": ["Shared decision points"],
    "audit": ["demo calibration", "Mean keyword score"],
    "campaigns": ["synthetic-annotator-1: 12 of 12", "16 of 16 items answered"],
}


@pytest.mark.parametrize("path", list(PAGES))
def test_the_debugging_pages_have_content_on_the_shipped_demo(page, shipped_app_url, outside_requests, path):
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{shipped_app_url}/{path}")
    wait_idle(page, 60_000)
    for text in PAGES[path]:
        page.get_by_text(text).first.wait_for(state="attached", timeout=30_000)  # table cells are drawn on a canvas
    assert page.locator('[data-testid="stException"]').count() == 0
    page.locator('[data-testid="stSkeleton"]').first.wait_for(state="detached", timeout=30_000)
    wait_idle(page, 60_000)
    screenshot(page, f"demo_start_{path}")
    assert outside_requests == []
