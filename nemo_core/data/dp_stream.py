"""Every decision point a selection holds, streamed in store order with bounded memory.

What exports read (`export.py`): at 1.2 M decision points nothing may be held whole. The reader walks the
table in rowid order, one query per batch of `BATCH` rows, and reads each batch's conversations with one
more query, each decompressed and parsed once however many of its decision points the batch holds (a
conversation's points are stored next to each other, so that is nearly always once in all). Memory is one
batch of rows and its conversations, whatever the size of the selection.

The batch query continues from the last rowid seen (`dp.rowid > ?`) and is told not to use any index
(`NOT INDEXED`): with `split = ?` SQLite would otherwise walk the split index and sort every matching row
again for each batch to honour `ORDER BY rowid`, which is quadratic. Scanning by rowid, the whole selection
costs one pass over the table whatever the filter; the rowid itself still starts each batch where the
previous one stopped.

A sample (`sample=N, seed=S`) draws N of the selection's rowids exactly as `run-model --sample-seed` draws
its ids (`model_runner.select_ids`: `random.Random(seed).sample` over the rowids in store order), then reads
them in rowid order. The rowids are held for the draw (8 bytes each, in an array).

A selection with `run_id` holds only the decision points that run has a prediction for (a run export).

Batches come out raw (`RawBatch`: rows and compressed conversation bodies), so an export can hand them to
worker processes; `iter_decision_points` turns them into `DecisionPoint`s with `DecisionPoint.from_raw`, the
constructor `store.get` uses, so a streamed decision point is exactly the one `show --json` prints.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .decision_point import DecisionPoint
from .extract import FLAGS
from .filters import DecisionPointFilter
from .records import normalise_tools
from .store import Store, decompress_json

BATCH = 1000
_ROW_COLUMNS = ("rowid", "id", "split", "conversation_uuid", "conversation_id", "turn_index", "assistant_turn",
                "action_type", "ungradeable_reason")
_SELECT = ", ".join(f"dp.{c}" for c in _ROW_COLUMNS) + ", " + ", ".join(f"dp.flag_{n}" for n in FLAGS)
_IN_RUN = "EXISTS (SELECT 1 FROM predictions AS p WHERE p.run_id = ? AND p.dp_id = dp.id)"


@dataclass(frozen=True)
class Selection:
    """What to stream: a filter, optionally a seeded sample of `sample` of its decision points, optionally
    only those with a prediction in run `run_id`."""

    filter: DecisionPointFilter = field(default_factory=DecisionPointFilter)
    sample: int | None = None
    seed: int | None = None
    run_id: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        where, params = self.filter.where()
        if self.run_id is not None:
            where, params = f"{where} AND {_IN_RUN}", [*params, int(self.run_id)]
        return where, params

    def describe(self) -> dict[str, Any]:
        """The selection as plain data (an export's report says what it holds)."""
        return {"filter": self.filter.to_query(), "sample": self.sample, "seed": self.seed, "run_id": self.run_id}


@dataclass
class RawBatch:
    """One batch as read: decision point rows (dicts, `flags` a list) in rowid order, and the compressed
    bodies of their conversations by conversation id (body, source file, source line)."""

    rows: list[dict[str, Any]]
    bodies: dict[int, tuple[bytes, str | None, int | None]]


def selection_rowids(store: Store, selection: Selection) -> array:
    """The rowids a selection holds, in rowid order; with `sample`, the seeded draw (see the docstring)."""
    if selection.run_id is None:
        rowids = store.rowids(selection.filter)  # index-driven, the same order `run-model` draws from
    else:
        where, params = selection.where()
        rowids = [r["rowid"] for r in store.query(
            f"SELECT dp.rowid AS rowid FROM decision_points AS dp WHERE {where} ORDER BY dp.rowid", params)]
    if selection.sample is not None and selection.sample < len(rowids):
        rowids = sorted(random.Random(selection.seed).sample(rowids, selection.sample))
    return array("q", rowids)


def count(store: Store, selection: Selection) -> int:
    """How many decision points the selection streams (a progress bar's total)."""
    if selection.run_id is None:
        total = store.count(selection.filter)
    else:
        where, params = selection.where()
        total = store.scalar(f"SELECT count(*) FROM decision_points AS dp WHERE {where}", params) or 0
    return min(total, selection.sample) if selection.sample is not None else total


def _with_flags(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["flags"] = [name for name in FLAGS if row.pop(f"flag_{name}")]
    return rows


def _row_batches(store: Store, selection: Selection, batch: int) -> Iterator[list[dict[str, Any]]]:
    if selection.sample is not None:
        rowids = selection_rowids(store, selection)
        names = [*_ROW_COLUMNS, *(f"flag_{n}" for n in FLAGS)]
        for start in range(0, len(rowids), batch):
            rows = store.fetch_in(f"SELECT {_SELECT} FROM decision_points AS dp WHERE dp.rowid IN ({{marks}})",
                                  rowids[start:start + batch].tolist())
            yield _with_flags(sorted((dict(zip(names, r)) for r in rows), key=lambda r: r["rowid"]))
        return
    where, params = selection.where()
    last = 0
    while True:
        rows = store.query(f"SELECT {_SELECT} FROM decision_points AS dp NOT INDEXED WHERE dp.rowid > ? AND {where} "
                           "ORDER BY dp.rowid LIMIT ?", [last, *params, batch])
        if not rows:
            return
        last = rows[-1]["rowid"]
        yield _with_flags(rows)


def iter_raw_batches(store: Store, selection: Selection, *, batch: int = BATCH) -> Iterator[RawBatch]:
    """The selection in rowid order, a batch at a time, conversations still compressed."""
    for rows in _row_batches(store, selection, batch):
        conv_ids = sorted({r["conversation_id"] for r in rows})
        bodies = {conv_id: (body, source_file, source_line) for conv_id, body, source_file, source_line in store.fetch_in(
            "SELECT id, body, source_file, source_line FROM conversations WHERE id IN ({marks})", conv_ids)}
        yield RawBatch(rows, bodies)


def decision_points(raw: RawBatch) -> Iterator[tuple[DecisionPoint, dict[str, Any]]]:
    """A raw batch's decision points, each with its parsed conversation (`{"raw", "source_file",
    "source_line"}`): every conversation decompressed, parsed and its tools normalised once."""
    convs: dict[int, tuple[dict[str, Any], Any]] = {}
    for row in raw.rows:
        conv_id = row["conversation_id"]
        if conv_id not in convs:
            body, source_file, source_line = raw.bodies[conv_id]
            conv = {"raw": decompress_json(body), "source_file": source_file, "source_line": source_line}
            convs[conv_id] = (conv, normalise_tools(conv["raw"].get("tools")))
        conv, toolset = convs[conv_id]
        yield DecisionPoint.from_raw(row, conv, toolset), conv


def iter_decision_points(store: Store, selection: Selection, *, batch: int = BATCH,
                         on_batch: Callable[[int], None] | None = None) -> Iterator[DecisionPoint]:
    """Every selected decision point in rowid order (see the module docstring); `on_batch(n)` after each
    batch of n (a progress bar)."""
    for raw in iter_raw_batches(store, selection, batch=batch):
        for dp, _conv in decision_points(raw):
            yield dp
        if on_batch is not None:
            on_batch(len(raw.rows))
