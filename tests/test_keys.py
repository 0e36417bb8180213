"""`nemo_core.grading.keys`: which endpoint a key may go to, and redaction (issue 20, point 1)."""

from __future__ import annotations

import pytest

from nemo_core.grading.keys import OPENAI_DEFAULT_URL, choose_key, known_keys, redact, redact_json, same_endpoint
from nemo_core.grading.endpoint import EndpointConfig
from nemo_core.runs.model_runner import ModelRunner

SERVER = "sk-server-1234567890"
TYPED = "sk-typed-0987654321"


@pytest.mark.parametrize("a, b", [
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/"),
    ("HTTP://LocalHost:8000/v1", "http://localhost:8000/v1"),
    ("https://api.openai.com/v1", "https://api.openai.com:443/v1"),
    (None, OPENAI_DEFAULT_URL),
    ("", None),
    (" http://h/v1 ", "http://h/v1"),
])
def test_same_endpoint(a, b):
    assert same_endpoint(a, b)


@pytest.mark.parametrize("a, b", [
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8001/v1"),  # another port: another server
    ("http://127.0.0.1:8000/v1", "https://127.0.0.1:8000/v1"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v2"),
    ("https://api.openai.com/v1", "https://api.openai.com.evil.example/v1"),
    ("https://api.openai.com/v1", "https://evil.example/v1?https://api.openai.com/v1"),
    ("https://api.openai.com/v1", "https://user@api.openai.com/v1"),  # user info: a proxy may route on it
    ("https://api.openai.com/v1", "https://api.openai.com/v1?route=elsewhere"),
    ("http://h:80/v1", "http://h:notaport/v1"),
    (None, "http://127.0.0.1:8000/v1"),
])
def test_different_endpoints(a, b):
    assert not same_endpoint(a, b)


def test_the_server_key_goes_only_to_its_own_base_url():
    own = choose_key("http://127.0.0.1:8000/v1/", typed_key="", server_key=SERVER, server_url="http://127.0.0.1:8000/v1")
    assert own.key == SERVER and not own.server_key_withheld
    other = choose_key("http://127.0.0.1:9999/v1", typed_key=None, server_key=SERVER,
                       server_url="http://127.0.0.1:8000/v1")
    assert other.key is None and other.server_key_withheld and SERVER not in other.source
    assert choose_key(OPENAI_DEFAULT_URL, typed_key="", server_key=SERVER, server_url=None).key == SERVER
    assert choose_key("http://127.0.0.1:9999/v1", typed_key="  ", server_key=SERVER, server_url=None).key is None
    typed = choose_key("http://127.0.0.1:9999/v1", typed_key=f" {TYPED} ", server_key=SERVER, server_url=None)
    assert typed.key == TYPED and "browser session" in typed.source and TYPED not in repr(typed)
    none = choose_key("http://127.0.0.1:9999/v1", typed_key="", server_key=None, server_url=None)
    assert none.key is None and not none.server_key_withheld


def test_known_keys_include_the_environment_key_longest_first(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SERVER)
    assert known_keys(None, "", f"{SERVER}-longer", SERVER) == (f"{SERVER}-longer", SERVER)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert known_keys(None, " ") == ()


def test_redact_and_redact_json():
    keys = known_keys(SERVER, TYPED)
    assert redact(f"Bearer {SERVER} and {TYPED}", keys) == "Bearer [redacted] and [redacted]"
    value = {"a": [SERVER, {"b": (f"x{TYPED}y", 1, None, True, 2.5)}], SERVER: "as a key"}
    assert redact_json(value, keys) == {"a": ["[redacted]", {"b": ["x[redacted]y", 1, None, True, 2.5]}],
                                        "[redacted]": "as a key"}
    assert value["a"][0] == SERVER  # a copy: the input is left alone
    assert redact_json("plain", ()) == "plain"


def test_redact_json_survives_any_nesting():
    deep: object = SERVER
    for _ in range(100_000):
        deep = [deep]
    out = redact_json(deep, (SERVER,))
    for _ in range(100_000):
        out = out[0]
    assert out == "[redacted]"


def test_runner_redacts_its_key_the_extra_keys_and_the_environment_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-abcdefabcdef")
    runner = ModelRunner(EndpointConfig(model="m", base_url="http://127.0.0.1:1/v1", api_key=TYPED,
                                        redact_keys=(SERVER,)))
    assert runner.redact(f"{TYPED} {SERVER} sk-env-abcdefabcdef") == "[redacted] [redacted] [redacted]"
    assert SERVER not in repr(runner.config) and TYPED not in repr(runner.config)


def test_the_readme_security_section_names_what_the_code_reads():
    """The README's Security section (issue 20) stays true to the code: each setting it names is read by
    the code, and its word on the listening address matches the Streamlit config."""
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    readme = (repo / "README.md").read_text(encoding="utf-8")
    assert "\n## Security\n" in readme
    section = readme.split("\n## Security\n", 1)[1].split("\n## ", 1)[0]
    code = "\n".join(p.read_text(encoding="utf-8") for folder in ("nemo_core", "ui", "app_pages")
                     for p in (repo / folder).rglob("*.py")) + (repo / "app.py").read_text(encoding="utf-8")
    for name in ("OPENAI_API_KEY", "openai_api_key", "OPENAI_BASE_URL", "openai_base_url", "NEMO_APP_MODE",
                 "NEMO_ADMIN_PASSWORD", "admin_password"):
        assert name in section, f"the Security section does not name {name}"
        assert f'"{name}"' in code, f"the Security section names {name}, which no code reads"
    assert (repo / "nemo_core" / "grading" / "keys.py").is_file() and "nemo_core/grading/keys.py" in section
    config = (repo / ".streamlit" / "config.toml").read_text(encoding="utf-8")
    assert "listen on every network interface" in section and "address" not in config
