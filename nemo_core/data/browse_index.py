"""Browse at full scale: the decision points' filter and sort columns held in memory, so that any filter ×
sort × page of the Browse page costs a few vector operations, not a walk over every skipped row.

Why not SQL indexes with keyset (seek) pagination: Browse offers 7 filter kinds (and their combinations)
× 5 sorts × 2 directions × any page. An SQLite B-tree cannot count, so "page N" or "the last page" still
walks every row before it; only an index whose equality prefix is exactly the filter and whose next column
is the sort key walks them cheaply, which needs an index per filter × sort. Measured at 1.2 M decision
points: a covering (split, action type, context length) index answers offset 280,000 in 12 ms of CPU, but a
wide covering index led by the sort key takes 130-340 ms of CPU at half depth for a flag, action type or
text filter, and each extra index costs 2-3 s of CPU at ingest. Here every filter is a boolean mask over
one array per column (under a millisecond each), a sort is a stored permutation, and a page is a slice of
`order[mask[order]]`: 5-15 ms for every cell, the exact count included.

What it holds, in rowid order (1.2 M rows: about 60 MB): rowid, conversation id, split / action type /
expected tool as codes (the tool codes follow SQLite's own ORDER BY, NULL first), the flag bits, number of
tools, turn index, context length; and per sort the ascending permutation by (key, rowid), which is
exactly SQLite's `ORDER BY key, rowid` (descending is the same list reversed, NULLs last as in SQLite).
Text search asks the FTS table for the matching conversation ids (about 75 ms for a word in 98% of the
conversations) and masks their decision points; a first page sorted by id walks the FTS order instead and
stops at the page.

It mirrors `DecisionPointFilter.where()` and `filters.order_by()` exactly (tests compare pages, counts and
neighbours with the SQL on every combination); a filter it does not handle (`conversation_uuid`) is
answered by SQL. Decision points are only ever appended, so an index is valid for one `max(rowid)`; it is
stored in `browse_index` (about 50 MB at full scale) so a new process loads it instead of rebuilding it
(about 2 s of CPU at 1.2 M rows; the ingest command builds it once at the end).
"""

from __future__ import annotations

import datetime as _dt
import io
import sqlite3
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .extract import FLAGS
from .filters import SORTS, BadFilter, DecisionPointFilter, fts_query

INDEX_VERSION = 1

# The filter fields the index answers; a filter that sets any other field goes to SQL (a test checks that
# these two sets cover every field of DecisionPointFilter, so a new field cannot be silently ignored).
HANDLED_FIELDS = frozenset({"split", "action_type", "tool", "text", "flags", "exclude_flags", "min_tools",
                            "max_tools", "min_turn", "max_turn"})
SQL_ONLY_FIELDS = frozenset({"conversation_uuid"})
_VALUE_COLUMNS = ("n_tools", "turn_index", "context_chars")
_SORT_COLUMN = {"turn_index": "turn_index", "context_chars": "context_chars", "n_tools": "n_tools",
                "expected_tool": "tool"}
_FLAG_BIT = {name: 1 << i for i, name in enumerate(FLAGS)}  # flag = 1 in the low byte, flag = 0 in the next
WALK_LIMIT = 5_000  # a text search's rows up to this far into the id order are found by walking the FTS order
SCAN_LIMIT = 5_000  # a page ending this near either end of a sort is found by scanning its permutation
_MASKS_KEPT, _ORDERS_KEPT, _TEXTS_KEPT = 16, 4, 16


def supports(flt: DecisionPointFilter) -> bool:
    """Whether the index can answer this filter (every field it sets is one the index handles)."""
    return all(getattr(flt, name) in (None, "", ()) for name in SQL_ONLY_FIELDS)


def filter_key(flt: DecisionPointFilter) -> tuple:
    """A hashable key for a filter (its URL form), for the caches."""
    return tuple(sorted(flt.to_query().items()))


@dataclass(eq=False)
class BrowseIndex:
    """The columns (numpy arrays, rowid order) and sort permutations; see the module docstring."""

    max_rowid: int | None
    rowid: np.ndarray
    conversation_id: np.ndarray
    split: np.ndarray
    action_type: np.ndarray
    tool: np.ndarray
    flags: np.ndarray
    n_tools: np.ndarray
    turn_index: np.ndarray
    context_chars: np.ndarray
    splits: tuple[str, ...]
    action_types: tuple[str, ...]
    tools: tuple[str, ...]
    orders: dict[str, np.ndarray]
    seconds: float = 0.0
    _lock: Any = field(default_factory=threading.Lock, repr=False)
    _masks: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _orders: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _texts: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _ranks: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._pos = np.int32 if len(self.rowid) < 2**31 else np.int64  # positions: int32 halves the memory
        self._codes = {column: {name: i for i, name in enumerate(labels)} for column, labels in
                       (("split", self.splits), ("action_type", self.action_types), ("tool", self.tools))}
        self._conversations_sorted = bool(len(self.conversation_id) < 2
                                          or np.all(self.conversation_id[1:] >= self.conversation_id[:-1]))

    @property
    def n_rows(self) -> int:
        return int(len(self.rowid))

    # ---- filters -----------------------------------------------------------------------------
    def mask(self, flt: DecisionPointFilter, text: "TextSearch | None") -> np.ndarray | None:
        """The rows the filter keeps as a boolean array (None: every row), cached per filter."""
        flt.validate()
        key = filter_key(flt)
        with self._lock:
            if key in self._masks:
                self._masks.move_to_end(key)
                return self._masks[key]
        mask = self._and(self._column_masks(flt) + self._text_masks(flt, text))
        _remember(self._masks, key, mask, _MASKS_KEPT, self._lock)
        return mask

    def _column_masks(self, flt: DecisionPointFilter) -> list[np.ndarray]:
        """One boolean array per condition of `where()` except text, in the same order."""
        out: list[np.ndarray] = []
        for column, value in (("split", flt.split), ("action_type", flt.action_type), ("tool", flt.tool)):
            if value:
                code = self._codes[column].get(value)
                out.append(np.zeros(self.n_rows, dtype=bool) if code is None else getattr(self, column) == code)
        include = sum(_FLAG_BIT[name] for name in set(flt.flags))
        exclude = sum(_FLAG_BIT[name] << 8 for name in set(flt.exclude_flags))
        for bits in (include, exclude):
            if bits:
                out.append((self.flags & bits) == bits)
        for column, op, value in (("n_tools", ">=", flt.min_tools), ("n_tools", "<=", flt.max_tools),
                                  ("turn_index", ">=", flt.min_turn), ("turn_index", "<=", flt.max_turn)):
            if value is not None:
                values = getattr(self, column)
                out.append(values >= int(value) if op == ">=" else values <= int(value))
        return out

    def _text_masks(self, flt: DecisionPointFilter, text: "TextSearch | None") -> list[np.ndarray]:
        query = fts_query(flt.text) if flt.text else None
        if query is None:
            return []
        if text is None:
            raise BadFilter("this index has no full-text search attached")
        return [self._conversation_mask(self._matches(query, text))]

    def _matches(self, query: str, text: "TextSearch") -> np.ndarray:
        with self._lock:
            if query in self._texts:
                self._texts.move_to_end(query)
                return self._texts[query]
        ids = text.matches(query)
        _remember(self._texts, query, ids, _TEXTS_KEPT, self._lock)
        return ids

    def _conversation_mask(self, conversation_ids: np.ndarray) -> np.ndarray:
        """The rows whose conversation is one of these ids."""
        if not len(conversation_ids) or not self.n_rows:
            return np.zeros(self.n_rows, dtype=bool)
        top = int(max(self.conversation_id.max(), conversation_ids.max()))
        if top > 8 * (self.n_rows + len(conversation_ids)) or int(conversation_ids.min()) < 0:
            return np.isin(self.conversation_id, conversation_ids)  # sparse ids: no lookup table that large
        table = np.zeros(top + 1, dtype=bool)
        table[conversation_ids] = True
        return table[self.conversation_id]

    def _and(self, masks: list[np.ndarray]) -> np.ndarray | None:
        if not masks:
            return None
        out = masks[0].copy()
        for m in masks[1:]:
            out &= m
        return out

    # ---- counting and paging -----------------------------------------------------------------
    def count(self, flt: DecisionPointFilter, text: "TextSearch | None") -> int:
        mask = self.mask(flt, text)
        return self.n_rows if mask is None else int(np.count_nonzero(mask))

    def ordered(self, flt: DecisionPointFilter, text: "TextSearch | None", sort: str) -> np.ndarray:
        """Positions of the rows the filter keeps, in ascending (sort key, rowid) order (cached)."""
        _check_sort(sort)
        key = (filter_key(flt), sort)
        with self._lock:
            if key in self._orders:
                self._orders.move_to_end(key)
                return self._orders[key]
        mask = self.mask(flt, text)
        order = self.orders.get(sort)
        if order is None:  # by rowid: the arrays are in rowid order
            out = np.arange(self.n_rows, dtype=self._pos) if mask is None else np.flatnonzero(mask).astype(self._pos)
        else:
            out = order if mask is None else order[mask[order]]
        _remember(self._orders, key, out, _ORDERS_KEPT, self._lock)
        return out

    def page_rowids(self, flt: DecisionPointFilter, text: "TextSearch | None", *, sort: str = "id",
                    descending: bool = False, offset: int = 0, limit: int = 50) -> list[int]:
        """The rowids of one page, in page order: `ORDER BY key, rowid LIMIT limit OFFSET offset` (a negative
        offset counts as 0 and a negative limit as no limit, as in SQLite)."""
        offset = max(0, int(offset))
        stop = None if int(limit) < 0 else offset + int(limit)
        walked = self._walk_text(flt, text, sort, descending, stop)
        if walked is None:
            walked = self._scan_order(flt, text, sort, descending, stop)
        if walked is not None:
            return [int(r) for r in self.rowid[walked[offset:stop]]]
        positions = self.ordered(flt, text, sort)
        if descending:
            n = len(positions)
            lo = max(0, n - (n if stop is None else stop))
            chosen = positions[lo:max(0, n - offset)][::-1]
        else:
            chosen = positions[offset:stop]
        return [int(r) for r in self.rowid[chosen]]

    def _walk_text(self, flt, text, sort: str, descending: bool, stop: int | None) -> np.ndarray | None:
        """For a text search sorted by id whose page lies near the start: positions found by walking the
        FTS table in rowid (= conversation id) order until the page is full, so the first page of a common
        word reads a few hundred matches, not all of them. None when that does not apply (another sort, a
        deep page, matches already known, conversation ids not ascending with rowids)."""
        query = fts_query(flt.text) if flt.text else None
        if (query is None or text is None or sort != "id" or stop is None or stop > WALK_LIMIT
                or not self._conversations_sorted):
            return None
        with self._lock:
            if filter_key(flt) in self._masks or query in self._texts:
                return None
        others = self._and(self._column_masks(flt))
        found: list[np.ndarray] = []
        n_found, after, chunk = 0, None, 64
        while n_found < stop:
            ids = text.chunk(query, after=after, descending=descending, limit=chunk)
            if not len(ids):
                break
            after, chunk = int(ids[-1]), min(chunk * 4, 4096)
            positions = self._positions_of_conversations(np.sort(ids))
            if others is not None:
                positions = positions[others[positions]]
            found.append(positions[::-1] if descending else positions)
            n_found += len(positions)
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)

    def _scan_order(self, flt, text, sort: str, descending: bool, stop: int | None) -> np.ndarray | None:
        """For a page near either end of a sort other than id, whose filtered order is not cached yet: the
        positions in page order found by scanning the sort's permutation from that end in growing chunks until
        the page is full, instead of filtering all of it (`ordered`: 1.2 M gathers, 10 ms on an idle core,
        several times that on a busy one) for the first page of every new filter and sort. None when that
        does not apply (id order, no filter, a deep page, the order already cached)."""
        order = self.orders.get(sort)
        if order is None or stop is None or stop > SCAN_LIMIT:
            return None
        with self._lock:
            if (filter_key(flt), sort) in self._orders:
                return None
        mask = self.mask(flt, text)
        if mask is None:
            return None
        n, start, chunk, found, n_found = self.n_rows, 0, max(16 * stop, 8192), [], 0
        while n_found < stop and start < n:
            end = min(n, start + chunk)
            part = order[n - end:n - start][::-1] if descending else order[start:end]
            part = part[mask[part]]
            found.append(part)
            n_found += len(part)
            start, chunk = end, chunk * 4
        return np.concatenate(found) if found else np.zeros(0, dtype=self._pos)

    def _positions_of_conversations(self, ids: np.ndarray) -> np.ndarray:
        """Ascending positions of every row of these conversations (ids ascending; conversation ids are
        ascending with rowids, checked in `__post_init__`)."""
        lo = np.searchsorted(self.conversation_id, ids, side="left")
        hi = np.searchsorted(self.conversation_id, ids, side="right")
        lengths = hi - lo
        total = int(lengths.sum())
        if not total:
            return np.zeros(0, dtype=np.int64)
        starts = np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
        return starts + np.arange(total, dtype=np.int64)

    def neighbours(self, rowid: int, flt: DecisionPointFilter, text: "TextSearch | None", *, sort: str = "id",
                   descending: bool = False) -> tuple[int | None, int | None]:
        """The rowids before and after `rowid` in the filtered, sorted list (where it would stand when the
        filter does not keep it), as `Store.neighbour_in_filter` defines them."""
        at = int(np.searchsorted(self.rowid, rowid))
        if at >= self.n_rows or int(self.rowid[at]) != int(rowid):
            return None, None
        positions = self.ordered(flt, text, sort)
        rank = self._rank(sort)
        ranks = positions if rank is None else rank[positions]
        mine = at if rank is None else int(rank[at])
        lo = int(np.searchsorted(ranks, mine, side="left"))
        hi = int(np.searchsorted(ranks, mine, side="right"))
        smaller = int(self.rowid[positions[lo - 1]]) if lo > 0 else None
        larger = int(self.rowid[positions[hi]]) if hi < len(positions) else None
        return (larger, smaller) if descending else (smaller, larger)

    def _rank(self, sort: str) -> np.ndarray | None:
        """Each row's place in the ascending order of a sort (None for id: the position itself)."""
        order = self.orders.get(sort)
        if order is None:
            return None
        with self._lock:
            rank = self._ranks.get(sort)
        if rank is None:
            rank = np.empty(self.n_rows, dtype=self._pos)
            rank[order] = np.arange(self.n_rows, dtype=self._pos)
            with self._lock:
                self._ranks[sort] = rank
        return rank


def _check_sort(sort: str) -> None:
    if sort not in SORTS:
        raise BadFilter(f"unknown sort {sort!r}; expected one of {', '.join(SORTS)}")


def _remember(cache: OrderedDict, key: Any, value: Any, keep: int, lock: Any) -> None:
    with lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > keep:
            cache.popitem(last=False)


# ---- full-text search --------------------------------------------------------------------------------
@dataclass
class TextSearch:
    """The conversations an FTS query matches, read through the store's connection under its lock."""

    conn: sqlite3.Connection
    lock: Any

    def matches(self, query: str) -> np.ndarray:
        """Every matching conversation id, ascending (one `group_concat` string: 5× faster than fetching a
        row per id)."""
        with self.lock:
            text = self.conn.execute("SELECT group_concat(rowid) FROM conversation_fts WHERE conversation_fts "
                                     "MATCH ?", (query,)).fetchone()[0]
        return _ints(text)

    def chunk(self, query: str, *, after: int | None, descending: bool, limit: int) -> np.ndarray:
        """The next `limit` matching conversation ids after `after` in rowid order (or before it, descending)."""
        cond, params = ("", []) if after is None else (f" AND rowid {'<' if descending else '>'} ?", [after])
        sql = (f"SELECT group_concat(rowid) FROM (SELECT rowid FROM conversation_fts WHERE conversation_fts "
               f"MATCH ?{cond} ORDER BY rowid {'DESC' if descending else 'ASC'} LIMIT ?)")
        with self.lock:
            text = self.conn.execute(sql, [query, *params, int(limit)]).fetchone()[0]
        return _ints(text)


def _ints(text: str | None) -> np.ndarray:
    """Comma-separated integers (a `group_concat`) as an array, in their order."""
    if not text:
        return np.zeros(0, dtype=np.int64)
    return np.fromstring(text, dtype=np.int64, sep=",")


# ---- building, storing, loading ----------------------------------------------------------------------
def _labels(conn: sqlite3.Connection) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Splits, action types and expected tools present, each in SQLite's own ORDER BY (tools: the codes'
    order, so sorting by code is sorting as SQLite does)."""
    pairs = conn.execute("SELECT DISTINCT split, action_type FROM decision_points").fetchall()
    splits = tuple(sorted({p[0] for p in pairs}))
    action_types = tuple(sorted({p[1] for p in pairs}))
    tools = tuple(r[0] for r in conn.execute(
        "SELECT DISTINCT expected_tool FROM decision_points WHERE expected_tool IS NOT NULL ORDER BY expected_tool"))
    return splits, action_types, tools


def _case(column: str, labels: tuple[str, ...]) -> tuple[str, list[str]]:
    if not labels:
        return "-1", []
    return f"CASE {column} " + " ".join(f"WHEN ? THEN {i}" for i in range(len(labels))) + " ELSE -1 END", list(labels)


def build(conn: sqlite3.Connection, lock: Any) -> BrowseIndex:
    """Read the columns from `decision_points` in one consistent snapshot (one table scan: each column as
    one `group_concat` string, far cheaper than a Python tuple per row) and sort them."""
    started = time.process_time()
    with lock:
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")  # one snapshot for every read below
        try:
            max_rowid = conn.execute("SELECT max(rowid) FROM decision_points").fetchone()[0]
            splits, action_types, tools = _labels(conn)
            columns = _read_columns(conn, splits, action_types)
            tool = _read_tool_codes(conn, tools, columns["rowid"])
        finally:
            if own:
                conn.execute("COMMIT")
    index = BrowseIndex(max_rowid=max_rowid, tool=tool, splits=splits, action_types=action_types, tools=tools,
                        orders={}, **columns)
    index.orders.update(sort_orders(index))
    index.seconds = time.process_time() - started
    return index


def _read_columns(conn: sqlite3.Connection, splits, action_types) -> dict[str, np.ndarray]:
    split_sql, split_params = _case("split", splits)
    type_sql, type_params = _case("action_type", action_types)
    flag_sql = " | ".join(f"((flag_{name} = 1) << {i}) | ((flag_{name} = 0) << {i + 8})" for i, name in enumerate(FLAGS))
    exprs = {"rowid": "rowid", "conversation_id": "conversation_id", "split": split_sql, "action_type": type_sql,
             "flags": f"({flag_sql})", **{c: c for c in _VALUE_COLUMNS}}
    row = conn.execute("SELECT " + ", ".join(f"group_concat({e})" for e in exprs.values()) + " FROM decision_points",
                       split_params + type_params).fetchone()
    raw = {name: _ints(text) for name, text in zip(exprs, row)}
    order = np.argsort(raw["rowid"], kind="stable")
    if not np.all(order == np.arange(len(order))):  # the scan is in rowid order; never rely on it
        raw = {name: values[order] for name, values in raw.items()}
    small = {"split": np.int8, "action_type": np.int8, "flags": np.int16}
    return {name: values.astype(small[name]) if name in small else _narrow(values) for name, values in raw.items()}


def _read_tool_codes(conn: sqlite3.Connection, tools: tuple[str, ...], rowid: np.ndarray) -> np.ndarray:
    """Each row's expected tool as its place in `tools` (-1 for NULL), one rowid list per tool."""
    code = {name: i for i, name in enumerate(tools)}
    out = np.full(len(rowid), -1, dtype=np.int32)
    for name, text in conn.execute("SELECT expected_tool, group_concat(rowid) FROM decision_points "
                                   "WHERE expected_tool IS NOT NULL GROUP BY expected_tool"):
        out[np.searchsorted(rowid, _ints(text))] = code[name]
    return out


def _narrow(values: np.ndarray) -> np.ndarray:
    """int32 when every value fits (half the memory), else int64."""
    info = np.iinfo(np.int32)
    if not len(values) or (values.min() >= info.min and values.max() <= info.max):
        return values.astype(np.int32)
    return values


def sort_orders(index: BrowseIndex) -> dict[str, np.ndarray]:
    """Per sort (not id), the positions in ascending (key, rowid) order: a stable sort of arrays that are
    in rowid order breaks ties by rowid, as `filters.order_by` does."""
    dtype = np.int32 if index.n_rows < 2**31 else np.int64
    return {sort: np.argsort(getattr(index, column), kind="stable").astype(dtype)
            for sort, column in _SORT_COLUMN.items()}


_ARRAYS = ("rowid", "conversation_id", "split", "action_type", "tool", "flags", *_VALUE_COLUMNS)


def save(conn: sqlite3.Connection, lock: Any, index: BrowseIndex) -> None:
    """Store the index (replacing any older one) so the next process loads it instead of building it."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: getattr(index, name) for name in _ARRAYS},
             **{f"order_{sort}": order for sort, order in index.orders.items()})
    labels = orjson.dumps({"splits": index.splits, "action_types": index.action_types, "tools": index.tools})
    with lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM browse_index")
            conn.execute("INSERT INTO browse_index(id, version, max_rowid, n_rows, labels, built_at, seconds, body) "
                         "VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                         (INDEX_VERSION, index.max_rowid, index.n_rows, labels.decode(),
                          _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), index.seconds,
                          buffer.getvalue()))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def load(conn: sqlite3.Connection, lock: Any, max_rowid: int | None) -> BrowseIndex | None:
    """The stored index when it was built for this `max(rowid)` by this version, else None. Arrays are
    read without pickle (a database file may come from anyone)."""
    with lock:
        try:  # the 50 MB body only when it is the right one
            row = conn.execute("SELECT version, max_rowid, n_rows, labels, seconds, body FROM browse_index "
                               "WHERE id = 1 AND version = ? AND max_rowid IS ?", (INDEX_VERSION, max_rowid)).fetchone()
        except sqlite3.OperationalError:  # a database from before this table (opened read-only)
            return None
    if row is None:
        return None
    try:
        labels = orjson.loads(row[3])
        with np.load(io.BytesIO(row[5]), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in _ARRAYS}
            orders = {sort: npz[f"order_{sort}"] for sort in _SORT_COLUMN}
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, orjson.JSONDecodeError):
        return None  # damaged, or not ours: build it again
    if any(len(a) != row[2] or a.dtype.kind not in "iu" for a in (*arrays.values(), *orders.values())):
        return None
    return BrowseIndex(max_rowid=row[1], splits=tuple(labels["splits"]), action_types=tuple(labels["action_types"]),
                       tools=tuple(labels["tools"]), orders=orders, seconds=row[4], **arrays)

