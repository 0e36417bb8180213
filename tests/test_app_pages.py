"""The pages' logic through Streamlit's AppTest (no server, no browser), on a copy of the demo database."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nemo_core.data.filters import DecisionPointFilter
from nemo_core.grading.request import build_request
from nemo_core.data.store import Store

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
PAGES = sorted(str(p.relative_to(REPO)) for p in (REPO / "app_pages").glob("*.py"))
BROWSE = "app_pages/browse.py"
DECISION = "app_pages/decision_point.py"
PARALLEL = "tool_calling/demo-parallel-calls/2"
UNTRUSTED = "tool_calling/demo-untrusted-markup/4"


@pytest.fixture
def store(demo_db):
    s = Store.open(demo_db)
    yield s
    s.close()


def by_label(widgets, label: str):
    found = [w for w in widgets if w.label == label]
    assert found, f"no widget labelled {label!r} in {[w.label for w in widgets]}"
    return found[0]


def plain(markdown: str) -> str:
    """Markdown text with its backslash escapes removed (messages escape values from the URL)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def plotly_values(values) -> list:
    """A figure's array as a list: Plotly writes numeric arrays as base64 typed arrays (`dtype`, `bdata`)."""
    if isinstance(values, dict) and "bdata" in values:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).tolist()
    return list(values)


def query(at: AppTest) -> dict[str, str]:
    return {k: at.query_params[k] for k in at.query_params}


def apply_filters(at: AppTest) -> AppTest:
    by_label(at.button, "Apply filters").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def browse_ids(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["id"])


# ---- every page ----------------------------------------------------------------------------------
def test_every_page_file_is_covered():
    assert set(PAGES) >= {"app_pages/overview.py", BROWSE, DECISION}


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_exception(open_page, page):
    at = open_page(page)
    assert not at.error, [e.value for e in at.error]
    assert at.title, "every page has a title"
    assert "Decision points" in [m.label for m in at.sidebar.metric]


# ---- overview and sidebar ------------------------------------------------------------------------
def test_overview_counts_and_charts(open_page, store):
    at = open_page("app_pages/overview.py")
    metrics = {m.label: m.value for m in at.main.metric}
    assert metrics["Decision points"] == f"{store.n_decision_points():,}"
    assert metrics["Conversations"] == f"{store.n_conversations():,}"
    assert metrics["interactive_agent"] == "68"
    charts = at.get("plotly_chart")
    assert len(charts) == 4  # top tools + three distributions
    titles = " ".join(json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in charts)
    assert "Context length" in titles and "Turn index" in titles
    assert any(h.value == "Rejected rows (4)" for h in at.subheader)


def test_overview_histograms_draw_every_bin_in_one_colour_per_split(open_page, store):
    """Issue 19: range labels ("6–7", "≥15") next to "0".."5" made Plotly pick a numeric axis and drop them
    (84 of the demo's 180 decision points were not drawn), and a split's colour changed between charts."""
    at = open_page("app_pages/overview.py")
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")][1:]
    assert len(specs) == 3
    colours: dict[str, set[str]] = {}
    for spec in specs:
        assert spec["layout"]["xaxis"]["type"] == "category"
        for trace in spec["data"]:
            colours.setdefault(trace["name"], set()).add(trace["marker"]["color"])
    assert colours == {"tool_calling": {"#1f77b4"}, "interactive_agent": {"#ff7f0e"}}
    tools_offered = next(s for s in specs if "task tools offered" in s["layout"]["title"]["text"])
    assert sum(sum(plotly_values(t["y"])) for t in tools_offered["data"]) == store.n_decision_points() == 180
    drawn = {x for t in tools_offered["data"] for x in t["x"]}
    assert {"6–7", "8–9", "10–14"} <= drawn


def test_sidebar_opens_another_database_and_rejects_bad_paths(open_page, demo_db, tmp_path):
    at = open_page("app_pages/overview.py")
    assert str(demo_db) in [t.value for t in at.sidebar.text]
    box = at.sidebar.text_input[0]
    box.input(str(tmp_path / "missing.db"))
    by_label(at.sidebar.button, "Open").click().run()
    assert any("no file at" in e.value for e in at.sidebar.error)

    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("hello")
    at.sidebar.text_input[0].input(str(not_sqlite))
    by_label(at.sidebar.button, "Open").click().run()
    assert any("not a SQLite database" in e.value for e in at.sidebar.error)

    other = tmp_path / "other.db"
    shutil.copy(demo_db, other)
    at.sidebar.text_input[0].input(str(other))
    by_label(at.sidebar.button, "Open").click().run()
    assert not at.exception
    assert str(other.resolve()) in [t.value for t in at.sidebar.text]
    by_label(at.sidebar.button, "Back to the default database").click().run()
    assert str(demo_db) in [t.value for t in at.sidebar.text]


# ---- browse --------------------------------------------------------------------------------------
def test_browse_lists_everything_by_default(open_page, store):
    at = open_page(BROWSE)
    assert "180 decision points match" in captions(at)
    assert browse_ids(at) == store.ids(limit=50)


def test_browse_split_filter_goes_to_the_url(open_page, store):
    at = open_page(BROWSE)
    at.selectbox(key="f_split").set_value("interactive_agent")
    apply_filters(at)
    assert query(at) == {"split": "interactive_agent"}
    assert "68 decision points match" in captions(at)
    assert all(i.startswith("interactive_agent/") for i in browse_ids(at))


@pytest.mark.parametrize(
    "kind, key, value, flt",
    [
        ("selectbox", "f_action_type", "message", DecisionPointFilter(action_type="message")),
        ("selectbox", "f_tool", "transfer_funds", DecisionPointFilter(tool="transfer_funds")),
        ("text_input", "f_text", "octopuses", DecisionPointFilter(text="octopuses")),
        ("multiselect", "f_flags", ["parallel"], DecisionPointFilter(flags=("parallel",))),
        ("multiselect", "f_exclude_flags", ["parallel", "ungradeable"],
         DecisionPointFilter(exclude_flags=("parallel", "ungradeable"))),
        ("number_input", "f_min_tools", 4, DecisionPointFilter(min_tools=4)),
        ("number_input", "f_max_turn", 3, DecisionPointFilter(max_turn=3)),
    ],
)
def test_browse_each_filter(open_page, store, kind, key, value, flt):
    at = open_page(BROWSE)
    widget = getattr(at, kind)(key=key)
    if kind == "text_input":
        widget.input(value)
    else:
        widget.set_value(value)
    apply_filters(at)
    assert query(at) == flt.to_query()
    expected = store.count(flt)
    assert expected > 0
    assert f"{expected:,} decision point{'s' if expected != 1 else ''} match" in captions(at)
    assert browse_ids(at) == store.ids(flt, limit=50)


def test_browse_sort_descending(open_page, store):
    at = open_page(BROWSE)
    at.selectbox(key="f_sort").set_value("context_chars")
    at.toggle(key="f_desc").set_value(True)
    apply_filters(at)
    assert query(at) == {"sort": "context_chars", "desc": "1"}
    assert browse_ids(at) == store.ids(sort="context_chars", descending=True, limit=50)


def test_browse_restores_its_state_from_the_url(open_page, store):
    at = open_page(BROWSE, split="tool_calling", action_type="message", page="2")
    assert at.selectbox(key="f_split").value == "tool_calling"
    assert at.selectbox(key="f_action_type").value == "message"
    flt = DecisionPointFilter(split="tool_calling", action_type="message")
    assert store.count(flt) == 57
    assert "showing 51–57 · page 2 of 2" in captions(at)
    assert browse_ids(at) == store.ids(flt)[50:]


def test_browse_paging_buttons(open_page, store):
    at = open_page(BROWSE)
    by_label(at.button, "Next page ▶").click().run()
    assert query(at) == {"page": "2"}
    assert browse_ids(at) == store.ids()[50:100]
    by_label(at.button, "Last page ⏭").click().run()
    assert query(at) == {"page": "4"}
    assert by_label(at.button, "Next page ▶").disabled
    by_label(at.button, "⏮ First page").click().run()
    assert query(at) == {}


def test_browse_go_to_page_n_keeps_the_filter_and_sort(open_page, store):
    at = open_page(BROWSE, split="tool_calling", sort="context_chars", desc="1")
    flt = DecisionPointFilter(split="tool_calling")
    n_pages = -(-store.count(flt) // 50)
    assert n_pages >= 3
    by_label(at.number_input, f"Go to page (1–{n_pages})").set_value(n_pages - 1)
    by_label(at.button, "Go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert query(at) == {"split": "tool_calling", "sort": "context_chars", "desc": "1", "page": str(n_pages - 1)}
    expected = store.page(flt, sort="context_chars", descending=True, offset=(n_pages - 2) * 50, limit=50)
    assert browse_ids(at) == [r["id"] for r in expected]
    assert f"page {n_pages - 1} of {n_pages}" in captions(at)


def test_browse_bad_filter_in_the_url_says_what_is_wrong(open_page):
    at = open_page(BROWSE, split="bogus")
    assert any("unknown split 'bogus'" in plain(e.value) for e in at.error)
    at = open_page(BROWSE, min_tools="many")
    assert any("min_tools must be a whole number" in plain(e.value) for e in at.error)


def test_browse_page_past_the_end_shows_the_last_page(open_page):
    at = open_page(BROWSE, page="99")
    assert any("past the end" in w.value for w in at.warning)
    assert "page 4 of 4" in captions(at)


def open_link_query(at: AppTest) -> dict[str, str]:
    """The query of Browse's "Open decision point" link (a link, so opening makes one history entry)."""
    from urllib.parse import parse_qsl

    links = [pl.proto for pl in at.get("page_link") if pl.proto.label == "Open decision point"]
    assert len(links) == 1
    assert links[0].page == "decision_point"
    return dict(parse_qsl(links[0].query_string))


def test_browse_open_link_keeps_the_filter_in_the_url(open_page, store):
    at = open_page(BROWSE, split="interactive_agent")
    target = store.ids(DecisionPointFilter(split="interactive_agent"), limit=3)[2]
    by_label(at.selectbox, "Open a decision point from this page (or tick a row above)").set_value(target).run()
    assert open_link_query(at) == {"id": target, "split": "interactive_agent"}
    assert not any(b.label == "Open decision point" for b in at.button)  # no switch_page button any more
    at.query_params["id"] = target
    at.switch_page(DECISION).run()
    assert at.title[0].value == "Decision point"
    assert at.code[0].value == target


def test_browse_row_selection_opens_the_row(open_page, store):
    """A ticked row points the link at it, and a constant script follows the link (checked in Chromium:
    tests/browser/test_browse_state_browser.py)."""
    at = open_page(BROWSE, action_type="message")
    target = store.ids(DecisionPointFilter(action_type="message"), limit=5)[4]
    at.session_state["browse_table_0"] = {"selection": {"rows": [4], "columns": [], "cells": []}}
    at.run()
    assert open_link_query(at) == {"id": target, "action_type": "message"}
    scripts = [h.proto.body for h in at.get("html")]
    assert scripts == ["<script>document.querySelector('.st-key-browse_open_link a').click();</script>"]


# ---- decision point ------------------------------------------------------------------------------
def test_decision_point_deep_link_replays_the_conversation(open_page, store):
    at = open_page(DECISION, id=PARALLEL)
    assert at.code[0].value == PARALLEL
    dp = store.get(PARALLEL)
    assert len(at.chat_message) == len([m for m in dp.context if m["role"] != "system"])
    assert "System prompt: empty." in captions(at)
    assert "Weather in Oslo and Bergen, and convert 30 to F." in texts(at)


def test_tool_results_are_joined_to_their_calls_and_shown_as_json(open_page):
    at = open_page(DECISION, id="tool_calling/demo-parallel-calls/5")
    md = "\n".join(m.value for m in at.markdown)
    assert "Result of ` get_weather ` (call 1 of message #2, linked by position)" in md
    assert "Result of ` get_weather ` (call 2 of message #2, linked by position)" in md
    assert any(j.value == '{"city": "Oslo", "temp_c": 4}' for j in at.json)
    assert "No tool reply was recorded for this call." in captions(at)


def test_unlinked_tool_reply_is_marked(open_page):
    at = open_page(DECISION, id="tool_calling/demo-orphan-tool-reply/5")
    assert any("answers no tool call" in w.value for w in at.warning)


def test_expected_action_is_hidden_until_revealed(open_page):
    at = open_page(DECISION, id=PARALLEL)
    toggle = by_label(at.toggle, "Reveal the expected action")
    assert toggle.value is False
    md = "\n".join(m.value for m in at.markdown)
    assert "Action type" not in md
    assert not any('"Bergen"' in j.value for j in at.json), "an expected argument leaked before the reveal"
    toggle.set_value(True).run()
    md = "\n".join(m.value for m in at.markdown)
    assert "**Action type:** `function_call`" in md
    assert any(j.value == '{"city": "Bergen"}' for j in at.json)
    assert "A parallel turn: 3 calls" in captions(at)


def test_reveal_of_a_message_turn(open_page, store):
    at = open_page(DECISION, id="tool_calling/demo-parallel-calls/5")
    by_label(at.toggle, "Reveal the expected action").set_value(True).run()
    assert store.get("tool_calling/demo-parallel-calls/5").expected_content in texts(at)


@pytest.mark.parametrize(
    "dp_id, message",
    [
        ("not-an-id", "is not a decision point id"),
        ("tool_calling/no-such-uuid/3", "no decision point"),
        ("a/b/c/d", "is not a decision point id"),
    ],
)
def test_bad_or_unknown_id_gives_a_clear_message(open_page, dp_id, message):
    at = open_page(DECISION, id=dp_id)
    assert any(message in plain(e.value) and "ids look like" in plain(e.value) for e in at.error), [
        e.value for e in at.error]


def test_missing_id_explains_and_offers_a_box(open_page):
    at = open_page(DECISION)
    assert any("No decision point chosen" in i.value for i in at.info)
    at.main.text_input[0].input(PARALLEL)
    by_label(at.main.button, "Open").click().run()
    assert at.code[0].value == PARALLEL


def test_previous_next_in_the_conversation(open_page, store):
    ids = store.conversation_decision_ids("tool_calling", "demo-tool-content-shapes")
    assert len(ids) == 3
    at = open_page(DECISION, id=ids[0])
    assert by_label(at.button, "◀ Previous turn").disabled
    by_label(at.button, "Next turn ▶").click().run()
    assert query(at)["id"] == ids[1]
    by_label(at.button, "Next turn ▶").click().run()
    assert query(at)["id"] == ids[2]
    assert by_label(at.button, "Next turn ▶").disabled
    by_label(at.button, "◀ Previous turn").click().run()
    assert query(at)["id"] == ids[1]


def test_previous_next_in_the_filtered_list(open_page, store):
    flt = DecisionPointFilter(action_type="message", split="interactive_agent")
    ids = store.ids(flt, sort="context_chars", descending=True)
    at = open_page(DECISION, id=ids[0], **flt.to_query(), sort="context_chars", desc="1")
    by_label(at.button, "◀ Previous in filtered list").click().run()
    assert query(at)["id"] == ids[0]
    assert any("This is the first decision point in the filtered list." == i.value for i in at.info)
    for expected in ids[1:4]:
        by_label(at.button, "Next in filtered list ▶").click().run()
        assert query(at) == {"id": expected, **flt.to_query(), "sort": "context_chars", "desc": "1"}
        assert at.code[0].value == expected
    by_label(at.button, "◀ Previous in filtered list").click().run()
    assert query(at)["id"] == ids[2]


def test_next_at_the_end_of_the_list_says_so(open_page, store):
    flt = DecisionPointFilter(tool="transfer_funds")
    ids = store.ids(flt)
    at = open_page(DECISION, id=ids[-1], tool="transfer_funds")
    by_label(at.button, "Next in filtered list ▶").click().run()
    assert query(at)["id"] == ids[-1]
    assert any("This is the last decision point in the filtered list." == i.value for i in at.info)
    by_label(at.button, "◀ Previous in filtered list").click().run()
    assert query(at)["id"] == ids[-2]


def test_bad_list_filter_still_shows_the_decision_point(open_page):
    at = open_page(DECISION, id=PARALLEL, split="bogus")
    assert any("previous / next in the list are off" in w.value for w in at.warning)
    assert at.code[0].value == PARALLEL
    assert by_label(at.button, "Next in list ▶").disabled


def test_request_json_is_the_built_request(open_page, store):
    at = open_page(DECISION, id="tool_calling/demo-parallel-calls/5")
    dp = store.get("tool_calling/demo-parallel-calls/5")
    shown = [c for c in at.code if c.language == "json"]
    assert json.loads(shown[0].value) == build_request(dp)
    at.checkbox(key="include_reasoning").check().run()
    shown = [c for c in at.code if c.language == "json"]
    assert json.loads(shown[0].value) == build_request(dp, include_reasoning=True)
    assert "reasoning_content" in shown[0].value


def test_tools_panel_lists_every_offered_tool(open_page, store):
    dp = store.get(PARALLEL)
    at = open_page(DECISION, id=PARALLEL)
    labels = [e.label for e in at.expander]
    for name in [t["function"]["name"] for t in dp.tools]:
        assert any(name.replace("_", "\\_") in label for label in labels), (name, labels)


def test_untrusted_markup_is_never_markdown(open_page):
    at = open_page(DECISION, id=UNTRUSTED)
    by_label(at.toggle, "Reveal the expected action").set_value(True).run()
    assert any("![tracker](http://203.0.113.7/pixel.png)" in t for t in texts(at)), "shown as plain text"
    assert any("![img](http://203.0.113.7/reply.png)" in t for t in texts(at))
    markdown_bodies = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.label for e in at.expander]
    for body in markdown_bodies:
        assert "203.0.113.7" not in body, f"dataset text reached Markdown unescaped: {body!r}"


def test_very_long_tool_result_is_collapsed(open_page):
    at = open_page(DECISION, id="tool_calling/demo-very-long-tool-result/4")
    assert "Large JSON" in captions(at)
    big = [j for j in at.json if "request 499 served" in j.value]
    assert big and big[0].proto.expanded is False or big[0].proto.max_expand_depth == 1


HOSTILE = "![x](http://203.0.113.7/p.png)"


@pytest.mark.parametrize(
    "page_file, query",
    [
        (DECISION, {"id": HOSTILE}),
        (DECISION, {"id": f"tool_calling/{HOSTILE}/2"}),
        (DECISION, {"id": PARALLEL, "split": HOSTILE}),
        (BROWSE, {"split": HOSTILE}),
        (BROWSE, {"min_turn": HOSTILE}),
    ],
)
def test_values_from_the_url_are_escaped_in_messages(open_page, page_file, query):
    at = open_page(page_file, **query)
    messages = [e.value for e in at.error] + [w.value for w in at.warning]
    assert messages, "a bad value gives a message"
    for body in messages:
        assert "](http" not in body and "203.0.113.7" not in body, body


def test_sidebar_escapes_the_path_typed(open_page, tmp_path):
    at = open_page("app_pages/overview.py")
    at.sidebar.text_input[0].input(str(tmp_path / "![x](http:" / "203.0.113.7" / "p.png)"))
    by_label(at.sidebar.button, "Open").click().run()
    assert at.sidebar.error and all("](http" not in e.value for e in at.sidebar.error)


@pytest.mark.parametrize("page_file", ["app_pages/overview.py", BROWSE, DECISION])
def test_a_missing_database_is_explained_not_a_crash(monkeypatch, tmp_path, page_file):
    monkeypatch.setenv("NEMO_DB", str(tmp_path / "nowhere.db"))
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(page_file).run()
    assert not at.exception
    assert any("no database at" in plain(e.value) for e in at.sidebar.error)
    assert any("Open a workbench database from the sidebar" in i.value for i in at.info)
    assert not (tmp_path / "nowhere.db").exists(), "opening must not create the file"
    # issue 19: one button opens the demo database instead
    assert any(b.label == "Open the demo database" for b in at.sidebar.button)


def test_browse_widgets_show_the_url_filter_after_a_visit_to_another_page(open_page, store):
    """Issue 19: back from a decision point (link or browser Back), the widgets showed "(any)" although the
    list was filtered, and Apply then dropped the filter."""
    at = open_page(BROWSE, split="tool_calling", action_type="message", min_tools="2")
    target = browse_ids(at)[0]
    at.query_params["id"] = target
    at.switch_page(DECISION).run()
    assert at.code[0].value == target
    at.query_params.pop("id")
    at.switch_page(BROWSE).run()
    assert not at.exception
    assert at.selectbox(key="f_split").value == "tool_calling"
    assert at.selectbox(key="f_action_type").value == "message"
    assert at.number_input(key="f_min_tools").value == 2
    apply_filters(at)
    assert query(at) == {"split": "tool_calling", "action_type": "message", "min_tools": "2"}
    flt = DecisionPointFilter(split="tool_calling", action_type="message", min_tools=2)
    assert f"{store.count(flt):,} decision points match" in captions(at)


def test_the_demo_button_opens_the_demo_database(monkeypatch, tmp_path, demo_db_master):
    import ui.db as ui_db

    monkeypatch.setenv("NEMO_DB", str(tmp_path / "nowhere.db"))
    demo = tmp_path / "demo-copy.db"
    shutil.copy(demo_db_master, demo)
    monkeypatch.setattr(ui_db, "DEMO_DB", demo)  # never rebuild the repository's data/demo.db in a test
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page("app_pages/overview.py").run()
    next(b for b in at.sidebar.button if b.label == "Open the demo database").click().run()
    assert not at.exception
    assert not at.sidebar.error
    assert any(m.label == "Decision points" and m.value == "180" for m in at.main.metric)
