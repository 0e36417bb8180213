"""The dataset at a glance: counts, top tools, flags, distributions, the ingest report.

At 1.2 M decision points a plain `GROUP BY split, bin` over `decision_points` reads the whole table (about
13 s per histogram on the benchmark database), so:
- histograms count over the column's own index (a covering index scan, about 0.5 s), per split through
  the split's rowid range when every split occupies one contiguous range (true after ingests that add one
  split at a time; checked, with a table scan as the fallback);
- the result is stored in `overview_cache` under the database's *signature* (last decision point rowid
  and last ingest), so it is computed once per ingest, not once per server start; a new ingest changes the
  signature and the next visit recomputes.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from typing import Any

import orjson

from .extract import FLAGS
from .store import Store


CACHE_VERSION = 1  # bump when the shape of `compute_overview` changes

HISTOGRAMS: dict[str, tuple[str, list[int]]] = {
    "context_chars": ("Context length (characters)", [0, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000]),
    "n_tools": ("Number of task tools offered", [0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50]),
    "turn_index": ("Turn index (message index of the decision point)", [0, 2, 3, 4, 6, 8, 10, 15, 20, 30, 50, 100]),
}
_HIST_INDEX = {"context_chars": "dp_context_chars", "n_tools": "dp_n_tools", "turn_index": "dp_turn_index"}


def signature(store: Store) -> str:
    """Changes exactly when decision points are added or an ingest is recorded."""
    last_ingest = store.query("SELECT id, status, finished_at FROM ingests ORDER BY id DESC LIMIT 1")
    return orjson.dumps({
        "v": CACHE_VERSION,
        "max_rowid": store.scalar("SELECT max(rowid) FROM decision_points"),
        "n_conversations_max_id": store.scalar("SELECT max(id) FROM conversations"),
        "ingest": list(last_ingest[0].values()) if last_ingest else None,
    }).decode()


def bin_labels(bins: list[int]) -> list[str]:
    """`[0, 2, 5]` -> `["0–1", "2–4", "≥5"]` (bins are half-open, the last one unbounded)."""
    labels = []
    for lo, hi in zip(bins, bins[1:]):
        labels.append(f"{lo:,}" if hi - lo == 1 else f"{lo:,}–{hi - 1:,}")
    labels.append(f"≥{bins[-1]:,}")
    return labels


def split_rowid_ranges(store: Store) -> dict[str, tuple[int, int]] | None:
    """`{split: (first rowid, last rowid)}` when every split's rows form one contiguous rowid range
    (the ranges do not overlap), else None."""
    rows = store.query("SELECT split, min(rowid) AS lo, max(rowid) AS hi FROM decision_points GROUP BY split")
    ranges = sorted((r["lo"], r["hi"], r["split"]) for r in rows)
    for (_, hi, _), (lo, _, _) in zip(ranges, ranges[1:]):
        if lo <= hi:
            return None
    return {split: (lo, hi) for lo, hi, split in ranges}


def histogram(store: Store, column: str, bins: list[int], ranges: dict[str, tuple[int, int]] | None) -> list[dict[str, Any]]:
    """`[{split, bin, n}]`, bin = index into `bins` (as `Store.histogram`), from the column's index when
    the splits are contiguous."""
    if ranges is None or column not in _HIST_INDEX:
        return store.histogram(column, bins)
    cases = " ".join(f"WHEN {column} < {int(b)} THEN {i}" for i, b in enumerate(bins[1:]))
    bin_expr = f"CASE {cases} ELSE {len(bins) - 1} END" if cases else "0"
    out: list[dict[str, Any]] = []
    for split, (lo, hi) in ranges.items():
        for row in store.query(
            f"SELECT {bin_expr} AS bin, count(*) AS n FROM decision_points INDEXED BY {_HIST_INDEX[column]} "
            f"WHERE rowid BETWEEN ? AND ? GROUP BY bin ORDER BY bin",
            (lo, hi),
        ):
            out.append({"split": split, "bin": row["bin"], "n": row["n"]})
    return sorted(out, key=lambda r: (r["bin"], r["split"]))


def compute_overview(store: Store) -> dict[str, Any]:
    """Every figure the Overview page shows, as plain JSON-able data."""
    ranges = split_rowid_ranges(store)
    flags = {}
    for name in FLAGS:  # each flag has a partial index: an index count, not a table scan
        rows = store.query(f"SELECT split, count(*) AS n FROM decision_points WHERE flag_{name} = 1 GROUP BY split")
        flags[name] = {r["split"]: r["n"] for r in rows}
    histograms = {}
    for column, (title, bins) in HISTOGRAMS.items():
        labels = bin_labels(bins)
        histograms[column] = {
            "title": title,
            "labels": labels,
            "rows": [{"split": r["split"], "bin": labels[r["bin"]], "order": r["bin"], "n": r["n"]}
                     for r in histogram(store, column, bins, ranges)],
        }
    return {
        "counts": store.counts(),
        "conversations": store.n_conversations(),
        "top_tools": store.expected_tool_counts(limit=25),
        "n_distinct_tools": store.scalar("SELECT count(DISTINCT expected_tool) FROM decision_points") or 0,
        "flags": flags,
        "histograms": histograms,
        "ingests": store.ingests(),
        "rejected": store.rejected(limit=1000),
        "n_rejected": store.n_rejected(),
    }


def load_cached(store: Store, sig: str | None = None) -> dict[str, Any] | None:
    """The stored overview for the database as it is now, or None."""
    sig = sig or signature(store)
    try:
        body = store.scalar("SELECT body FROM overview_cache WHERE signature = ?", (sig,))
    except sqlite3.OperationalError:  # a read-only database opened without the table
        return None
    return orjson.loads(body) if body else None


def overview(store: Store) -> dict[str, Any]:
    """The overview, from `overview_cache` when the database has not changed since it was computed;
    otherwise computed now and stored (older entries dropped). A read-only database just computes."""
    sig = signature(store)
    cached = load_cached(store, sig)
    if cached is not None:
        return cached
    started = _dt.datetime.now(_dt.timezone.utc)
    data = compute_overview(store)
    seconds = (_dt.datetime.now(_dt.timezone.utc) - started).total_seconds()
    try:
        with store.transaction() as conn:
            conn.execute("DELETE FROM overview_cache")
            conn.execute(
                "INSERT INTO overview_cache(signature, computed_at, seconds, body) VALUES (?, ?, ?, ?)",
                (sig, started.isoformat(timespec="seconds"), seconds, orjson.dumps(data).decode()),
            )
    except sqlite3.OperationalError:
        pass
    return data
