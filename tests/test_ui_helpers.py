"""The page helpers that do not need a running app: inert text, the tools table, the list state in the URL."""

from __future__ import annotations

import re

import pytest

from nemo_core.data.filters import BadFilter, DecisionPointFilter
from ui.listing import PAGE_SIZE, ListState, expected_label, n_pages
from ui.safe import as_json_value, code_span, cut, escape_markdown, inert_label
from ui.tools_panel import parameter_rows

HOSTILE = [
    "![tracker](http://203.0.113.7/pixel.png)",
    "see [docs](http://203.0.113.7/docs) and <http://203.0.113.7/auto>",
    "<img src='http://203.0.113.7/x.png'> <script>alert(1)</script>",
    "$x^2$ :red[alert] :material/home: **bold** `code` \\ [ref]: http://203.0.113.7",
    "# heading\n- item\n1. one\n> quote\n---\n| a | b |",
]

SPECIAL = set("\\`*_{}[]()#+-.!|<>~$:&=\"'^@%/")


def unescape(text: str) -> str:
    """What a person reads: escapes resolved, the invisible word joiners that break autolinks dropped."""
    return re.sub(r"\\(.)", r"\1", text.replace("  \n", "\n")).replace("\u2060", "")


@pytest.mark.parametrize("text", HOSTILE)
def test_escape_markdown_escapes_every_special_character_and_loses_nothing(text):
    escaped = escape_markdown(text)
    i = 0
    while i < len(escaped):
        ch = escaped[i]
        if ch == "\\":
            assert escaped[i + 1] in SPECIAL, f"stray backslash before {escaped[i + 1]!r}"
            i += 2
            continue
        assert ch not in SPECIAL, f"unescaped {ch!r} at {i} in {escaped!r}"
        i += 1
    assert unescape(escaped) == text


def test_escape_markdown_keeps_line_breaks():
    assert escape_markdown("a\nb") == "a  \nb"


def test_inert_label_is_one_short_escaped_line():
    label = inert_label("![x](http://203.0.113.7/p.png)\n" + "word " * 50, limit=40)
    assert "\n" not in label
    assert label.startswith("\\!\\[x\\]\\(http\u2060\\:\\/\\/203\\.0\\.113\\.7")
    assert unescape(label).endswith("…") and len(unescape(label)) == 40


def test_code_span_fence_is_longer_than_any_backtick_run():
    assert code_span("get_weather") == "` get_weather `"
    assert code_span("a``b") == "``` a``b ```"
    assert code_span("x\ny") == "` x y `"


def test_cut_prefers_a_line_or_word_boundary():
    assert cut("short", 10) == ("short", "")
    text = "word " * 1000
    head, rest = cut(text, 2000)
    assert head + rest == text
    assert len(head) <= 2000 and head.endswith("word")
    head, rest = cut("x" * 5000, 2000)
    assert (len(head), len(rest)) == (2000, 3000)


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"a": 1}, (True, {"a": 1})),
        ([1, 2], (True, [1, 2])),
        ('{"a": [1]}', (True, {"a": [1]})),
        ("  [1, 2] ", (True, [1, 2])),
        ("{not json}", (False, "{not json}")),
        ("5", (False, "5")),
        (True, (False, True)),
        ("plain text", (False, "plain text")),
    ],
)
def test_as_json_value(value, expected):
    assert as_json_value(value) == expected


def test_parameter_rows_reads_types_required_enums_defaults_and_nesting():
    params = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "units": {"enum": ["metric", "imperial"], "default": "metric"},
            "days": {"type": ["integer", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "window": {"type": "object", "properties": {"start": {"type": "string"}}, "required": ["start"]},
            "stops": {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}}}},
            "any": {"anyOf": [{"type": "string"}, {"type": "number"}]},
        },
        "required": ["city"],
    }
    rows = {r["parameter"]: r for r in parameter_rows(params)}
    assert list(rows) == ["city", "units", "days", "tags", "window", "window.start", "stops", "stops[].code", "any"]
    assert rows["city"] == {"parameter": "city", "type": "string", "required": "yes", "description": "City name",
                            "allowed values": "", "default": ""}
    assert rows["units"]["type"] == "enum" and rows["units"]["allowed values"] == '"metric", "imperial"'
    assert rows["units"]["default"] == '"metric"'
    assert rows["days"]["type"] == "integer | null"
    assert rows["tags"]["type"] == "array of string"
    assert rows["window.start"]["required"] == "yes"
    assert rows["any"]["type"] == "string anyOf number"


@pytest.mark.parametrize("params", [None, {}, {"type": "object"}, {"properties": []}, "nonsense"])
def test_parameter_rows_without_properties(params):
    assert parameter_rows(params) == []


def test_list_state_round_trips_through_the_url():
    state = ListState(DecisionPointFilter(split="tool_calling", flags=("parallel",), min_tools=2), "n_tools", True, 3)
    query = state.to_query()
    assert query == {"split": "tool_calling", "flags": "parallel", "min_tools": "2", "sort": "n_tools", "desc": "1",
                     "page": "3"}
    assert ListState.from_query({**query, "id": "ignored/x/1"}) == state
    assert ListState().to_query() == {}
    assert ListState.from_query({}) == ListState()
    assert state.offset == 2 * PAGE_SIZE


@pytest.mark.parametrize(
    "query, message",
    [
        ({"sort": "random()"}, "unknown sort"),
        ({"desc": "yes"}, "desc must be 0 or 1"),
        ({"page": "x"}, "page must be a whole number"),
        ({"page": "0"}, "page must be 1 or more"),
        ({"split": "nope"}, "unknown split"),
    ],
)
def test_list_state_rejects_bad_urls(query, message):
    with pytest.raises(BadFilter, match=message):
        ListState.from_query(query)


def test_n_pages_and_expected_label():
    assert [n_pages(n) for n in (0, 1, 50, 51)] == [1, 1, 1, 2]
    assert expected_label({"action_type": "function_call", "expected_tool": "f", "n_expected_calls": 3}) == "f (+2 more)"
    assert expected_label({"action_type": "function_call", "expected_tool": "f", "n_expected_calls": 1}) == "f"
    assert expected_label({"action_type": "message", "preview": "Hello there"}) == "Hello there"
    assert expected_label({"action_type": "message", "preview": " "}) == "(empty message)"


def test_show_text_cuts_long_text_and_keeps_the_rest_in_an_expander():
    from streamlit.testing.v1 import AppTest

    def page():
        from ui.safe import show_text

        show_text("word " * 1000, limit=2000)
        show_text("short")

    at = AppTest.from_function(page).run()
    assert not at.exception
    head, rest, short = (t.value for t in at.text)
    assert len(head) <= 2000 and (head + " " + rest).split() == ("word " * 1000).split()
    assert short == "short"
    _, expected_rest = cut("word " * 1000, 2000)
    assert [e.label for e in at.expander] == [f"Show the remaining {len(expected_rest):,} characters"]


def test_loosened_drops_one_part_of_the_filter_at_a_time():
    from nemo_core.data.filters import DecisionPointFilter
    from ui.listing import loosened

    flt = DecisionPointFilter(split="tool_calling", tool="forecast", flags=("parallel",), min_tools=3)
    parts = dict(loosened(flt))
    assert parts == {
        "split = tool_calling": DecisionPointFilter(tool="forecast", flags=("parallel",), min_tools=3),
        "expected tool = forecast": DecisionPointFilter(split="tool_calling", flags=("parallel",), min_tools=3),
        "has all of these flags = parallel": DecisionPointFilter(split="tool_calling", tool="forecast", min_tools=3),
        "tools offered ≥ = 3": DecisionPointFilter(split="tool_calling", tool="forecast", flags=("parallel",)),
    }
    assert loosened(DecisionPointFilter()) == []


def test_similar_tools_most_expected_first():
    from ui.listing import similar_tools

    tools = {"get_forecast": 3, "forecast_rain": 9, "weather": 5, "Forecast_X": 1}
    assert similar_tools("forecast", tools) == ["forecast_rain", "get_forecast", "Forecast_X"]
    assert similar_tools("  ", tools) == []
    assert similar_tools("get_forecast", tools) == []  # the name itself is no suggestion


def test_no_variance_note_says_why_the_agreement_figures_are_empty():
    """Issue 19: every LLM score 7 gave Pearson "—", kappa 0.000 and a best threshold 0.00 with no word of why."""
    from types import SimpleNamespace as Row

    from ui.audit_notes import no_variance_note

    flat_llm = [Row(keyword=k, llm=0.7) for k in (0.1, 0.5, 0.9)]
    note = no_variance_note(flat_llm)
    assert note and "every LLM score is 0.70" in note and "Pearson and Spearman are undefined" in note
    assert "keyword" not in note.split(".")[0].replace("every LLM", "")  # only the flat side is named
    assert no_variance_note([Row(keyword=k, llm=v) for k, v in ((0.1, 0.2), (0.5, 0.6))]) is None
    assert no_variance_note([Row(keyword=0.3, llm=None), Row(keyword=0.4, llm=0.5)]) is None  # one pair only
    both = no_variance_note([Row(keyword=0.0, llm=0.7), Row(keyword=0.0, llm=0.7)])
    assert "every keyword score is 0.00 and every LLM score is 0.70" in both


def test_decision_point_url_carries_the_id_then_the_runs_url_encoded():
    from ui.decision_links import decision_point_url

    assert decision_point_url("tool_calling/u-1/3", {"run": "alpha"}) == "decision_point?id=tool_calling%2Fu-1%2F3&run=alpha"
    assert decision_point_url("interactive_agent/u/0", {"run": "a b", "vs": "c&d"}) == \
        "decision_point?id=interactive_agent%2Fu%2F0&run=a+b&vs=c%26d"
