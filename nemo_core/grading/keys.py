"""API keys: which endpoint a key may be sent to, and taking every known key out of what is shown or stored.

The server's key (`OPENAI_API_KEY`, or the app's `openai_api_key` secret) is configured together with a
base URL (`OPENAI_BASE_URL` / the `openai_base_url` secret, else OpenAI's own). Whoever runs the server
chose to trust that endpoint with that key, and nobody else: so the key is sent there and nowhere else.
A base URL typed in the app that is not that endpoint gets only a key typed with it (issue 20: the page
used to send the server's key to any URL a visitor typed, and a server that echoed it made it appear on
the page and in the database).

Anything an endpoint returns may echo the key it received (or any other key it learnt), so replies are
passed through `redact_json` with every key the process knows before they are shown or stored. This is
the one place redaction lives; `ModelRunner.redact` and `LLMGrader.redact` call it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"  # where the openai client goes when no base URL is given
REDACTED = "[redacted]"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_identity(url: str | None) -> tuple[str, str, int | None, str, str, str] | None:
    """What makes two base URLs the same endpoint: scheme, host (case-insensitive), port (the scheme's
    default filled in), path (without a trailing slash), user info and query (either could route the
    request elsewhere or carry a credential, so they must match too). None for an empty URL."""
    if not url or not url.strip():
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a port that is not a number, say: never the configured endpoint
        return ("invalid", url.strip(), None, "", "", "")
    scheme = parts.scheme.lower()
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    return (scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme), parts.path.rstrip("/"),
            userinfo, parts.query)


def same_endpoint(a: str | None, b: str | None) -> bool:
    """Whether two base URLs name the same endpoint (an empty one is OpenAI's default)."""
    return endpoint_identity(a or OPENAI_DEFAULT_URL) == endpoint_identity(b or OPENAI_DEFAULT_URL)


@dataclass(frozen=True)
class KeyChoice:
    """The key to send to one endpoint, and a sentence saying where it came from (never the key)."""

    key: str | None = field(repr=False)
    source: str
    server_key_withheld: bool = False  # the server has a key, and this endpoint may not have it


def choose_key(base_url: str | None, *, typed_key: str | None, server_key: str | None,
               server_url: str | None) -> KeyChoice:
    """The key for a request to `base_url`: the typed key when there is one; else the server's key, but
    only when `base_url` is the endpoint it is configured with (`server_url`, None = OpenAI's); else none
    (a local server often needs none)."""
    typed = (typed_key or "").strip()
    if typed:
        return KeyChoice(typed, "the key typed here (kept in this browser session only, never stored)")
    server = (server_key or "").strip()
    if server and same_endpoint(base_url, server_url):
        return KeyChoice(server, "the server's key, which goes only to the base URL configured with it")
    if server:
        return KeyChoice(None, "none: the server's key goes only to its configured base URL, and no key was typed "
                               "for this one", server_key_withheld=True)
    return KeyChoice(None, "none (fine for a local server that needs none)")


def known_keys(*keys: str | None) -> tuple[str, ...]:
    """`keys` and the process's own `OPENAI_API_KEY`, without blanks or repeats: what `redact` removes."""
    found: list[str] = []
    for key in (*keys, os.environ.get("OPENAI_API_KEY")):
        key = (key or "").strip()
        if key and key not in found:
            found.append(key)
    return tuple(sorted(found, key=len, reverse=True))  # a key inside a longer one: the longer goes first


def redact(text: str, keys: Iterable[str]) -> str:
    """`text` with every key in `keys` replaced by `[redacted]`."""
    for key in keys:
        if key and key in text:
            text = text.replace(key, REDACTED)
    return text


def redact_json(value: Any, keys: Iterable[str]) -> Any:
    """A JSON-like value (dicts, lists, strings, numbers) with every key removed from every string in it,
    object keys included (a copy; tuples become lists)."""
    keys = tuple(k for k in keys if k)
    if not keys:
        return value
    return _redact_value(value, keys)


def _redact_value(value: Any, keys: tuple[str, ...]) -> Any:
    """Iterative, so a reply nested however deep cannot raise RecursionError here."""
    if isinstance(value, str):
        return redact(value, keys)
    if not isinstance(value, (dict, list, tuple)):
        return value
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]  # (source value, container to fill, slot in it)
    while stack:
        source, target, slot = stack.pop()
        if isinstance(source, str):
            target[slot] = redact(source, keys)
        elif isinstance(source, dict):
            copy: dict[Any, Any] = {}
            target[slot] = copy
            for k, v in source.items():
                k = redact(k, keys) if isinstance(k, str) else k
                copy[k] = None
                stack.append((v, copy, k))
        elif isinstance(source, (list, tuple)):
            items: list[Any] = [None] * len(source)
            target[slot] = items
            stack.extend((v, items, i) for i, v in enumerate(source))
        else:
            target[slot] = source
    return root[0]
