"""Issue 20, point 1, in a real browser: an app whose server has a key (OPENAI_API_KEY, with its base URL)
never sends it to a base URL a visitor types, says so on the page, and an endpoint that echoes the key it
received gets it shown as [redacted], in the page and in every websocket frame."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect

from browser_helpers import screenshot, serve_app, type_in, wait_idle
from fake_openai import FakeOpenAI, authorization, echo_authorization

pytestmark = pytest.mark.browser

SLOW = 60_000
CALL_DP = "interactive_agent/synth-b81d1299-b213-6003-cf00484b/12"
SERVER_KEY = "sk-browser-server-key-11aa22bb33cc"
TYPED_KEY = "sk-browser-typed-key-44dd55ee66ff"


def ask(page, base_url: str, typed_key: str) -> None:
    type_in(page, page.get_by_label("Base URL", exact=True), base_url)
    type_in(page, page.get_by_label("API key for this base URL (optional)", exact=True), typed_key)
    page.get_by_label("Model", exact=True).fill("echo-model")
    page.get_by_label("Model", exact=True).press("Tab")
    page.get_by_role("button", name="Ask the model").click()
    wait_idle(page, timeout=SLOW)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas', timeout=SLOW)


def test_the_server_key_stays_home_and_echoes_are_redacted(page, demo_db_master, tmp_path, outside_requests):
    page.set_default_timeout(SLOW)
    frames: list[bytes] = []
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda payload: frames.append(payload if isinstance(payload, bytes) else payload.encode())))
    db = tmp_path / "demo.db"
    shutil.copy(demo_db_master, db)
    with FakeOpenAI() as configured, FakeOpenAI() as other:
        configured.responder = other.responder = echo_authorization("transfer_funds")
        env = {"OPENAI_API_KEY": SERVER_KEY, "OPENAI_BASE_URL": configured.base_url}
        with serve_app(db, tmp_path, extra_env=env) as url:
            page.goto(url + f"/decision_point?id={CALL_DP}")
            wait_idle(page, timeout=SLOW)
            page.wait_for_selector('[data-testid="stChatMessage"]', timeout=SLOW)
            page.get_by_role("tab", name="A model's answer").click()
            ask(page, other.base_url, "")  # a typed URL and no key: asked with none
            expect(page.get_by_text("is not the one the server's key is configured for")).to_be_visible()
            page.get_by_text("echo-model's answer").scroll_into_view_if_needed()
            screenshot(page, "keys_typed_url_without_key")
            ask(page, other.base_url, TYPED_KEY)  # a typed key, echoed back
            ask(page, configured.base_url, "")  # the configured URL: the server's key, echoed back
            page.get_by_text("echo-model's answer").scroll_into_view_if_needed()
            screenshot(page, "keys_echo_redacted")
            text = page.locator('[data-testid="stMain"]').inner_text()
    assert [authorization(r) for r in other.completion_requests] == ["Bearer no-key", f"Bearer {TYPED_KEY}"]
    assert [authorization(r) for r in configured.completion_requests] == [f"Bearer {SERVER_KEY}"]
    assert "[redacted]" in text
    received = b"".join(frames)
    assert b"[redacted]" in received
    for key in (SERVER_KEY, TYPED_KEY):
        assert key not in text and key.encode() not in received, f"{key} reached the browser"
    assert outside_requests == []
