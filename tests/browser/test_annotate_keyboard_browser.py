"""Keyboard-first annotation in Chromium (issue 19): an annotator signs in and completes three items without
the mouse. The focus is in the answer on every new item, Alt+M switches to a message, digits set the
confidence, Ctrl+Enter submits; the name survives a reload (it is in the URL), the latest turn is in view,
and the "?" help buttons are out of the tab order. Screenshots: artifacts/screenshots/annotate_keyboard_*.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from browser_helpers import screenshot, wait_idle

from nemo_core.data.store import Store
from nemo_core.people import campaigns as C

pytestmark = pytest.mark.browser

ACTIVE = "() => { const e = document.activeElement; return e ? (e.getAttribute('aria-label') || e.tagName) : ''; }"


def poll(page, predicate: str, arg=None, seconds: float = 30) -> None:
    """Wait until `predicate` is true in the page, checked with page.evaluate every 0.2 s (wait_for_function
    never saw the focus change here, although evaluate did)."""
    for _ in range(int(seconds / 0.2)):
        if page.evaluate(predicate, arg):
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"still false after {seconds} s: {predicate}")


def db_path(page) -> str:
    return page.get_by_test_id("stSidebar").get_by_test_id("stText").first.inner_text().strip()


def progress(page) -> str:
    return page.get_by_test_id("stProgress").inner_text()


def test_three_items_with_the_keyboard_alone(page, app_url, outside_requests):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(app_url + "/overview")
    wait_idle(page)
    path = db_path(page)
    with Store.open(path) as store:
        campaign = C.create_campaign(store, "keyboard-run", sample_size=5, seed=11, overlap=1, stratify=False,
                                     reveal_after_submit=True)

    page.goto(f"{app_url}/annotate?campaign={campaign.id}")
    wait_idle(page)
    poll(page, f"() => ({ACTIVE})() === 'Your name'")  # the focus is in the name box on arrival
    page.keyboard.type("keys-only")
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-testid="stProgress"]', timeout=30_000)
    wait_idle(page)
    assert "annotator=keys-only" in page.url

    for i in range(3):
        # a new item: the focus is in the answer form (the tool picker, or the message box)
        poll(page, "() => !!(document.activeElement && document.activeElement.closest('.st-key-annotate_form'))")
        if page.evaluate(ACTIVE) != "Your message to the user":
            page.keyboard.press("Alt+m")  # to a message
            poll(page, "() => document.activeElement && document.activeElement.tagName === 'TEXTAREA'")
        assert page.evaluate(ACTIVE) == "Your message to the user"
        page.keyboard.type(f"Let me check that for you ({i}).")
        page.keyboard.press("Escape")
        page.keyboard.press(str(i + 2))  # confidence 2, 3, 4
        wait_idle(page)
        checked = page.locator(".st-key-annotate_confidence input[type=radio]:checked")
        assert checked.count() == 1
        if i == 0:
            # the latest turn is in view beside the form, and no "?" help button is in the tab order
            last_turn = page.locator(".st-key-annotate_conversation [data-testid=stChatMessage]").last
            expect(last_turn).to_be_visible()
            box, view = last_turn.bounding_box(), page.viewport_size
            assert box["y"] < view["height"] and box["y"] + box["height"] > 0
            helps = page.evaluate("() => [...document.querySelectorAll('.st-key-annotate_answer "
                                  "[data-testid=stTooltipHoverTarget]')].map(e => e.tabIndex)")
            assert helps and all(t < 0 for t in helps), helps
            screenshot(page, "annotate_keyboard_item")
        before = progress(page)
        page.keyboard.press("Control+Enter")
        poll(page, "(before) => { const p = document.querySelector('[data-testid=stProgress]'); "
                   "return !!p && p.innerText !== before; }", before)
        wait_idle(page)
        assert f"{i + 1} answered" in progress(page)

    with Store.open(path) as store:
        answers = [r for r in C.answers(store, campaign.id, annotator="keys-only") if r["status"] == "answered"]
    assert sorted(r["confidence"] for r in answers) == [2, 3, 4]
    assert all(r["submitted_type"] == "message" for r in answers)

    # a reload keeps the name (no form to fill again)
    page.reload()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stProgress"]', timeout=30_000)
    expect(page.get_by_text("Annotating as")).to_be_visible()
    screenshot(page, "annotate_keyboard_after_reload")
    assert outside_requests == []
