"""Downloading exports in a real browser: the Browse page's filtered view as Parquet and as OpenAI fine-tuning
lines; the file saved is read back. Screenshots: artifacts/screenshots/downloads_*.png."""

from __future__ import annotations

import json
import sqlite3

import pytest

from browser_helpers import choose, screenshot, type_in, upload_predictions, wait_idle

pytestmark = pytest.mark.browser


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


def batch_output_file(demo_db_master, path) -> tuple[list[str], list[str]]:
    """An OpenAI Batch API output file (lines in the documented shape, out of order as the API returns them):
    three decision points answered with their expected action (two as Chat Completions, one as a Responses
    API response), one request that expired, one that failed with HTTP 500. Returns (answered, failed) ids."""
    from nemo_core.data.store import Store

    store = Store.open(demo_db_master, readonly=True)
    try:
        rows = store.query("SELECT id FROM decision_points WHERE action_type = 'function_call' AND n_expected_calls = 1 "
                           "AND ungradeable_reason IS NULL ORDER BY id LIMIT 4")
        calls = [store.get(r["id"]) for r in rows]
        reply = store.get(store.query("SELECT id FROM decision_points WHERE action_type = 'message' "
                                      "AND flag_empty_expected = 0 ORDER BY id LIMIT 1")[0]["id"])
    finally:
        store.close()

    def ok(n: int, custom_id: str, body: dict) -> dict:
        return {"id": f"batch_req_{n}", "custom_id": custom_id, "error": None,
                "response": {"status_code": 200, "request_id": f"req_{n}", "body": body}}

    def chat(message: dict) -> dict:
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-5-mini-2025-08-07",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}

    c0, c1 = calls[0].expected_calls[0], calls[1].expected_calls[0]
    lines = [
        ok(0, calls[0].id, chat({"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": c0.name, "arguments": json.dumps(c0.arguments)}}]})),
        {"id": "batch_req_1", "custom_id": calls[2].id, "response": None,
         "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}},
        ok(2, reply.id, chat({"role": "assistant", "content": reply.expected_content})),
        {"id": "batch_req_3", "custom_id": calls[3].id, "error": None,
         "response": {"status_code": 500, "request_id": "req_3", "body": {"error": {"message": "The server had an error"}}}},
        ok(4, calls[1].id, {"id": "resp_1", "object": "response", "status": "completed", "model": "gpt-5-mini-2025-08-07",
                            "output": [{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": c1.name,
                                        "arguments": json.dumps(c1.arguments), "status": "completed"}]}),
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return [calls[0].id, reply.id, calls[1].id], [calls[2].id, calls[3].id]


def test_runs_page_grades_a_batch_output_upload_and_downloads_the_run(page, app_url, outside_requests,
                                                                     demo_db_master, tmp_path):
    """Upload an OpenAI Batch output file on the Runs page: the two failed requests are its bad lines, the
    good ones are graded; the run downloads as Parquet and CSV with every failed request's reason on its row."""
    import pandas as pd

    answered, failed = batch_output_file(demo_db_master, tmp_path / "batch_output.jsonl")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(app_url + "/runs")
    wait_idle(page)
    upload_predictions(page, str(tmp_path / "batch_output.jsonl"))
    page.wait_for_selector('[data-testid="stMain"] [data-testid="stDataFrame"] canvas', timeout=30_000)
    screenshot(page, "downloads_runs_batch_upload")
    values = page.get_by_test_id("stMain").get_by_test_id("stMetricValue").all_inner_texts()
    assert values[:3] == ["5", "3", "2"]  # lines, good, bad: the failed requests, before anything is stored
    type_in(page, page.get_by_label("Run name"), "browser-batch")
    page.get_by_role("button", name="Grade the 3 good lines").click()
    wait_idle(page)
    page.get_by_text("Stored run 'browser-batch'").wait_for(timeout=30_000)

    page.get_by_text("Download this run's predictions").click()
    wait_idle(page)
    screenshot(page, "downloads_runs")
    saved: dict[str, object] = {}
    for fmt in ("parquet", "csv"):
        if fmt != "parquet":
            choose(page, "Format", "CSV: the Parquet columns")
            screenshot(page, "downloads_runs_csv")
        with page.expect_download() as info:
            page.get_by_role("button", name=f"Download 5 predictions ({fmt})").click()
        assert info.value.suggested_filename == f"run-browser-batch.{fmt}"
        saved[fmt] = tmp_path / f"run.{fmt}"
        info.value.save_as(saved[fmt])
    frame = pd.read_parquet(saved["parquet"])
    assert sorted(frame["id"]) == sorted(answered + failed)
    by_id = {r["id"]: r for r in frame.to_dict("records")}
    assert all(by_id[i]["reward"] == 1.0 and by_id[i]["category"] == "correct" for i in answered)
    assert by_id[failed[0]]["error"].startswith("server error: the batch request failed (batch_expired")
    assert by_id[failed[1]]["error"].startswith("server error: HTTP 500")
    assert all(pd.isna(by_id[i]["reward"]) and by_id[i]["sub_kind"] == "api_error" for i in failed)
    csv_frame = pd.read_csv(saved["csv"])
    assert sorted(csv_frame["id"]) == sorted(frame["id"]) and list(csv_frame.columns) == list(frame.columns)

    # leave the database as it was for the other browser tests
    page.get_by_role("button", name="Delete run browser-batch").click()
    wait_idle(page)
    page.get_by_role("button", name="Yes, delete it").click()
    wait_idle(page)
    page.get_by_text("Deleted run 'browser-batch'").wait_for(timeout=20_000)
    assert outside_requests == []
