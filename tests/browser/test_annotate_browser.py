"""One annotation in a real browser (headless Chromium), offline: an admin creates a campaign on the Campaigns
page, an annotator signs in on Annotate, sees the item blind, answers with the Try panel's form (raw JSON
arguments), sees the grade (the campaign reveals it), and the answer shows up in the campaign's progress
and results. Screenshots go to artifacts/screenshots/annotate_*.png.
"""

from __future__ import annotations

import re

import pytest

from playwright.sync_api import expect

from browser_helpers import choose, screenshot, type_in, wait_idle

pytestmark = pytest.mark.browser


def open_create_form(page, app_url: str) -> None:
    """The Campaigns page with its create form open (it is open already when there is no campaign yet)."""
    page.goto(app_url + "/campaigns")
    wait_idle(page)
    if page.get_by_text("No campaign yet").count() == 0:
        page.get_by_text("Create a campaign").click()


def matching(page) -> int:
    """The create form's count of matching decision points."""
    box = page.get_by_text(re.compile(r"decision points? match"))
    expect(box).to_be_visible(timeout=20_000)
    return int(re.match(r"([\d,]+) decision", box.inner_text()).group(1).replace(",", ""))


def count_after_change(page, before: int) -> int:
    """The count once it is no longer `before`: a filter's change reruns the page, and the old count stays shown
    until the rerun has drawn the new one."""
    expect(page.get_by_text(re.compile(r"decision points? match"))).not_to_have_text(
        re.compile(rf"^{before:,} decision"), timeout=20_000)
    return matching(page)


def test_one_annotation(page, app_url, outside_requests):
    open_create_form(page, app_url)
    everything = matching(page)
    type_in(page, page.get_by_label("Name", exact=True), "browser-pilot")
    choose(page, "Action type", "function_call")
    # issue 19: the count follows the filters before Create (it was only said after)
    n_matching = count_after_change(page, everything)
    assert 0 < n_matching < everything
    type_in(page, page.get_by_label("Sample size"), "4")
    type_in(page, page.get_by_label("Instructions shown to annotators"), "Call the tool the assistant needs next.")
    page.get_by_text("Show annotators the grade of each answer").click()
    screenshot(page, "annotate_0_create_form")
    assert page.get_by_label("Name", exact=True).input_value() == "browser-pilot"  # kept across the rerun
    page.get_by_role("button", name="Create campaign").click()
    wait_idle(page)
    created = page.get_by_text(re.compile(rf"Created with 4 items drawn from {n_matching:,} matching"))
    expect(created).to_be_visible(timeout=20_000)
    screenshot(page, "annotate_1_campaign_created")

    page.goto(app_url + "/annotate")
    wait_idle(page)
    type_in(page, page.get_by_role("textbox", name="Your name"), "browser-ann")
    page.get_by_role("button", name="Start annotating").click()
    wait_idle(page)
    choose(page, "Campaign", "browser-pilot")
    expect(page.get_by_text("Item 1 of 4")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("Call the tool the assistant needs next.")).to_be_visible(timeout=20_000)
    assert page.get_by_test_id("stChatMessage").count() > 0
    assert page.get_by_text("Expected action").count() == 0  # blind
    # no decision point id anywhere in the page, widget keys included (it would lead to the expected action)
    # (the demo's conversation uuids start with synth- or demo-; Streamlit rewrites "/" in a key's CSS class)
    html = page.content()
    assert "Call the tool the assistant needs next." in html
    assert not re.search(r"(synth|demo)-[0-9a-z]+-", html)
    screenshot(page, "annotate_2_item_blind")

    type_in(page, page.get_by_label("Note (optional)"), "answered from the browser test")
    page.get_by_text("Raw JSON arguments").click()
    wait_idle(page)
    type_in(page, page.get_by_role("textbox", name="Arguments (JSON)"), '{"anything": 1}')
    page.get_by_role("button", name="Submit this call").click()
    wait_idle(page)
    expect(page.get_by_text("how your previous answer was graded")).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("stMetricValue").first).to_be_visible(timeout=20_000)  # the breakdown's reward
    expect(page.get_by_text("Item 2 of 4")).to_be_visible(timeout=20_000)
    screenshot(page, "annotate_3_after_submit_revealed")

    page.goto(app_url + "/campaigns")
    wait_idle(page)
    choose(page, "Campaign", re.compile("browser-pilot"))
    expect(page.get_by_text(re.compile(r"Campaign: 1 of 4 answers"))).to_be_visible(timeout=20_000)
    screenshot(page, "annotate_4_progress")
    page.get_by_role("tab", name="Results").click()
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=20_000)
    expect(page.get_by_text("Human baseline reward")).to_be_visible(timeout=20_000)
    screenshot(page, "annotate_5_results")
    assert outside_requests == []


def test_delete_a_campaign(page, app_url, outside_requests):
    """The Manage tab deletes a campaign only once the confirmation box is ticked."""
    open_create_form(page, app_url)
    type_in(page, page.get_by_label("Name", exact=True), "browser-doomed")
    type_in(page, page.get_by_label("Sample size"), "3")
    page.get_by_role("button", name="Create campaign").click()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"Created with 3 items"))).to_be_visible(timeout=20_000)
    page.get_by_role("tab", name="Manage").click()
    page.get_by_text("Delete this campaign").click()
    # the expander's content fully shown before clicking in it (a click during its opening can be lost)
    expect(page.get_by_text("I understand the answers are deleted for good")).to_be_visible(timeout=20_000)
    delete = page.get_by_role("button", name="Delete the campaign")
    expect(delete).to_be_visible(timeout=20_000)
    page.wait_for_timeout(300)
    delete.click()  # not ticked: refused, and the page stays where it was
    wait_idle(page)
    expect(page.get_by_text("Tick the box first: nothing was deleted.")).to_be_visible(timeout=20_000)
    page.get_by_text("I understand the answers are deleted for good").click()
    screenshot(page, "campaigns_delete_confirm")
    delete.click()
    wait_idle(page)
    page.goto(app_url + "/campaigns")
    wait_idle(page)
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible(timeout=20_000)
    assert "browser-doomed" not in page.content()  # gone from the picker (or no campaign is left)
    assert outside_requests == []


def test_the_count_follows_the_filters_in_the_expander(page, shipped_app_url, outside_requests):
    """With campaigns already there the create form sits in an expander: changing a filter reruns the page,
    and the expander stays open with the new count (issue 19)."""
    page.goto(shipped_app_url + "/campaigns")
    wait_idle(page)
    assert page.get_by_text("No campaign yet").count() == 0
    page.get_by_text("Create a campaign").click()
    everything = matching(page)
    choose(page, "Split", "interactive_agent")
    fewer = count_after_change(page, everything)
    assert 0 < fewer < everything
    page.get_by_label("Min tools offered").fill("5")
    page.get_by_label("Min tools offered").press("Enter")
    wait_idle(page)
    assert count_after_change(page, fewer) < fewer
    expect(page.get_by_role("button", name="Create campaign")).to_be_visible()
    screenshot(page, "campaigns_count_in_expander")
    assert outside_requests == []
