"""Filters to SQL (filters.py): the exact SQL and parameters, safe FTS queries, URL round trips."""

from __future__ import annotations

import pytest

from nemo_core.data.extract import FLAGS
from nemo_core.data.filters import SORTS, BadFilter, DecisionPointFilter, fts_query, order_by

FTS_SQL = "dp.conversation_id IN (SELECT rowid FROM conversation_fts WHERE conversation_fts MATCH ?)"


@pytest.mark.parametrize(
    "flt, sql, params",
    [
        (DecisionPointFilter(), "1", []),
        (DecisionPointFilter(split="tool_calling"), "dp.split = ?", ["tool_calling"]),
        (
            DecisionPointFilter(split="interactive_agent", action_type="function_call", tool="get_weather"),
            "dp.split = ? AND dp.action_type = ? AND dp.expected_tool = ?",
            ["interactive_agent", "function_call", "get_weather"],
        ),
        (
            DecisionPointFilter(flags=("parallel", "ungradeable"), exclude_flags=("empty_expected",)),
            "dp.flag_parallel = 1 AND dp.flag_ungradeable = 1 AND dp.flag_empty_expected = 0",
            [],
        ),
        (
            DecisionPointFilter(min_tools=0, max_tools=5, min_turn=2, max_turn=9),
            "+dp.n_tools >= ? AND +dp.n_tools <= ? AND +dp.turn_index >= ? AND +dp.turn_index <= ?",
            [0, 5, 2, 9],
        ),
        (DecisionPointFilter(conversation_uuid="u-1"), "dp.conversation_uuid = ?", ["u-1"]),
        (
            DecisionPointFilter(action_type="message", text="refund policy"),
            f"dp.action_type = ? AND {FTS_SQL}",
            ["message", '"refund" "policy"'],
        ),
        (DecisionPointFilter(text="  ?! "), "1", []),  # no words: no text condition
    ],
)
def test_where_sql_and_params(flt, sql, params):
    assert flt.where() == (sql, params)


def test_values_never_enter_the_sql():
    evil = "x' OR 1=1; DROP TABLE decision_points; --"
    sql, params = DecisionPointFilter(tool=evil, conversation_uuid=evil, text=evil).where()
    assert "DROP" not in sql and "'" not in sql
    assert params[:2] == [evil, evil]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"split": "train"}, "unknown split"),
        ({"action_type": "call"}, "unknown action type"),
        ({"flags": ("parallel = 1 OR 1",)}, "unknown flag"),
        ({"exclude_flags": ("nope",)}, "unknown flag"),
    ],
)
def test_unknown_names_are_refused(kwargs, words):
    with pytest.raises(BadFilter, match=words):
        DecisionPointFilter(**kwargs).where()


@pytest.mark.parametrize(
    "text, query",
    [
        ("refund", '"refund"'),
        ('say "hi" AND bye* -no', '"say" "hi" "AND" "bye" "no"'),
        ("NOT OR NEAR(a b)", '"NOT" "OR" "NEAR" "a" "b"'),
        ("col:value ^start", '"col" "value" "start"'),
        ("café 東京", '"café" "東京"'),
        ('"', None),
        ("", None),
        ("*-()", None),
    ],
)
def test_fts_query_makes_every_word_a_quoted_term(text, query):
    assert fts_query(text) == query


def test_order_by_is_whitelisted_and_breaks_ties_by_rowid():
    assert order_by("id") == "dp.rowid ASC"
    assert order_by("id", descending=True) == "dp.rowid DESC"
    assert order_by("context_chars", True) == "dp.context_chars DESC, dp.rowid DESC"
    assert set(SORTS) >= {"id", "turn_index", "context_chars", "n_tools", "expected_tool"}
    with pytest.raises(BadFilter):
        order_by("rowid; DROP TABLE x")


@pytest.mark.parametrize(
    "flt",
    [
        DecisionPointFilter(),
        DecisionPointFilter(split="tool_calling", action_type="function_call", tool="get_weather"),
        DecisionPointFilter(text="refund policy", flags=("parallel", "ungradeable"), exclude_flags=("empty_expected",)),
        DecisionPointFilter(min_tools=0, max_tools=3, min_turn=1, max_turn=40, conversation_uuid="abc-1"),
        DecisionPointFilter(flags=tuple(FLAGS)),
    ],
)
def test_query_round_trip(flt):
    query = flt.to_query()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in query.items())
    assert DecisionPointFilter.from_query(query) == flt


def test_to_query_holds_only_what_is_set():
    assert DecisionPointFilter().to_query() == {}
    assert DecisionPointFilter(split="tool_calling", min_tools=0).to_query() == {"split": "tool_calling", "min_tools": "0"}


def test_from_query_accepts_lists_ignores_unknown_keys_and_refuses_bad_numbers():
    flt = DecisionPointFilter.from_query({"flags": ["parallel", "ungradeable"], "page": "3", "split": ""})
    assert flt == DecisionPointFilter(flags=("parallel", "ungradeable"))
    with pytest.raises(BadFilter, match="min_tools"):
        DecisionPointFilter.from_query({"min_tools": "many"})
    with pytest.raises(BadFilter, match="unknown flag"):
        DecisionPointFilter.from_query({"flags": "parallel,bogus"})
