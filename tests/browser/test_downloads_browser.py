"""Downloading exports in a real browser: the Browse page's filtered view as Parquet and as OpenAI fine-tuning
lines; the file saved is read back. Screenshots: artifacts/screenshots/downloads_*.png."""

from __future__ import annotations

import json
import sqlite3

import pytest

from browser_helpers import screenshot, wait_idle

pytestmark = pytest.mark.browser


def choose(page, label: str, option: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text=label).click()
    page.get_by_role("option", name=option).click()
    wait_idle(page)


def test_browse_downloads_the_filtered_view(page, app_url, outside_requests, demo_db_master, tmp_path):
    import pandas as pd

    conn = sqlite3.connect(f"file:{demo_db_master}?mode=ro", uri=True)
    try:
        expected = [r[0] for r in conn.execute(
            "SELECT id FROM decision_points WHERE split = 'interactive_agent' ORDER BY rowid")]
    finally:
        conn.close()
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(app_url + "/browse?split=interactive_agent")
    wait_idle(page)
    page.get_by_text("Download this view").click()
    wait_idle(page)
    button = page.get_by_role("button", name=f"Download {len(expected)} decision points (parquet)")
    screenshot(page, "downloads_browse")
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == "decision-points.parquet"
    saved = tmp_path / "view.parquet"
    download.save_as(saved)
    assert list(pd.read_parquet(saved)["id"]) == expected

    choose(page, "Format", "OpenAI fine-tuning lines (messages + tools)")
    with page.expect_download() as info:
        page.get_by_role("button", name=f"Download {len(expected)} decision points (openai-ft)").click()
    saved = tmp_path / "ft.jsonl"
    info.value.save_as(saved)
    lines = [json.loads(x) for x in saved.read_text().splitlines()]
    assert 0 < len(lines) <= len(expected) and all(line["messages"][-1]["role"] == "assistant" for line in lines)
    assert "--format openai-ft" in page.get_by_test_id("stCode").last.inner_text()
    assert outside_requests == []
