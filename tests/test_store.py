"""The SQLite store (store.py): layout, idempotence, WAL, schema version, search, paging and neighbours."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from nemo_core.base.errors import StoreError, UnknownDecisionPoint
from nemo_core.data.filters import SORTS, DecisionPointFilter
from nemo_core.data.ingest import ingest
from nemo_core.data.schema import SCHEMA_VERSION
from nemo_core.data.store import Store

DATA = Path(__file__).resolve().parent / "data"
SHAPES = [DATA / "tool_calling_shapes.jsonl", DATA / "interactive_agent_shapes.jsonl"]


def n_lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


@pytest.fixture
def shapes_store(tmp_path):
    store = Store.open(tmp_path / "shapes.db")
    ingest(store, SHAPES, workers=1)
    yield store
    store.close()


def test_wal_mode_and_schema_version(tmp_path):
    store = Store.open(tmp_path / "x.db")
    assert store.scalar("PRAGMA journal_mode") == "wal"
    assert store.meta("schema_version") == str(SCHEMA_VERSION)
    store.close()
    raw = sqlite3.connect(tmp_path / "x.db")
    assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    raw.close()


def test_a_newer_schema_is_refused(tmp_path):
    Store.open(tmp_path / "x.db").close()
    raw = sqlite3.connect(tmp_path / "x.db")
    raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(tmp_path / "x.db")


def test_opening_a_file_that_is_not_a_database_is_a_store_error(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("this is not SQLite " * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(bad)


def test_open_without_create_refuses_a_missing_file(tmp_path):
    with pytest.raises(StoreError, match="no database"):
        Store.open(tmp_path / "missing.db", create=False)


def test_each_conversation_is_stored_once_and_decision_points_point_into_it(shapes_store):
    n_rows = sum(n_lines(p) for p in SHAPES)
    assert shapes_store.n_conversations() == n_rows == 12
    assert shapes_store.n_decision_points() == 23
    # every decision point belongs to the conversation with its split and uuid
    assert shapes_store.scalar(
        "SELECT count(*) FROM decision_points dp JOIN conversations c ON c.id = dp.conversation_id "
        "AND c.split = dp.split AND c.uuid = dp.conversation_uuid") == 23
    # the conversation count of decision points is right, and bodies are not repeated per decision point
    mismatched = shapes_store.query(
        "SELECT c.uuid FROM conversations c WHERE c.n_decision_points != "
        "(SELECT count(*) FROM decision_points dp WHERE dp.conversation_id = c.id)")
    assert mismatched == []
    assert "body" not in {r["name"] for r in shapes_store.query("PRAGMA table_info(decision_points)")}


def test_the_stored_body_is_the_raw_row(shapes_store):
    import json

    with open(SHAPES[1], encoding="utf-8") as fh:
        first = json.loads(fh.readline())
    conv = shapes_store.conversation_row("interactive_agent", first["uuid"])
    assert conv["raw"] == first
    assert conv["source_file"] == str(SHAPES[1]) and conv["source_line"] == 1


def test_reingesting_the_same_rows_adds_nothing(shapes_store, tmp_path):
    before = (shapes_store.n_conversations(), shapes_store.n_decision_points(), shapes_store.counts())
    report = ingest(shapes_store, SHAPES, workers=1)
    assert report.conversations_stored == 0
    assert report.conversations_skipped_existing == 12
    # the same rows under another file name are the same conversations (split + uuid)
    copy = tmp_path / "tool_calling_again.jsonl"
    shutil.copy(SHAPES[0], copy)
    report = ingest(shapes_store, [copy], workers=2)
    assert report.conversations_stored == 0
    assert (shapes_store.n_conversations(), shapes_store.n_decision_points(), shapes_store.counts()) == before
    assert shapes_store.count(DecisionPointFilter(text="zanzibarquux")) == 3  # no duplicate FTS rows either


def test_the_same_uuid_in_the_other_split_is_another_conversation(shapes_store, tmp_path):
    other = tmp_path / "interactive_agent_from_tc.jsonl"
    shutil.copy(SHAPES[0], other)
    report = ingest(shapes_store, [other], workers=1)
    assert report.conversations_stored == 8
    assert shapes_store.exists("interactive_agent/tc-parallel/2") and shapes_store.exists("tool_calling/tc-parallel/2")


def test_counts_and_stats(shapes_store):
    assert shapes_store.counts() == {
        "tool_calling": {"function_call": 8, "message": 8},
        "interactive_agent": {"function_call": 5, "message": 2},
    }
    stats = shapes_store.stats()
    assert stats["conversations"] == 12 and stats["total_decision_points"] == 23
    assert stats["flags"]["parallel"] == 2 and stats["flags"]["ungradeable"] == 3
    assert stats["rejected_rows"] == 0


# ---- full-text search ------------------------------------------------------------------------------
# Choice kept from the core: the index covers user, assistant and tool text (and call arguments), not the
# system prompt (in interactive_agent it is a long policy repeated in every row, so it would match
# everything) and not reasoning. A match selects every decision point of the conversation.
def test_search_finds_a_word_of_a_user_message(shapes_store):
    ids = shapes_store.ids(DecisionPointFilter(text="zanzibarquux"))
    assert ids == ["tool_calling/tc-content-shapes/2", "tool_calling/tc-content-shapes/4", "tool_calling/tc-content-shapes/7"]


def test_search_finds_a_word_of_a_tool_result(shapes_store):
    assert shapes_store.count(DecisionPointFilter(text="platypusreply")) == 3
    assert shapes_store.count(DecisionPointFilter(text="Platypusreply zanzibarquux")) == 3  # all words, any case
    assert shapes_store.count(DecisionPointFilter(text="platypusreply octopuses")) == 0


def test_search_finds_call_arguments_but_not_the_system_prompt_or_reasoning(shapes_store):
    assert shapes_store.count(DecisionPointFilter(text="Bergen")) == 3
    assert shapes_store.count(DecisionPointFilter(text="systemonlyword")) == 0
    assert shapes_store.count(DecisionPointFilter(text="REASONING")) == 0


@pytest.mark.parametrize("text", ['"', 'AND', 'a OR', '*', '-x', 'NEAR(', '"unbalanced', "col:x", "(((", "^"])
def test_search_syntax_in_user_text_never_breaks_the_query(shapes_store, text):
    shapes_store.count(DecisionPointFilter(text=text))
    shapes_store.page(DecisionPointFilter(text=text))


# ---- paging, sorting, neighbours -------------------------------------------------------------------
FILTERS = [
    DecisionPointFilter(),
    DecisionPointFilter(split="tool_calling"),
    DecisionPointFilter(action_type="function_call"),
    DecisionPointFilter(split="tool_calling", action_type="message", exclude_flags=("empty_expected",)),
    DecisionPointFilter(min_tools=1, max_turn=12),
]


@pytest.mark.parametrize("flt", FILTERS)
@pytest.mark.parametrize("sort", list(SORTS))
@pytest.mark.parametrize("descending", [False, True])
def test_pages_count_and_sort_agree(demo_store, flt, sort, descending):
    total = demo_store.count(flt)
    assert total > 0
    everything = demo_store.ids(flt, sort=sort, descending=descending)
    assert len(everything) == total
    paged: list[str] = []
    for offset in range(0, total + 7, 7):
        page = demo_store.page(flt, sort=sort, descending=descending, offset=offset, limit=7)
        assert len(page) == max(0, min(7, total - offset))
        paged.extend(r["id"] for r in page)
    assert paged == everything
    assert everything == list(reversed(demo_store.ids(flt, sort=sort, descending=not descending)))
    if sort != "id":
        rows = demo_store.page(flt, sort=sort, descending=descending, limit=total)
        values = [(r[sort] is not None, r[sort]) for r in rows]  # SQLite sorts NULL first
        assert values == sorted(values, reverse=descending)


def test_page_rows_are_summaries_with_a_flag_list(demo_store):
    (row,) = demo_store.page(DecisionPointFilter(flags=("parallel",), split="tool_calling"), limit=1)
    assert "parallel" in row["flags"]
    assert not any(k.startswith("flag_") for k in row)
    assert {"id", "split", "action_type", "expected_tool", "preview", "n_tools", "turn_index"} <= set(row)


@pytest.mark.parametrize("flt", FILTERS[:3] + [DecisionPointFilter(text="refund")])
@pytest.mark.parametrize("sort", list(SORTS))
@pytest.mark.parametrize("descending", [False, True])
def test_neighbours_in_a_filtered_sorted_list(demo_store, flt, sort, descending):
    ids = demo_store.ids(flt, sort=sort, descending=descending)
    assert len(ids) >= 3
    picks = {0, 1, len(ids) // 2, len(ids) - 2, len(ids) - 1}
    for k in sorted(picks):
        prev_id, next_id = demo_store.neighbour_in_filter(ids[k], flt, sort=sort, descending=descending)
        assert prev_id == (ids[k - 1] if k > 0 else None), (k, ids[k])
        assert next_id == (ids[k + 1] if k < len(ids) - 1 else None), (k, ids[k])


def test_neighbours_of_an_unknown_id_are_none(demo_store):
    assert demo_store.neighbour_in_filter("tool_calling/nope/1", None) == (None, None)


def test_get_refuses_unknown_and_malformed_ids(shapes_store):
    with pytest.raises(UnknownDecisionPoint, match="no decision point"):
        shapes_store.get("tool_calling/no-such-uuid/2")
    with pytest.raises(UnknownDecisionPoint, match="not a decision point id"):
        shapes_store.get("just-a-word")
    assert shapes_store.conversation_decision_ids("tool_calling", "tc-parallel") == [
        "tool_calling/tc-parallel/2", "tool_calling/tc-parallel/5", "tool_calling/tc-parallel/7"]


def test_expected_tool_counts(shapes_store):
    counts = {r["tool"]: r["n"] for r in shapes_store.expected_tool_counts()}
    assert counts["find_user"] == 4 and counts["get_weather"] == 1 and None not in counts
    assert {r["tool"]: r["n"] for r in shapes_store.expected_tool_counts(prefix="get_")} == {"get_time": 1, "get_weather": 1}


def test_histogram_bins_by_split(shapes_store):
    rows = shapes_store.histogram("n_tools", [0, 2, 5])
    got = {(r["split"], r["bin"]): r["n"] for r in rows}
    # n_tools per decision point, counted from tests/data: bin 0 is < 2, bin 1 is < 5, bin 2 the rest
    assert got == {("tool_calling", 0): 7, ("tool_calling", 1): 7, ("tool_calling", 2): 2, ("interactive_agent", 1): 7}
    with pytest.raises(ValueError):
        shapes_store.histogram("id; DROP TABLE decision_points", [0, 1])


def test_open_store_uses_nemo_db(monkeypatch, tmp_path):
    from nemo_core.data.store import open_store

    monkeypatch.setenv("NEMO_DB", str(tmp_path / "env.db"))
    with open_store() as store:
        assert store.path == tmp_path / "env.db"
    with open_store(tmp_path / "explicit.db") as store:
        assert store.path == tmp_path / "explicit.db"


def test_a_readonly_store_reads_and_refuses_writes(shapes_store):
    with Store.open(shapes_store.path, readonly=True) as ro:
        assert ro.n_decision_points() == 23
        assert ro.get("tool_calling/tc-parallel/2").n_messages == 8
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ro.set_meta("x", "y")


def test_named_row_finds_a_run_campaign_or_audit_set_by_id_or_name_and_raises_the_callers_error(tmp_path):
    from nemo_core.runs.run import create_run

    store = Store.open(tmp_path / "named.db")
    run_id = create_run(store, "alpha", kind="grade", grader="keyword", rule_version="1")
    assert store.named_row("runs", run_id, LookupError("unused"))["name"] == "alpha"
    assert store.named_row("runs", "alpha", LookupError("unused"))["id"] == run_id
    missing = LookupError("no run 'beta'")
    with pytest.raises(LookupError) as info:
        store.named_row("runs", "beta", missing)
    assert info.value is missing  # the caller's own error, message and all
    with pytest.raises(LookupError):
        store.named_row("runs", run_id + 1, LookupError("no run"))  # an id is looked up as an id, not a name
    with pytest.raises(ValueError, match="not a named table"):
        store.named_row("decision_points", "x", LookupError("unused"))
