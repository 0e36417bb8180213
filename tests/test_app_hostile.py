"""Issue 20, points 5 and 7: no user- or data-supplied string is rendered as Markdown or autolinked, on any page.

A copy of the demo database gets hostile names and data everywhere (`hostile_data`): run, campaign, audit-set
and annotator names, notes, a tool's name, description and schema, tool results, a model's name and error,
URL parameters. Each page is run in AppTest in the states that show them, and every string the run hands to
Streamlit's Markdown renderer is checked (`markdown_scan`): no unescaped markup and no GFM autolink.
"""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from app_runner import run_app_page
import hostile_data as H
from markdown_scan import live_markdown, problems
from ui.safe import break_autolinks, code_span, escape_markdown, inert_label


@pytest.fixture(scope="module")
def hostile_db(hostile_db_master, tmp_path_factory) -> H.HostileDB:
    """A copy for this module (the pages write to it: taxonomies, a run uploaded)."""
    db = tmp_path_factory.mktemp("hostile") / "demo.db"
    shutil.copy(hostile_db_master.path, db)
    return dataclasses.replace(hostile_db_master, path=db)


@pytest.fixture
def run_page(hostile_db, monkeypatch):
    monkeypatch.setenv("NEMO_DB", str(hostile_db.path))
    monkeypatch.delenv("NEMO_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def run(page: str, /, session: dict | None = None, **query: str) -> AppTest:
        return run_app_page(page, query, timeout=60, session=session)

    return run


def assert_inert(at: AppTest) -> None:
    live = live_markdown(at)
    assert not live, "\n".join(f"{where}: {found} in {text!r}" for where, text, found in live)


# ---- the helpers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "http://203.0.113.9/x", "HTTPS://203.0.113.9", "www.evil.example", "WWW.Evil.example", "a@evil.example",
    "mailto:a@evil.example", "xmpp:a@evil.example", "javascript:alert(1)", H.hostile("T"),
])
def test_escaped_text_has_nothing_left_to_autolink(text):
    assert problems(text), "the scanner must see the raw text as live"
    for safe in (escape_markdown(text), inert_label(text, 500)):
        assert problems(safe) == [], safe
    assert problems(code_span(text, 500)) == []  # code spans are never autolinked
    assert break_autolinks(text).replace("\u2060", "") == text  # invisible: the same text once rendered


# ---- every page, with hostile data -------------------------------------------------------------------------
def test_overview_and_browse(run_page):
    assert_inert(run_page("app_pages/overview.py"))
    assert_inert(run_page("app_pages/browse.py"))
    assert_inert(run_page("app_pages/browse.py", tool=H.TOOL_NAME))
    assert_inert(run_page("app_pages/browse.py", text="evil", split=H.CRAFTED_ID))


@pytest.mark.parametrize("query", [
    {"id": H.CALL_DP},
    {"id": H.MESSAGE_DP, "run": H.RUN_NAME},
    {"id": H.CALL_DP, "run": H.RUN_NAME},
    {"id": H.CRAFTED_ID},
    {"id": f"tool_calling/{H.CRAFTED_ID}/2"},
    {"id": H.MESSAGE_DP, "run": H.CRAFTED_ID},
    {"id": H.MESSAGE_DP, "run": H.RUN_NAME, "vs": H.CRAFTED_ID},
    {"id": H.CALL_DP, "sort": H.CRAFTED_ID},
])
def test_decision_point(run_page, query):
    at = run_page("app_pages/decision_point.py", **query)
    assert_inert(at)


def test_decision_point_with_a_model_answer_shown(run_page, hostile_db):
    """The Try panel's model answer as it is drawn after a request (model name, error, notes)."""
    failed = {"attempt_id": 1, "action": None, "raw_response": None, "breakdown": None,
              "extra": {"model": H.hostile("Model"), "error": H.hostile("Error"), "error_kind": H.hostile("Kind"),
                        "notes": [H.hostile("Note")], "tool_choice": "auto", "attempts": 1}}
    at = run_page("app_pages/decision_point.py", id=H.MESSAGE_DP,
                  session={f"try::result::model::{H.MESSAGE_DP}": failed})
    assert any("Error" in e.value for e in at.error)
    assert_inert(at)


@pytest.mark.parametrize("page_file, query", [
    ("app_pages/runs.py", {}),
    ("app_pages/runs.py", {"run": H.RUN_NAME}),
    ("app_pages/runs.py", {"run": H.CRAFTED_ID}),
    ("app_pages/failures.py", {"run": H.RUN_NAME}),
    ("app_pages/failures.py", {"run": H.CRAFTED_ID}),
    ("app_pages/compare.py", {"a": H.RUN_NAME}),
    ("app_pages/compare.py", {"a": H.CRAFTED_ID, "b": H.CRAFTED_ID}),
])
def test_runs_failures_compare(run_page, page_file, query):
    assert_inert(run_page(page_file, **query))


def test_runs_page_after_deleting_asks_with_the_name(run_page, hostile_db):
    at = run_page("app_pages/runs.py", run=H.RUN_NAME)
    next(b for b in at.button if b.key == "runs_delete").click().run()
    assert at.warning, "the confirmation names the run"
    assert_inert(at)


def test_an_upload_with_a_hostile_run_name(run_page, hostile_db):
    """The issue's case: the upload form's messages rendered the typed run name as Markdown, and a name
    `![p](http://…/x.png)` made the browser fetch the image."""
    at = run_page("app_pages/runs.py")
    line = b'{"id": "' + H.MESSAGE_DP.encode() + b'", "action": {"type": "message", "content": "hi"}}\n'
    at.get("file_uploader")[0].upload("p.jsonl", line + b"not json\n").run()
    name = "![p](http://203.0.113.9/upload.png) www.evil-upload.example"
    next(t for t in at.text_input if t.label == "Run name").input(name)
    next(b for b in at.button if "good lines" in b.label).click().run()
    assert not at.exception
    assert at.success and "Stored run" in at.success[0].value, [e.value for e in at.error]
    assert_inert(at)
    # the same name again: the error names it, escaped too
    at.get("file_uploader")[0].upload("p.jsonl", line).run()
    next(t for t in at.text_input if t.label == "Run name").input(name)
    next(b for b in at.button if "good lines" in b.label).click().run()
    assert at.error and "already exists" in at.error[0].value
    assert_inert(at)


def test_annotate(run_page, hostile_db):
    at = run_page("app_pages/annotate.py")
    at.text_input(key="annotate::name_input").input(H.short_hostile("Newcomer"))
    next(b for b in at.button if b.label == "Start annotating").click().run()
    assert not at.exception
    assert at.subheader and at.subheader[0].value.startswith("Item")  # an item of the hostile campaign
    assert_inert(at)


def test_campaigns_every_tab(run_page, hostile_db):
    at = run_page("app_pages/campaigns.py", campaign=str(hostile_db.campaign_id))
    assert at.tabs
    assert_inert(at)
    at.selectbox(key="campaigns::export_who").set_value(H.ANNOTATORS[0]).run()
    at.selectbox(key="campaigns::vs_run").set_value(H.RUN_NAME).run()
    assert not at.exception
    assert any(b.key == "campaigns::save_run" for b in at.button)
    assert_inert(at)
    assert_inert(run_page("app_pages/campaigns.py", campaign=H.CRAFTED_ID))


def test_audit_every_set(run_page, hostile_db):
    from nemo_core.people.audit.sets import list_audit_sets
    from nemo_core.data.store import Store

    with Store.open(hostile_db.path) as store:
        names = [s.name for s in list_audit_sets(store)]
    assert len(names) == 3
    for name in [*names, H.CRAFTED_ID]:
        at = run_page("app_pages/audit.py", set=name)
        assert_inert(at)
    at.radio(key="audit_view").set_value("Judge blind").run()
    at.text_input(key="audit_rater").input(H.short_hostile("Judge")).run()
    assert not at.exception
    assert_inert(at)
    at.radio(key="audit_source").set_value("campaign").run()
    assert_inert(at)
