"""The bundled demo dataset and the demo database built from it on first use.

`data/demo/` holds files in the exact raw format of both splits: synthetic conversations from
`synth.py`, hand-made rows for every quirk SPEC §1 lists, a few deliberately broken lines (so the ingest
report has something to show), and real rows from `shared/fixtures` (CC-BY-4.0, see data/demo/README.md).
The files are committed; `python -m nemo_core demo --write` regenerates the synthetic ones, and a test
checks that doing so changes nothing.

What the demo database holds besides the data (runs, a campaign, an audit set) is made by layers above this
one, so it comes in as `DemoContent`: `ensure_demo_db(content=...)` adds it to the new database before the
database is moved into place, and records its version in `meta`, so a database made without it (or with an
older version of it) is built again. `people/demo_content.py` is the content the app and the CLI ship.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.config import DEMO_DB, DEMO_DIR
from .schema import SCHEMA_VERSION
from .synth import DOMAINS, interactive_agent_row, synth_uuid, tool_calling_row
from .ingest import ingest
from .store import Store

SEED = 20251126
logger = logging.getLogger(__name__)

CONTENT_META_KEY = "demo_content"
FILES_META_KEY = "demo_files_sha256"  # what the database was built from: a checkout that only touches the files
                                      # (git pull, a copy) must not rebuild it and lose the user's runs


@dataclass(frozen=True)
class DemoContent:
    """What to add to a freshly ingested demo database (`add`), and the version recorded with it."""

    version: str
    add: Callable[[Any], None]  # called with the open `Store` of the new database


def _tc(uuid: str, messages: list[dict], tools: list[Any]) -> dict:
    return {"uuid": uuid, "messages": [{"role": "system", "content": ""}, *messages], "license": "cc-by-4.0",
            "used_in": ["demo"], "tools": tools}


def _tool(name: str, props: dict | None = None, required: list | None = None, description: str = "") -> dict:
    params: dict[str, Any] = {"type": "object", "properties": props or {}}
    if required:
        params["required"] = required
    return {"type": "function", "function": {"name": name, "description": description or f"{name} tool", "parameters": params}}


def quirk_rows_tool_calling() -> list[dict]:
    """One hand-made row per quirk of the `tool_calling` split (in this order: the demo's ids depend on it)."""
    return [*_quirks_calls(), *_quirks_tools(), *_quirks_content()]


def _quirks_calls() -> list[dict]:
    """Parallel calls, arguments as a list, no tools, repeated tool definitions."""
    weather = DOMAINS[0].tools
    S = {"type": "string"}
    return [
        _tc("demo-parallel-calls", [
            {"role": "user", "content": "Weather in Oslo and Bergen, and convert 30 to F."},
            {"role": "assistant", "content": "", "reasoning_content": "Three calls at once.", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}, "index": 0},
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Bergen"}}, "index": 1},
                {"type": "function", "function": {"name": "convert_temperature", "arguments": {"value": 30, "to": "F"}}, "index": 2}]},
            {"role": "tool", "content": {"city": "Oslo", "temp_c": 4}},
            {"role": "tool", "content": {"city": "Bergen", "temp_c": 7}},
            {"role": "assistant", "content": "Oslo is 4°C, Bergen 7°C; 30°C is 86°F.", "tool_calls": None,
             "reasoning_content": "The third call got no reply, but I know the conversion."},
        ], weather),
        _tc("demo-arguments-as-list", [
            {"role": "user", "content": "Sum 2, 3 and 4."},
            {"role": "assistant", "content": "", "reasoning_content": "Call add.", "tool_calls": [
                {"type": "function", "function": {"name": "add_numbers", "arguments": [2, 3, 4]}}]},
            {"role": "tool", "content": 9},
            {"role": "assistant", "content": "The sum is 9.", "tool_calls": None, "reasoning_content": "Done."},
        ], [_tool("add_numbers", {"numbers": {"type": "array", "items": {"type": "number"}}}, ["numbers"])]),
        {**_tc("demo-no-tools", [
            {"role": "user", "content": "Tell me a fun fact about octopuses."},
            {"role": "assistant", "content": "Octopuses have three hearts and blue blood.", "tool_calls": None,
             "reasoning_content": "No tools needed."},
        ], []), "x_demo_note": {"shape": "an unknown top-level key, kept (SPEC §1)"}},
        _tc("demo-duplicate-tools", [
            {"role": "user", "content": "Look up the ISBN 978-0140449136."},
            {"role": "assistant", "content": "", "reasoning_content": "Use lookup_book.", "tool_calls": [
                {"type": "function", "function": {"name": "lookup_book", "arguments": {"isbn": "978-0140449136"}}}]},
            {"role": "tool", "content": {"title": "The Odyssey", "author": "Homer"}},
            {"role": "assistant", "content": "That ISBN is Homer's The Odyssey (Penguin Classics).", "tool_calls": None,
             "reasoning_content": "Answer."},
        ], [_tool("lookup_book", {"isbn": S}, ["isbn"]), _tool("lookup_book", {"isbn": S, "edition": S}, ["isbn"]),
            _tool("lookup_book", {"isbn": S}, ["isbn"])]),
    ]


def _quirks_tools() -> list[dict]:
    """Odd tool definitions, tool replies of every JSON type, an empty expected message, a task tool
    named `submit_message`."""
    weather = DOMAINS[0].tools
    S = {"type": "string"}
    return [
        _tc("demo-odd-tool-definitions", [
            {"role": "user", "content": "What time is it in Tokyo?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}}]},
            {"role": "tool", "content": "2025-05-01T09:12:00+09:00"},
            {"role": "assistant", "content": "It is 09:12 in Tokyo.", "tool_calls": None},
        ], [
            {"type": "function", "function": {"name": "get_time", "description": "Current time in a timezone.",
                                              "parameters": {"type": "object", "properties": {"timezone": S}},
                                              "required": ["timezone"]}},
            {"type": "function", "function": {"name": "ping", "description": "No parameters at all."}},
            {"type": "function", "function": {"name": "noop", "description": "Empty properties.",
                                              "parameters": {"type": "object", "properties": {}}}},
            {"type": "function", "function": {"name": "echo_text", "description": "Root type is not object.",
                                              "parameters": {"type": "string"}}},
            {"type": "function", "function": {"description": "A definition without a name."}},
            "not a tool definition",
        ]),
        _tc("demo-tool-content-shapes", [
            {"role": "user", "content": "Check whether 2024 is a leap year and list its holidays."},
            {"role": "assistant", "content": "", "reasoning_content": "Two calls.", "tool_calls": [
                {"type": "function", "function": {"name": "is_leap_year", "arguments": {"year": 2024}}}]},
            {"role": "tool", "content": True},
            {"role": "assistant", "content": "", "reasoning_content": "Now holidays.", "tool_calls": [
                {"type": "function", "function": {"name": "list_holidays", "arguments": {"year": 2024, "country": "FR"}}}]},
            {"role": "tool", "content": [{"date": "2024-01-01", "name": "Jour de l'an"}, {"date": "2024-07-14", "name": "Fête nationale"}]},
            {"role": "assistant", "content": "Yes, 2024 is a leap year. French holidays include New Year's Day and 14 July.",
             "tool_calls": None, "reasoning_content": "Summarise."},
        ], [_tool("is_leap_year", {"year": {"type": "integer"}}, ["year"]),
            _tool("list_holidays", {"year": {"type": "integer"}, "country": S}, ["year", "country"])]),
        _tc("demo-empty-expected-message", [
            {"role": "user", "content": "ok thanks"},
            {"role": "assistant", "content": "", "tool_calls": None, "reasoning_content": "Nothing to add."},
        ], weather),
        _tc("demo-submit-message-clash", [
            {"role": "user", "content": "Send 'running late' to Sam."},
            {"role": "assistant", "content": "", "reasoning_content": "Use the SMS tool.", "tool_calls": [
                {"type": "function", "function": {"name": "send_sms", "arguments": {"to": "Sam", "text": "running late"}}}]},
            {"role": "tool", "content": {"delivered": True}},
            {"role": "assistant", "content": "Sent.", "tool_calls": None, "reasoning_content": "Done."},
        ], [_tool("send_sms", {"to": S, "text": S}, ["to", "text"]), _tool("submit_message", {"body": S}, ["body"])]),
    ]


def _quirks_content() -> list[dict]:
    """Markup in tool replies and answers, a very long tool reply, an expected tool the task does
    not offer, a tool reply with no call left to answer."""
    S = {"type": "string"}
    return [
        _tc("demo-untrusted-markup", [
            {"role": "user", "content": "Fetch the release notes."},
            {"role": "assistant", "content": "", "reasoning_content": "Call fetch.", "tool_calls": [
                {"type": "function", "function": {"name": "fetch_notes", "arguments": {"version": "2.1"}}}]},
            {"role": "tool", "content": "Notes ![tracker](http://203.0.113.7/pixel.png) see [docs](http://203.0.113.7/docs) "
                                        "<img src='http://203.0.113.7/x.png'> <script>alert(1)</script>"},
            {"role": "assistant", "content": "Version 2.1 fixes the login bug. ![img](http://203.0.113.7/reply.png)",
             "tool_calls": None, "reasoning_content": "Summarise."},
        ], [_tool("fetch_notes", {"version": S}, ["version"])]),
        _tc("demo-very-long-tool-result", [
            {"role": "user", "content": "Dump the server log."},
            {"role": "assistant", "content": "", "reasoning_content": "Call logs.", "tool_calls": [
                {"type": "function", "function": {"name": "get_logs", "arguments": {"lines": 500}}}]},
            {"role": "tool", "content": {"lines": [f"2025-01-01T00:{i // 60:02d}:{i % 60:02d} INFO request {i} served in {i % 97} ms"
                                                   for i in range(500)]}},
            {"role": "assistant", "content": "The log shows 500 requests, all served normally.", "tool_calls": None,
             "reasoning_content": "Summarise the log."},
        ], [_tool("get_logs", {"lines": {"type": "integer"}}, ["lines"])]),
        _tc("demo-expected-tool-not-offered", [
            {"role": "user", "content": "Translate 'good morning' to German."},
            {"role": "assistant", "content": "", "reasoning_content": "Call translate.", "tool_calls": [
                {"type": "function", "function": {"name": "translate_text", "arguments": {"text": "good morning", "target": "de"}}}]},
            {"role": "tool", "content": {"translation": "Guten Morgen"}},
            {"role": "assistant", "content": "'Good morning' in German is 'Guten Morgen'.", "tool_calls": None,
             "reasoning_content": "Answer."},
        ], [_tool("detect_language", {"text": S}, ["text"])]),
        _tc("demo-orphan-tool-reply", [
            {"role": "user", "content": "Convert 100 USD to EUR."},
            {"role": "assistant", "content": "", "reasoning_content": "One call.", "tool_calls": [
                {"type": "function", "function": {"name": "convert_currency", "arguments": {"amount": 100, "from": "USD", "to": "EUR"}}}]},
            {"role": "tool", "content": {"result": 92.4}},
            {"role": "tool", "content": {"note": "a second reply with no call left to answer"}},
            {"role": "assistant", "content": "100 USD is about 92.40 EUR.", "tool_calls": None, "reasoning_content": "Answer."},
        ], [_tool("convert_currency", {"amount": {"type": "number"}, "from": S, "to": S}, ["amount", "from", "to"])]),
    ]


def quirk_rows_interactive() -> list[dict]:
    """Hand-made `interactive_agent` rows: arguments that are not a JSON object, a reply whose
    `tool_call_id` names no call (linked by position instead)."""
    base = interactive_agent_row(random.Random(SEED + 1), "demo-ia-invalid-json-arguments", turns=1)
    for msg in base["messages"]:
        if msg.get("tool_calls"):
            msg["tool_calls"][0]["function"]["arguments"] = '{"city": "Lyon", "units": '
            break
    listy = interactive_agent_row(random.Random(SEED + 2), "demo-ia-arguments-string-of-list", turns=1)
    for msg in listy["messages"]:
        if msg.get("tool_calls"):
            msg["tool_calls"][0]["function"]["arguments"] = '["Lyon", "metric"]'
            break
    mismatch = interactive_agent_row(random.Random(SEED + 3), "demo-ia-unknown-tool-call-id", turns=1)
    for msg in mismatch["messages"]:
        if msg["role"] == "tool":
            msg["tool_call_id"] = "call-that-does-not-exist"
        if msg["role"] == "assistant":
            msg.pop("reasoning_content", None)
    return [base, listy, mismatch]


BROKEN_LINES = [
    '{"uuid": "demo-broken-1", "messages": [{"role": "user", "content": "unterminated',
    '["a JSON array", "not an object"]',
    '{"uuid": "demo-broken-3", "tools": []}',
    '{"uuid": "demo-broken-4", "messages": [{"role": "system", "content": ""}, {"role": "moderator", "content": "hi"}], "tools": []}',
]


def write_demo_files(dest: Path = DEMO_DIR) -> list[Path]:
    """(Re)write the synthetic demo files; deterministic for a given SEED."""
    rng = random.Random(SEED)
    tool_calling = [tool_calling_row(rng, synth_uuid(rng), reasoning_chars=300) for _ in range(24)] + quirk_rows_tool_calling()
    interactive = [interactive_agent_row(rng, synth_uuid(rng), reasoning_chars=200) for _ in range(10)] + quirk_rows_interactive()
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name, rows in (("tool_calling_demo.jsonl", tool_calling), ("interactive_agent_demo.jsonl", interactive)):
        path = dest / name
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        out.append(path)
    path = dest / "tool_calling_demo_broken_lines.jsonl"
    path.write_text("\n".join(BROKEN_LINES) + "\n", encoding="utf-8")
    out.append(path)
    return out


def demo_files(src: Path = DEMO_DIR) -> list[Path]:
    return sorted(p for p in src.glob("*.jsonl"))


def _meta(path: Path, key: str) -> str | None:
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            conn.close()
        return row[0] if row else None
    except sqlite3.Error:
        return None


def _schema_version(path: Path) -> int | None:
    try:
        return int(_meta(path, "schema_version"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def files_fingerprint(files: list[Path]) -> str:
    """SHA-256 over the demo files' names and bytes: the demo database is stale when this changes, not when a
    checkout gives the same files a newer time."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode("utf-8") + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def _is_current(path: Path, files: list[Path], fingerprint: str, content: DemoContent | None) -> bool:
    """Built from these files' content (a database from before the fingerprint: newer than the files), at this
    schema and with `content` at its version when given."""
    built_from = _meta(path, FILES_META_KEY)
    if built_from is not None:
        same_files = built_from == fingerprint
    else:
        same_files = path.stat().st_mtime >= max((f.stat().st_mtime for f in files), default=0)
    return (same_files and _schema_version(path) == SCHEMA_VERSION
            and (content is None or _meta(path, CONTENT_META_KEY) == content.version))


def _keep_aside(path: Path) -> Path:
    """Copy the database about to be replaced beside it (`demo.replaced-<UTC time>.db`), through SQLite's backup
    so a write-ahead log's pages come along: runs, campaigns and answers a user added to the demo database
    survive a rebuild."""
    import sqlite3
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    kept = path.with_name(f"{path.stem}.replaced-{stamp}{path.suffix}")
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(kept)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    logger.warning("the demo database is rebuilt; the one it replaces is kept as %s", kept)
    return kept


def ensure_demo_db(path: Path = DEMO_DB, src: Path = DEMO_DIR, *, rebuild: bool = False,
                   content: DemoContent | None = None) -> Path:
    """Build the demo database from `data/demo/` unless it is already there, built from the same files (by
    content) and holding `content` at its version when `content` is given (without it, any demo database of
    those files will do). A database that is replaced is first copied aside (`_keep_aside`).

    Built in a temporary file and moved into place, so two processes starting at once never see half
    a database.
    """
    path, src = Path(path), Path(src)
    files = demo_files(src)
    fingerprint = files_fingerprint(files)
    if path.exists() and not rebuild and _is_current(path, files, fingerprint, content):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".demo-", suffix=".db", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    store = Store.open(tmp)
    try:
        try:
            ingest(store, files, workers=1)
            if content is not None:
                content.add(store)
                store.set_meta(CONTENT_META_KEY, content.version)
            store.set_meta(FILES_META_KEY, fingerprint)
            store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            store.conn.execute("PRAGMA journal_mode = DELETE")
        finally:
            store.close()
        if path.exists():
            _keep_aside(path)
    except BaseException:  # nothing half-built is left beside the database (the old one, if any, stays)
        for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
            Path(leftover).unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path
