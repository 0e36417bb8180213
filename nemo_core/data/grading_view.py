"""The grading view of a conversation: only what grading a prediction reads, stored beside the raw row.

Grading one prediction needs the expected turn and the task's tool list, nothing else. Reading them
from the stored raw conversation meant decompressing and parsing 17 kB of JSON (context, tool replies,
reasoning) per conversation; at 1.2 M predictions that was a third of the `grade` command's time. The
view is written once, at ingest, from the same raw row: `{"v": VIEW_VERSION, "tools": <the row's tools
as they are>, "turns": [[index, tool_calls, content], ...]}` for every assistant message, zstd-compressed.

It holds raw values, not normalised ones, so grading applies the very same normalisers (`records.py`)
to it as to the conversation: the view can make grading faster, never different. A database from
before views exists (or a view of an older `VIEW_VERSION`) still grades, from the conversation; `fill_views`
brings it up to date (`python -m nemo_core upgrade`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .compression import compress, decompress
from .records import dumps_bytes, has_long_digit_run, loads_json

VIEW_VERSION = 1
FILL_BATCH = 2000  # conversations per transaction in `fill_views`


def build_view(row: dict[str, Any], line: bytes, *, long_digits: bool | None = None) -> bytes:
    """The compressed view of a validated raw row. `row` may come from orjson's fast path: when the line
    holds an integer beyond 64 bits (which that path turns into a float) it is parsed again exactly, so
    the view keeps every value as written. `long_digits`: `has_long_digit_run(line)` when already known."""
    if long_digits if long_digits is not None else has_long_digit_run(line):
        row = loads_json(line, exact=True)
    turns = [[i, m.get("tool_calls"), m.get("content")]
             for i, m in enumerate(row["messages"]) if isinstance(m, dict) and m.get("role") == "assistant"]
    return compress(dumps_bytes({"v": VIEW_VERSION, "tools": row.get("tools"), "turns": turns}))


def read_view(body: bytes) -> tuple[Any, dict[int, tuple[Any, Any]]]:
    """(raw tools, {turn index: (raw tool_calls, raw content)}) of a stored view."""
    view = loads_json(decompress(body), exact=True)
    return view["tools"], {t[0]: (t[1], t[2]) for t in view["turns"]}


def read_views(store: Any, conv_ids: list[int]) -> dict[int, tuple[Any, dict[int, tuple[Any, Any]]]]:
    """`read_view` of each conversation that has a current view (the others are simply absent: a caller
    reads those from the conversation itself)."""
    rows = store.fetch_in("SELECT conversation_id, body FROM grading_views WHERE version = ? AND "
                          "conversation_id IN ({marks})", conv_ids, (VIEW_VERSION,))
    return {conv_id: read_view(body) for conv_id, body in rows}


def missing_views(store: Any) -> int:
    """How many conversations have no view of the current version (grading reads those whole)."""
    return store.scalar(
        "SELECT count(*) FROM conversations c WHERE NOT EXISTS "
        "(SELECT 1 FROM grading_views v WHERE v.conversation_id = c.id AND v.version = ?)", (VIEW_VERSION,)) or 0


def fill_views(store: Any, progress: Callable[[int], None] | None = None) -> int:
    """Write the view of every conversation that lacks a current one; returns how many were written.
    Each batch is its own transaction, so an interrupted fill keeps what it wrote and the next resumes."""
    written = 0
    after = 0
    while True:
        with store._lock:
            rows = store.conn.execute(
                "SELECT c.id, c.body FROM conversations c WHERE c.id > ? AND NOT EXISTS "
                "(SELECT 1 FROM grading_views v WHERE v.conversation_id = c.id AND v.version = ?) "
                "ORDER BY c.id LIMIT ?", (after, VIEW_VERSION, FILL_BATCH)).fetchall()
        if not rows:
            return written
        views = []
        for conv_id, body in rows:
            line = decompress(body)
            views.append((conv_id, VIEW_VERSION, build_view(loads_json(line), line)))
        with store.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO grading_views(conversation_id, version, body) VALUES (?, ?, ?)",
                             views)
        written += len(views)
        after = rows[-1][0]
        if progress is not None:
            progress(len(views))
