"""Issue 20, point 1: on the Try panel ("A model's answer") the server's key goes only to the base URL it is
configured with, and whatever an endpoint sends back is shown and saved without any key in it.

The endpoints are real HTTP servers on 127.0.0.1 (tests/fake_openai.py) that record the Authorization header
they receive and echo it in an HTTP 200 reply, as a hostile server would."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_runner import run_app_page
from fake_openai import FakeOpenAI, authorization, echo_authorization
from nemo_core.people.attempts import list_attempts
from nemo_core.data.store import Store

CALL_DP = "interactive_agent/synth-b81d1299-b213-6003-cf00484b/12"  # transfer_funds
SERVER_KEY = "sk-server-env-key-0a1b2c3d4e5f"
SECRET_KEY = "sk-server-secret-key-9z8y7x6w"
TYPED_KEY = "sk-typed-by-a-visitor-5h6i7j"


@pytest.fixture
def servers():
    """Two endpoints: `configured` (the server's own) and `other` (a URL a visitor types)."""
    configured, other = FakeOpenAI().start(), FakeOpenAI().start()
    for server in (configured, other):
        server.responder = echo_authorization("transfer_funds")
    try:
        yield configured, other
    finally:
        configured.stop()
        other.stop()


@pytest.fixture
def page(demo_db, monkeypatch):
    monkeypatch.setenv("NEMO_DB", str(demo_db))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    def open_page(secrets: dict[str, str] | None = None) -> AppTest:
        return run_app_page("app_pages/decision_point.py", {"id": CALL_DP}, secrets=secrets)

    return open_page


def ask(at: AppTest, base_url: str | None = None, typed_key: str | None = None) -> None:
    if base_url is not None:
        at.text_input(key="try::base_url").input(base_url)
    if typed_key is not None:
        at.text_input(key="try::api_key").input(typed_key)
    [b for b in at.button if b.label == "Ask the model"][0].click().run()
    assert not at.exception, [e.value for e in at.exception]


def sent_to_browser(at: AppTest) -> bytes:
    """Every element of the page as the bytes Streamlit sends over the websocket (tables included)."""
    out: list[bytes] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "SerializeToString"):
            out.append(proto.SerializeToString())
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return b"".join(out)


def database_bytes(db: Path) -> bytes:
    with Store.open(db) as store:
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def headers_received(*servers: FakeOpenAI) -> list[str | None]:
    return [authorization(r) for s in servers for r in s.completion_requests]


def test_the_server_key_is_never_sent_to_a_typed_base_url(page, servers, monkeypatch):
    configured, other = servers
    monkeypatch.setenv("OPENAI_API_KEY", SERVER_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", configured.base_url)
    at = page()
    ask(at, base_url=other.base_url)  # no key typed: asked with none
    assert headers_received(other) == ["Bearer no-key"]
    assert any("not the one the server's key is configured for" in i.value for i in at.info)
    ask(at, typed_key=TYPED_KEY)  # a key typed with the URL goes to it
    assert headers_received(other) == ["Bearer no-key", f"Bearer {TYPED_KEY}"]
    ask(at, base_url=configured.base_url.rstrip("/") + "/", typed_key="")  # the configured URL: the server's key
    assert headers_received(configured) == [f"Bearer {SERVER_KEY}"]
    assert SERVER_KEY not in " ".join(h or "" for h in headers_received(other))


def test_with_no_base_url_configured_the_key_is_only_for_openai(page, servers, monkeypatch):
    _, other = servers
    monkeypatch.setenv("OPENAI_API_KEY", SERVER_KEY)
    at = page()
    ask(at, base_url=other.base_url)
    assert headers_received(other) == ["Bearer no-key"]


def test_the_secret_key_is_never_sent_to_a_typed_base_url(page, servers):
    configured, other = servers
    at = page({"openai_api_key": SECRET_KEY, "openai_base_url": configured.base_url})
    assert at.text_input(key="try::base_url").value == configured.base_url
    ask(at, base_url=other.base_url)
    assert headers_received(other) == ["Bearer no-key"]
    ask(at, base_url=configured.base_url)
    assert headers_received(configured) == [f"Bearer {SECRET_KEY}"]


def test_an_echoed_key_is_redacted_on_the_page_in_attempts_and_in_the_database(page, servers, demo_db, monkeypatch):
    configured, other = servers
    monkeypatch.setenv("OPENAI_API_KEY", SERVER_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", configured.base_url)
    at = page({"openai_api_key": SECRET_KEY})
    ask(at)  # the configured URL, with the server's key (the secret wins over the env), echoed back
    ask(at, base_url=other.base_url, typed_key=TYPED_KEY)  # a typed key, echoed back
    assert headers_received(configured, other) == [f"Bearer {SECRET_KEY}", f"Bearer {TYPED_KEY}"]
    shown = sent_to_browser(at)
    with Store.open(demo_db) as store:
        attempts = list_attempts(store, CALL_DP)
    assert len(attempts) == 2
    for attempt in attempts:
        assert attempt.action["arguments"]["note"] == "you sent Bearer [redacted]"
        assert attempt.extra["raw"]["content"] == "header: Bearer [redacted]"
    kept = repr(at.session_state[f"try::result::model::{CALL_DP}"])  # the last answer, raw reply included
    stored = database_bytes(Path(demo_db))
    for key in (SERVER_KEY, SECRET_KEY, TYPED_KEY):
        assert key.encode() not in shown, f"{key} reached the page"
        assert key.encode() not in stored, f"{key} reached the database"
        assert key not in kept, f"{key} is in the session's last answer"
    assert b"[redacted]" in shown and "[redacted]" in kept  # the echo is there, without the key
