"""Browse's in-memory index (browse_index.py): every count, page and neighbour equals what SQL's
`ORDER BY key, rowid LIMIT/OFFSET` gives, on the demo database and on a generated one full of ties and NULLs;
it is stored, reloaded, rebuilt when rows are added, and never asks SQLite to skip rows."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app_runner import run_app_page
from nemo_core.data import browse_index
from nemo_core.data.compression import compress
from nemo_core.data.extract import FLAGS
from nemo_core.data.filters import SORTS, BadFilter, DecisionPointFilter
from nemo_core.data.store import PreparedConversation, Store

WORDS = ("alpha", "beta", "gamma", "delta", "café", "東京")
# Tool names whose SQLite order (bytes of UTF-8) is easy to get wrong: case, accents, CJK, the empty name.
TOOLS = ("get_weather", "Get_weather", "book", "book_flight", "_private", "é_tool", "東京_tool", "z", "")


def tie_rows(uuid: str, split: str, rng: random.Random) -> list[tuple]:
    """Decision point rows (extract.DP_COLUMNS order) whose sort columns take few values: many ties."""
    rows = []
    for turn in range(1, rng.randint(1, 6) * 2, 2):
        call = rng.random() < 0.6
        tool = rng.choice(TOOLS) if call and rng.random() < 0.85 else None  # calls without a name: NULL too
        flags = [int(rng.random() < p) for p in (0.3, 0.2, 0.1, 0.15, 0.1, 0.05, 0.1)]
        rows.append((f"{split}/{uuid}/{turn}", split, uuid, rng.choice([1, 3, 3, 5]), turn // 2,
                     "function_call" if call else "message", tool, None, 1, rng.choice([0, 2, 2, 7]),
                     rng.choice([10, 10, 50, 99]), 5, "preview", None, *flags))
    return rows


def build_tie_store(path, n_conversations: int = 160, seed: int = 7) -> Store:
    rng = random.Random(seed)
    store = Store.open(path)
    items = []
    for i in range(n_conversations):
        split = "interactive_agent" if i % 5 == 0 else "tool_calling"
        uuid = f"u{i:04d}"
        text = " ".join(rng.sample(WORDS, rng.randint(0, 3)))
        rows = tie_rows(uuid, split, rng) if i % 17 else []  # a few conversations with no decision point
        items.append(PreparedConversation(split=split, uuid=uuid, source_file="gen.jsonl", source_line=i + 1,
                                          n_messages=12, body=compress(b"{}"), rows=rows, fts_text=text))
    for start in range(0, len(items), 40):  # several batches, as an ingest writes them
        store.insert_conversations(items[start:start + 40])
    return store


@pytest.fixture(scope="module")
def tie_store(tmp_path_factory):
    store = build_tie_store(tmp_path_factory.mktemp("ties") / "ties.db")
    yield store
    store.close()


@pytest.fixture(scope="module")
def demo_store_ro(demo_db_master):
    store = Store.open(demo_db_master, readonly=True)
    yield store
    store.close()


def filters():
    maybe = lambda values: st.one_of(st.none(), st.sampled_from(values))  # noqa: E731
    return st.builds(
        DecisionPointFilter,
        split=maybe(["tool_calling", "interactive_agent"]),
        action_type=maybe(["function_call", "message"]),
        tool=maybe([*TOOLS, "get_weather ", "missing_tool", "get_weather_forecast", "book_appointment"]),
        text=maybe([*WORDS, "alpha beta", "gamma café", "weather", "the weather", "nothing", "?!", "ALPHA"]),
        flags=st.lists(st.sampled_from(list(FLAGS)), max_size=2, unique=True).map(tuple),
        exclude_flags=st.lists(st.sampled_from(list(FLAGS)), max_size=2, unique=True).map(tuple),
        min_tools=maybe([0, 2, 3, 7]), max_tools=maybe([0, 2, 6, 40]),
        min_turn=maybe([0, 1, 3, 4]), max_turn=maybe([1, 3, 9]),
    )


def sql_and_index(store: Store, call):
    store.use_browse_index = False
    try:
        expected = call()
    finally:
        store.use_browse_index = True
    return expected, call()


def check_one(store: Store, flt: DecisionPointFilter, sort: str, descending: bool, where: float, limit: int) -> None:
    expected_n, n = sql_and_index(store, lambda: store.count(flt))
    assert n == expected_n
    last_page_start = max(0, (n - 1) // 50 * 50)
    for offset in (0, int(where * n), max(0, n - 1), n, n + 3, last_page_start, -4):
        page = lambda: store.page(flt, sort=sort, descending=descending, offset=offset, limit=limit)  # noqa: E731
        expected, got = sql_and_index(store, page)
        assert got == expected, (flt, sort, descending, offset, limit)
        saved = browse_index.SCAN_LIMIT
        browse_index.SCAN_LIMIT = 0  # the filtered order materialised, as for a deep page at full scale
        try:
            assert page() == expected, (flt, sort, descending, offset, limit, "materialised")
        finally:
            browse_index.SCAN_LIMIT = saved


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=filters(), sort=st.sampled_from(list(SORTS)), descending=st.booleans(),
       where=st.floats(0, 1), limit=st.sampled_from([1, 7, 50, -1]))
def test_pages_and_counts_equal_sql_on_ties_and_nulls(tie_store, flt, sort, descending, where, limit):
    check_one(tie_store, flt, sort, descending, where, limit)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=filters(), sort=st.sampled_from(list(SORTS)), descending=st.booleans(),
       where=st.floats(0, 1), limit=st.sampled_from([1, 13, 50]))
def test_pages_and_counts_equal_sql_on_the_demo(demo_store_ro, flt, sort, descending, where, limit):
    check_one(demo_store_ro, flt, sort, descending, where, limit)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=filters(), sort=st.sampled_from(list(SORTS)), descending=st.booleans(), seed=st.integers(0, 10**6))
def test_neighbours_equal_sql_and_walk_the_pages(tie_store, flt, sort, descending, seed):
    """Previous / next around a decision point (in the list or not) are the SQL's, and walking `next`
    from the first row of the list visits exactly the rows of its pages, in order."""
    all_ids = tie_store.ids()
    for dp_id in random.Random(seed).sample(all_ids, 6):
        expected, got = sql_and_index(tie_store, lambda: tie_store.neighbour_in_filter(
            dp_id, flt, sort=sort, descending=descending))
        assert got == expected, (dp_id, flt, sort, descending)
    listed = [r["id"] for r in tie_store.page(flt, sort=sort, descending=descending, limit=-1)]
    walked = listed[:1]
    while walked and len(walked) <= len(listed):
        after = tie_store.neighbour_in_filter(walked[-1], flt, sort=sort, descending=descending)[1]
        if after is None:
            break
        walked.append(after)
    assert walked == listed


def test_the_generated_store_has_ties_and_nulls_in_every_sort_column(tie_store):
    rows = tie_store.page(limit=-1)
    assert len(rows) > 300
    for column in ("turn_index", "context_chars", "n_tools", "expected_tool"):
        assert Counter(r[column] for r in rows).most_common(1)[0][1] > 20  # ties
    assert any(r["expected_tool"] is None for r in rows) and any(r["expected_tool"] == "" for r in rows)
    assert any(r["action_type"] == "function_call" and r["expected_tool"] is None for r in rows)


def test_every_filter_field_is_handled_or_left_to_sql():
    names = {f.name for f in dataclasses.fields(DecisionPointFilter)}
    assert browse_index.HANDLED_FIELDS | browse_index.SQL_ONLY_FIELDS == names
    assert not browse_index.HANDLED_FIELDS & browse_index.SQL_ONLY_FIELDS


def test_a_filter_it_does_not_handle_is_answered_by_sql(demo_store):
    one = demo_store.page(limit=1)[0]
    flt = DecisionPointFilter(conversation_uuid=one["conversation_uuid"])
    assert not browse_index.supports(flt)
    expected, got = sql_and_index(demo_store, lambda: demo_store.page(flt, sort="context_chars", limit=-1))
    assert got == expected and one["id"] in [r["id"] for r in got]


def test_bad_filters_and_sorts_fail_as_the_sql_does(demo_store):
    with pytest.raises(BadFilter, match="unknown sort"):
        demo_store.page(DecisionPointFilter(), sort="preview")
    with pytest.raises(BadFilter, match="unknown split"):
        demo_store.count(DecisionPointFilter(split="train"))
    with pytest.raises(BadFilter, match="unknown sort"):
        demo_store.neighbour_in_filter(demo_store.ids()[3], DecisionPointFilter(), sort="nope")


# ---- the index never asks SQLite to walk rows ----------------------------------------------------------
def traced(store: Store, call) -> list[str]:
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        store.conn.set_trace_callback(None)
    return statements


def test_deep_pages_and_counts_skip_no_rows_in_sqlite(demo_store):
    """The cost of OFFSET grows with the offset (issue 17: seconds deep in a 1.2 M-row list): with the
    index, a page reads its rows by rowid and a count reads nothing but max(rowid)."""
    demo_store.browse_index()
    flt = DecisionPointFilter(split="tool_calling", exclude_flags=("parallel",), text="weather")
    n = demo_store.count(flt)
    some_id = demo_store.ids()[40]
    statements = traced(demo_store, lambda: (
        demo_store.count(flt),
        demo_store.page(flt, sort="context_chars", descending=True, offset=n - 3, limit=50),
        demo_store.page(DecisionPointFilter(), sort="expected_tool", offset=150, limit=50),
        demo_store.neighbour_in_filter(some_id, flt, sort="n_tools")))
    assert statements and not [s for s in statements if "OFFSET" in s.upper() or "count(" in s.lower()]
    assert not [s for s in statements if "ORDER BY" in s.upper()]


def test_first_page_of_a_text_search_by_id_walks_the_fts_order(tie_store):
    """Sorted by id, the first page of a common word reads matches in the FTS table's order until the page
    is full, not every match (and equals the SQL page)."""
    tie_store.browse_index()
    flt = DecisionPointFilter(text="alpha")
    tie_store._browse._texts.clear()
    tie_store._browse._masks.clear()
    for descending in (False, True):
        statements = traced(tie_store, lambda: tie_store.page(flt, descending=descending, limit=5))
        fts = [s for s in statements if "conversation_fts" in s]
        assert fts and all("LIMIT" in s for s in fts), fts
        expected, got = sql_and_index(tie_store, lambda: tie_store.page(flt, descending=descending, limit=5))
        assert got == expected


def test_a_page_near_either_end_of_a_new_filter_and_sort_scans_the_permutation(tie_store):
    """The first (or, descending, the last) pages of a filter and sort not seen yet come from scanning the
    sort's permutation until the page is full, not from filtering all of it; a deep page filters it once."""
    index = tie_store.browse_index()
    flt = DecisionPointFilter(split="tool_calling", exclude_flags=("parallel",))
    key = (browse_index.filter_key(flt), "context_chars")
    n = tie_store.count(flt)
    assert n > 60
    for descending in (False, True):
        index._orders.clear()
        for offset in (0, 50):
            expected, got = sql_and_index(tie_store, lambda: tie_store.page(
                flt, sort="context_chars", descending=descending, offset=offset, limit=10))
            assert got == expected and len(got) == 10
        assert key not in index._orders
    saved = browse_index.SCAN_LIMIT
    browse_index.SCAN_LIMIT = 20
    try:
        expected, got = sql_and_index(tie_store, lambda: tie_store.page(flt, sort="context_chars", offset=n - 5))
    finally:
        browse_index.SCAN_LIMIT = saved
    assert got == expected and len(got) == 5
    assert key in index._orders


def test_the_walk_is_not_used_when_conversation_ids_are_out_of_rowid_order(tmp_path):
    store = build_tie_store(tmp_path / "shuffled.db", n_conversations=40)
    first = store.query("SELECT * FROM decision_points ORDER BY rowid LIMIT 1")[0]
    first.pop("rowid")
    first["id"] = first["id"] + "0"  # a later row of the first conversation: out of order
    store.db["decision_points"].insert(first)
    assert not store.browse_index()._conversations_sorted
    flt = DecisionPointFilter(text=store.scalar("SELECT 'alpha'"))
    for descending in (False, True):
        expected, got = sql_and_index(store, lambda: store.page(flt, descending=descending, limit=4))
        assert got == expected
    store.close()


# ---- stored, reloaded, rebuilt -------------------------------------------------------------------------
def test_stored_then_loaded_by_a_new_process_without_rebuilding(demo_db, monkeypatch):
    store = Store.open(demo_db)
    built = store.browse_index()
    assert store.scalar("SELECT max_rowid FROM browse_index") == built.max_rowid
    store.close()

    def no_build(*_a, **_k):
        raise AssertionError("built again although a current index is stored")

    monkeypatch.setattr(browse_index, "build", no_build)
    again = Store.open(demo_db)
    loaded = again.browse_index()
    assert loaded is not built and loaded.n_rows == built.n_rows
    for name in ("rowid", "conversation_id", "split", "action_type", "tool", "flags", "n_tools", "turn_index",
                 "context_chars"):
        assert np.array_equal(getattr(loaded, name), getattr(built, name))
    assert loaded.tools == built.tools and set(loaded.orders) == set(built.orders)
    again.close()


def test_rows_added_make_a_new_index(tmp_path):
    store = build_tie_store(tmp_path / "grow.db", n_conversations=30)
    before = store.browse_index()
    n = store.count()
    rng = random.Random(3)
    more = [PreparedConversation(split="tool_calling", uuid=f"new{i}", source_file="x", source_line=i,
                                 n_messages=12, body=compress(b"{}"), rows=tie_rows(f"new{i}", "tool_calling", rng),
                                 fts_text="alpha zeta") for i in range(5)]
    store.insert_conversations(more)
    after = store.browse_index()
    assert after is not before and store.count() == n + sum(len(c.rows) for c in more)
    assert store.scalar("SELECT max_rowid FROM browse_index") == after.max_rowid
    expected, got = sql_and_index(store, lambda: store.page(DecisionPointFilter(text="zeta"), sort="n_tools",
                                                            descending=True, limit=-1))
    assert got == expected and len(got) == sum(len(c.rows) for c in more)
    store.close()


def test_while_an_ingest_adds_rows_sql_answers(demo_db):
    store = Store.open(demo_db)
    store.start_ingest(["x.jsonl"], "2025-01-01T00:00:00")  # this process: alive, so the ingest is running
    assert store.browse_index() is None
    expected, got = sql_and_index(store, lambda: store.page(DecisionPointFilter(split="tool_calling"), offset=5))
    assert got == expected and got
    store.close()


def test_a_read_only_database_gets_an_index_in_memory(demo_db):
    Store.open(demo_db).close()
    store = Store.open(demo_db, readonly=True)
    assert store.browse_index() is not None
    assert store.scalar("SELECT count(*) FROM browse_index") == 0
    store.close()


@pytest.mark.parametrize("damage", ["wrong_lengths", "garbage", "pickled"])
def test_a_damaged_stored_index_is_rebuilt(demo_db, damage):
    store = Store.open(demo_db)
    store.browse_index()
    if damage == "wrong_lengths":
        store.conn.execute("UPDATE browse_index SET n_rows = n_rows + 1")
    elif damage == "garbage":
        store.conn.execute("UPDATE browse_index SET body = x'00ff00ff'")
    else:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, rowid=np.array([object()], dtype=object))
        store.conn.execute("UPDATE browse_index SET body = ?", (buffer.getvalue(),))
    store.close()
    again = Store.open(demo_db)
    index = again.browse_index()
    assert index is not None and index.n_rows == again.n_decision_points()
    again.close()


def test_a_store_that_cannot_save_keeps_the_index_in_memory(demo_db, monkeypatch):
    store = Store.open(demo_db)

    def full_disk(*_a, **_k):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(browse_index, "save", full_disk)
    assert store.browse_index() is not None and store.count() == store.n_decision_points()
    store.close()


def test_the_ingest_command_builds_and_stores_the_index(tmp_path):
    from nemo_core.cli.main import main

    data = Path(__file__).resolve().parent / "data"
    db = tmp_path / "cli.db"
    assert main(["ingest", str(data / "tool_calling_shapes.jsonl"), "--db", str(db), "--quiet", "--workers", "1"]) == 0
    raw = sqlite3.connect(db)
    try:
        stored = raw.execute("SELECT max_rowid, n_rows, version FROM browse_index").fetchone()
        assert stored == (*raw.execute("SELECT max(rowid), count(*) FROM decision_points").fetchone(),
                          browse_index.INDEX_VERSION)
    finally:
        raw.close()


# ---- the pages: a shared link opens the same page; previous / next follow the list --------------------
def run_page(page: str, query: dict[str, str]):
    return run_app_page(page, query, timeout=60)


@pytest.mark.parametrize("query", [
    {"sort": "expected_tool", "page": "3"},
    {"split": "tool_calling", "text": "alpha", "sort": "context_chars", "desc": "1", "page": "2"},
    {"exclude_flags": "parallel,no_task_tools", "min_tools": "2", "sort": "turn_index", "page": "4"},
    {"action_type": "function_call", "sort": "expected_tool", "desc": "1", "page": "last"},
])
def test_a_shared_browse_link_opens_the_same_page(tie_store, monkeypatch, query):
    """Two people opening the same URL see the same 50 rows: the SQL page at that offset."""
    from ui.listing import PAGE_SIZE, ListState

    monkeypatch.setenv("NEMO_DB", str(tie_store.path))
    state = ListState.from_query({k: v for k, v in query.items() if k != "page"})
    n = tie_store.count(state.filter)
    page = max(1, -(-n // PAGE_SIZE)) if query["page"] == "last" else int(query["page"])
    query = {**query, "page": str(page)}
    tie_store.use_browse_index = False
    try:
        expected = [r["id"] for r in tie_store.page(state.filter, sort=state.sort, descending=state.descending,
                                                    offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)]
    finally:
        tie_store.use_browse_index = True
    assert expected
    for _visitor in range(2):
        at = run_page("app_pages/browse.py", query)
        assert list(at.dataframe[0].value["id"]) == expected
        assert f"page {page:,} of" in "\n".join(c.value for c in at.caption)


def test_next_and_previous_in_the_list_follow_the_sql_order(demo_db, monkeypatch):
    monkeypatch.setenv("NEMO_DB", str(demo_db))
    store = Store.open(demo_db)
    flt = DecisionPointFilter(split="tool_calling", text="the")
    store.use_browse_index = False
    listed = [r["id"] for r in store.page(flt, sort="n_tools", descending=True, limit=-1)]
    store.close()
    assert len(listed) > 5
    middle = len(listed) // 2
    at = run_page("app_pages/decision_point.py", {"id": listed[middle], **flt.to_query(), "sort": "n_tools", "desc": "1"})
    next(b for b in at.button if b.key == "next_list").click().run()
    assert at.query_params["id"] == listed[middle + 1]
    next(b for b in at.button if b.key == "prev_list").click().run()
    next(b for b in at.button if b.key == "prev_list").click().run()
    assert at.query_params["id"] == listed[middle - 1]


def test_a_database_made_by_older_code_browses_as_sql_read_only_and_after_migrating(tmp_path):
    """The migrations fixture was made by main before the Browse index existed: opened read-only (no
    `browse_index` table, nothing written) the index lives in memory; opened normally the step adds the
    table and the index is stored. Either way every count and page is the SQL's."""
    db = tmp_path / "made-by-main.db"
    db.write_bytes(zstandard.ZstdDecompressor().decompress(
        (Path(__file__).parent / "data" / "main-fixture.db.zst").read_bytes(), max_output_size=100_000_000))
    raw = sqlite3.connect(db)
    assert not raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'browse_index'").fetchall()
    raw.close()
    cases = [(DecisionPointFilter(), "context_chars", True), (DecisionPointFilter(split="tool_calling"), "n_tools", False),
             (DecisionPointFilter(text="weather", exclude_flags=("parallel",)), "expected_tool", True)]
    for readonly in (True, False):
        store = Store.open(db, readonly=readonly)
        try:
            assert store.browse_index() is not None
            for flt, sort, descending in cases:
                n, expected_n = sql_and_index(store, lambda: store.count(flt))
                assert n == expected_n > 0
                for offset in (0, n // 2, max(0, n - 3)):
                    expected, got = sql_and_index(store, lambda: store.page(flt, sort=sort, descending=descending,
                                                                            offset=offset, limit=50))
                    assert got == expected and got
        finally:
            store.close()
        raw = sqlite3.connect(db)
        stored = raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 'browse_index'").fetchone()[0]
        assert stored == (0 if readonly else 1)
        if not readonly:
            assert raw.execute("SELECT count(*) FROM browse_index").fetchone()[0] == 1
        raw.close()


def test_a_large_ingest_builds_the_index_in_a_fresh_interpreter(demo_db_master, tmp_path):
    """From FRESH_PROCESS_ROWS decision points the index is built by a new interpreter (the ingest's own process
    would pass its 500 MB peak target at full scale): stored as the in-process build stores it, the ingest's
    process holds none, and the pages it serves are the same."""
    from nemo_core.cli.commands.ingest import store_browse_index

    db = tmp_path / "demo.db"
    db.write_bytes(demo_db_master.read_bytes())
    with sqlite3.connect(db) as raw:
        raw.execute("DELETE FROM browse_index")
    with Store.open(db) as store:
        store_browse_index(store, fresh_process_rows=1)  # any database is "large" here
        assert store._browse is None  # built elsewhere, not in this process
        stored = store.scalar("SELECT n_rows FROM browse_index")
        assert stored == store.scalar("SELECT count(*) FROM decision_points") > 0
        loaded = store.browse_index()  # loaded from the table, not built again
    raw = sqlite3.connect(db)
    try:
        rebuilt = browse_index.build(raw, threading.Lock())
    finally:
        raw.close()
    assert loaded.n_rows == rebuilt.n_rows and np.array_equal(loaded.rowid, rebuilt.rowid)
    assert all(np.array_equal(loaded.orders[k], rebuilt.orders[k]) for k in rebuilt.orders)


def test_an_index_the_fresh_interpreter_could_not_build_is_a_warning(demo_db_master, tmp_path, monkeypatch, capsys):
    from nemo_core.cli.commands import ingest as ingest_command

    db = tmp_path / "demo.db"
    db.write_bytes(demo_db_master.read_bytes())
    with sqlite3.connect(db) as raw:
        raw.execute("DELETE FROM browse_index")
    monkeypatch.setattr(ingest_command.sys, "executable", "/bin/false")
    with Store.open(db) as store:
        ingest_command.store_browse_index(store, fresh_process_rows=1)
        assert store.scalar("SELECT count(*) FROM browse_index") == 0
    assert "Browse's index was not built (exit 1); Browse builds it on its first visit" in capsys.readouterr().err
