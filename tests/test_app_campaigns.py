"""The Campaigns (admin) and Annotate pages through AppTest, on a copy of the demo database: create a
campaign, two annotators answer and skip, progress and results appear; the admin passphrase; an annotator
never sees the expected action (nor someone else's answer) before submitting."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_runner import run_app_page
from nemo_core.people import campaigns as C
from nemo_core.data.filters import DecisionPointFilter
from nemo_core.data.store import Store

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
CAMPAIGNS = "app_pages/campaigns.py"
ANNOTATE = "app_pages/annotate.py"
TEXT_KINDS = ("markdown", "text", "caption", "code", "json", "info", "success", "warning", "error", "title",
              "subheader", "header", "metric")


@pytest.fixture
def app(demo_db, monkeypatch):
    monkeypatch.setenv("NEMO_DB", str(demo_db))
    monkeypatch.delenv("NEMO_ADMIN_PASSWORD", raising=False)

    def open_page(page: str) -> AppTest:
        return run_app_page(page)

    return open_page


@pytest.fixture
def store(demo_db):
    s = Store.open(demo_db)
    yield s
    s.close()


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} in {[b.label for b in at.button]}"
    return found[0]


def frame_with(at: AppTest, column: str):
    """The first dataframe with this column (AppTest does not expose a dataframe's key)."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no dataframe with a {column!r} column")


def all_text(at: AppTest) -> str:
    parts = []
    for kind in TEXT_KINDS:
        for el in getattr(at, kind):
            parts.append(str(el.value))
            parts.append(str(getattr(el, "label", "")))
    return "\n".join(parts)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def sign_in(at: AppTest, name: str) -> AppTest:
    at.text_input(key="annotate::name_input").input(name)
    return ok(button(at, "Start annotating").click().run())


def answer_message(at: AppTest, store: Store, cid: int, who: str, text: str) -> C.Assignment:
    a = C.next_item(store, cid, who)  # the annotator's open item (the page handed it out)
    at.radio(key=f"annotate::{a.id}::mode::item-{a.id}").set_value("Send a message").run()
    at.text_area(key=f"annotate::{a.id}::message::item-{a.id}").input(text)
    ok(button(at, "Submit this message").click().run())
    return a


def test_create_campaign_two_annotators_answer_and_skip_results_appear(app, store, tmp_path):
    admin = app(CAMPAIGNS)
    assert "No campaign yet" in all_text(admin)
    admin.text_input(key="campaigns::new_name").input("pilot")
    admin.number_input(key="campaigns::size").set_value(6)
    admin.number_input(key="campaigns::seed").set_value(4)
    admin.number_input(key="campaigns::overlap").set_value(2)
    admin.slider(key="campaigns::shared").set_value(50)
    admin.text_area(key="campaigns::instructions").input("Answer as the assistant would.")
    admin.number_input(key="campaigns::min_tools").set_value(1)
    ok(button(admin, "Create campaign").click().run())
    camp = C.get_campaign(store, "pilot")
    assert camp.n_items == 6 and camp.overlap == 2 and camp.shared_share == 0.5 and camp.seed == 4
    assert camp.selection == {"exclude_flags": "ungradeable", "min_tools": "1"} and camp.stratify
    assert "Created with 6 items" in all_text(admin)

    ann, bob = app(ANNOTATE), app(ANNOTATE)
    sign_in(ann, "ann")
    sign_in(bob, "bob")
    assert "Answer as the assistant would." in all_text(ann)
    first = answer_message(ann, store, camp.id, "ann", "I can help with that.")
    assert "Saved. (This campaign does not show grades" in all_text(ann)
    assert not [m for m in ann.metric if m.label == "Reward"]  # no breakdown: the campaign hides grades
    # ann skips the next one with a reason
    skip_item = C.next_item(store, camp.id, "ann")
    ann.text_input(key=f"annotate::skip_reason::{skip_item.id}").input("needs the account history")
    ok(button(ann, "Skip").click().run())
    answer_message(bob, store, camp.id, "bob", "Let me check that for you.")
    answer_message(bob, store, camp.id, "bob", "Done.")

    rows = {(r["annotator"], r["dp_id"]): r for r in C.answers(store, camp.id)}
    assert rows[("ann", first.dp_id)]["status"] == "answered"
    assert rows[("ann", skip_item.dp_id)]["skip_reason"] == "needs the account history"
    assert sum(r["status"] == "answered" for r in rows.values()) == 3

    admin = app(CAMPAIGNS)
    metrics = {m.label: m.value for m in admin.metric}
    assert metrics["Answers"] == "3"
    assert metrics["Human baseline reward"] not in ("", "n/a")
    progress = frame_with(admin, "open now")
    assert sorted(progress["annotator"]) == ["ann", "bob"]
    assert dict(zip(progress["annotator"], progress["done"])) == {"ann": 2, "bob": 2}
    chart = json.loads(admin.get("plotly_chart")[0].proto.spec)
    assert {t["name"] for t in chart["data"]} >= {"split", "action type", "annotator"}
    # issue 19: the time plot "per annotator" is split by annotator
    times = [json.loads(c.proto.spec) for c in admin.get("plotly_chart")
             if "seconds" in json.dumps(json.loads(c.proto.spec)["layout"].get("xaxis", {}))]
    assert len(times) == 1 and sorted(t["name"] for t in times[0]["data"]) == ["ann", "bob"]
    scores = frame_with(admin, "95% CI low")
    assert set(scores["group"]) == {"overall", "split", "action type", "annotator"}
    # shared items were answered by both: agreement is measured
    assert metrics["Items with ≥2 answers"] in ("1", "2")
    # the humans against a run of the same answers (ann's, re-graded): a paired comparison
    from nemo_core.people.baseline import save_as_run
    save_as_run(store, camp.id, "ann", tmp_path)
    ok(admin.run())
    admin.selectbox(key="campaigns::vs_run").set_value("human: ann (pilot)").run()
    ok(admin)
    metrics = {m.label: m.value for m in admin.metric}
    assert {"Humans", "Run", "Run − humans"} <= set(metrics)
    assert "On 1 of the" in all_text(admin)


def matching_preview(at: AppTest) -> int:
    """The create form's count of matching decision points (issue 19: shown before Create)."""
    found = [m for m in (re.search(r"\*\*([\d,]+) decision points? match", el.value) for el in [*at.info, *at.warning])
             if m]
    assert len(found) == 1, [el.value for el in [*at.info, *at.warning]]
    return int(found[0].group(1).replace(",", ""))


@pytest.mark.parametrize("settings, expected_query", [
    ({}, {"exclude_flags": "ungradeable"}),
    ({"split": "interactive_agent", "action_type": "message"},
     {"split": "interactive_agent", "action_type": "message", "exclude_flags": "ungradeable"}),
    ({"min_tools": 4, "max_turn": 6, "text": "order"},
     {"min_tools": "4", "max_turn": "6", "text": "order", "exclude_flags": "ungradeable"}),
])
def test_the_count_before_create_is_the_population_after(app, store, settings, expected_query):
    """Issue 19: the filters sat in the form, so nothing said how many decision points matched until the
    campaign existed. The count follows the filters live, and equals the "drawn from N matching" of Create."""
    admin = app(CAMPAIGNS)
    before = matching_preview(admin)
    assert before == store.count(DecisionPointFilter(exclude_flags=("ungradeable",)))
    for key, value in settings.items():
        widget = {"split": admin.selectbox, "action_type": admin.selectbox, "text": admin.text_input,
                  "min_tools": admin.number_input, "max_turn": admin.number_input}[key](key=f"campaigns::{key}")
        (widget.input(value) if key == "text" else widget.set_value(value)).run()
        ok(admin)
    shown = matching_preview(admin)  # no Create pressed yet
    assert not C.list_campaigns(store)
    assert shown == store.count(DecisionPointFilter.from_query(expected_query)) > 0
    if settings:
        assert shown < before, "the count follows the filters before Create"
    admin.text_input(key="campaigns::new_name").input("preview")
    admin.number_input(key="campaigns::size").set_value(3)
    ok(button(admin, "Create campaign").click().run())
    camp = C.get_campaign(store, "preview")
    assert camp.selection == expected_query
    assert camp.n_population == shown
    assert f"Created with 3 items drawn from {shown:,} matching decision points" in all_text(admin)


def test_a_selection_that_matches_nothing_says_so_before_create(app, store):
    admin = app(CAMPAIGNS)
    admin.text_input(key="campaigns::tool").input("no_such_tool").run()
    assert matching_preview(ok(admin)) == 0
    assert any("widen it" in w.value for w in admin.warning)
    admin.text_input(key="campaigns::new_name").input("empty")
    ok(button(admin, "Create campaign").click().run())
    assert any("no decision point matches this selection" in e.value for e in admin.error)
    assert not C.list_campaigns(store)


def test_reveal_after_submit_shows_the_breakdown(app, store):
    camp = C.create_campaign(store, "reveal", selection={"action_type": "message"}, sample_size=3, seed=1,
                             reveal_after_submit=True)
    at = sign_in(app(ANNOTATE), "ann")
    answer_message(at, store, camp.id, "ann", "Here is your answer.")
    assert "how your previous answer was graded" in all_text(at)
    assert [m for m in at.metric if m.label == "Reward"]


def test_annotator_never_sees_the_expected_action_nor_others_answers(app, store):
    camp = C.create_campaign(store, "blind", selection={"action_type": "message", "exclude_flags": "empty_expected"},
                             sample_size=4, seed=2, shared_share=1.0)
    ann = sign_in(app(ANNOTATE), "ann")
    secret = "ANN-PRIVATE-ANSWER-7431"
    seen_ids = []
    for _ in range(2):
        a = C.next_item(store, camp.id, "ann")
        dp = store.get(a.dp_id)
        shown = all_text(ann)
        assert dp.expected_content.strip() and dp.expected_content.strip()[:200] not in shown
        last_user = [m for m in dp.context if m.get("role") == "user"][-1]["content"]
        assert last_user.strip()[:100] in shown  # the context is there (so the check above can fail)
        assert "Expected action" not in shown and "Reveal" not in shown
        seen_ids.append(a.dp_id)
        answer_message(ann, store, camp.id, "ann", secret)
    bob = sign_in(app(ANNOTATE), "bob")
    b = C.next_item(store, camp.id, "bob")
    assert b.dp_id == seen_ids[0]  # shared: bob gets the item ann answered
    shown = all_text(bob)
    assert secret not in shown
    assert store.get(b.dp_id).expected_content.strip()[:200] not in shown
    # the decision point id is not shown either (it would lead to the page that reveals the expected action),
    # not even in a widget key (Streamlit writes those into the page)
    assert b.dp_id not in shown
    keys = [w.key for kind in ("radio", "text_area", "text_input", "selectbox", "button", "toggle")
            for w in getattr(bob, kind) if getattr(w, "key", None)]
    assert keys and not [k for k in keys if b.dp_id in k]


def test_admin_passphrase_is_required_when_set(app, monkeypatch, store):
    C.create_campaign(store, "locked", sample_size=3, seed=1)
    monkeypatch.setenv("NEMO_ADMIN_PASSWORD", "open sesame")
    at = app(CAMPAIGNS)
    assert [t for t in at.text_input if t.label == "Admin passphrase"]
    assert not [b for b in at.button if b.label == "Create campaign"]
    assert not at.tabs and not at.main.metric and not [s for s in at.selectbox if s.label == "Campaign"]
    at.text_input(key="campaigns::passphrase").input("open sesam")
    ok(button(at, "Unlock").click().run())
    assert "Wrong passphrase." in all_text(at)
    assert not at.tabs
    at.text_input(key="campaigns::passphrase").input("open sesame")
    ok(button(at, "Unlock").click().run())
    assert [b for b in at.button if b.label == "Create campaign"] and at.tabs
    # a new passphrase locks the session again
    monkeypatch.setenv("NEMO_ADMIN_PASSWORD", "another one")
    ok(at.run())
    assert not at.tabs and [t for t in at.text_input if t.label == "Admin passphrase"]
    # annotating needs no passphrase
    annotate = app(ANNOTATE)
    assert [t for t in annotate.text_input if t.label == "Your name"]


def test_pages_without_campaigns(app):
    annotate = sign_in(app(ANNOTATE), "ann")
    assert "No campaign is open" in all_text(annotate)
    admin = app(CAMPAIGNS)
    assert [b for b in admin.button if b.label == "Create campaign"]


def test_an_item_gone_from_the_database_is_skipped_not_stuck(app, store):
    camp = C.create_campaign(store, "gone", sample_size=2, seed=1)
    at = sign_in(app(ANNOTATE), "ann")
    first = C.next_item(store, camp.id, "ann")
    with store.transaction() as conn:
        conn.execute("DELETE FROM decision_points WHERE id = ?", (first.dp_id,))
    ok(at.run())
    assert C.get_assignment(store, first.id).skip_reason == "the decision point is no longer in the database"
    assert C.next_item(store, camp.id, "ann").dp_id != first.dp_id
    assert "Item 2 of 2" in all_text(at)


def test_a_released_item_stays_on_screen_and_a_late_answer_is_kept(app, store):
    camp = C.create_campaign(store, "stale", selection={"action_type": "message"}, sample_size=3, seed=1)
    at = sign_in(app(ANNOTATE), "ann")
    first = C.next_item(store, camp.id, "ann")
    assert C.release_stale(store, camp.id, 0, now=first.shown_ts + 60) == 1
    ok(at.run())  # a rerun (say, a widget change) keeps the same item instead of handing out a new one
    assert "released for others" in all_text(at)
    at.radio(key=f"annotate::{first.id}::mode::item-{first.id}").set_value("Send a message").run()
    at.text_area(key=f"annotate::{first.id}::message::item-{first.id}").input("late but kept")
    ok(button(at, "Submit this message").click().run())
    kept = C.get_assignment(store, first.id)
    assert kept.status == "answered" and kept.action["content"] == "late but kept"

    # released, then taken by bob: ann's late answer is refused with a clear message, and she moves on
    second = C.next_item(store, camp.id, "ann")
    assert C.release_stale(store, camp.id, 0, now=second.shown_ts + 60) == 1
    taken = C.next_item(store, camp.id, "bob")
    assert taken.dp_id == second.dp_id
    ok(at.run())
    at.radio(key=f"annotate::{second.id}::mode::item-{second.id}").set_value("Send a message").run()
    at.text_area(key=f"annotate::{second.id}::message::item-{second.id}").input("too late")
    ok(button(at, "Submit this message").click().run())
    assert "handed to someone else" in all_text(at)
    ok(button(at, "Next item").click().run())
    third = C.next_item(store, camp.id, "ann")
    assert third.dp_id not in (first.dp_id, second.dp_id)
    assert C.get_assignment(store, second.id).status == "released"


def test_annotate_only_mode_offers_no_page_that_shows_expected_actions(monkeypatch, demo_db, annotate_mode):
    """NEMO_APP_MODE=annotate: a server for annotators runs the Annotate page alone (Browse and the
    decision point page would reveal the expected action of the item being annotated)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NEMO_DB", str(demo_db))
    at = AppTest.from_file("../app.py", default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "Annotate"
    with pytest.raises(Exception):
        at.switch_page("app_pages/browse.py").run()


def test_deleting_a_campaign_needs_a_confirmation_and_keeps_the_others(app, store):
    keep = C.create_campaign(store, "keep", sample_size=3, seed=1).id
    gone = C.create_campaign(store, "gone", sample_size=4, seed=2).id
    a = C.next_item(store, gone, "ann")
    C.submit_answer(store, a.id, "ann", {"type": "message", "content": "Sure."})
    admin = app(CAMPAIGNS)
    admin.selectbox(key="campaigns::pick").set_value(gone).run()
    assert "with its 4 items and 1 answer(s)" in all_text(ok(admin))
    ok(button(admin, "Delete the campaign").click().run())  # not before the box is ticked
    assert "Tick the box first: nothing was deleted." in all_text(admin)
    assert {c.name for c in C.list_campaigns(store)} == {"keep", "gone"}
    admin.checkbox(key="campaigns::delete_sure").check()
    ok(button(admin, "Delete the campaign").click().run())
    assert [c.name for c in C.list_campaigns(store)] == ["keep"]
    assert store.scalar("SELECT count(*) FROM campaign_answers WHERE campaign_id = ?", (gone,)) == 0
    assert store.scalar("SELECT count(*) FROM campaign_items WHERE campaign_id = ?", (gone,)) == 0
    assert store.scalar("SELECT count(*) FROM campaign_items WHERE campaign_id = ?", (keep,)) == 3
    assert admin.selectbox(key="campaigns::pick").value == keep  # the page moved on to a campaign that exists


def test_the_annotator_name_survives_a_reload_and_the_answer_has_shortcuts(app, store, monkeypatch):
    """Issue 19: the name was asked again after every reload; submit and skip had no shortcut."""
    camp = C.create_campaign(store, "keys", selection={"action_type": "message"}, sample_size=3, seed=1)
    at = sign_in(app(ANNOTATE), "ann")
    assert at.query_params["annotator"] in ("ann", ["ann"])
    # a reload: a new session with the same URL
    again = AppTest.from_file(APP, default_timeout=30)
    again.query_params["annotator"] = "ann"
    again.query_params["campaign"] = str(camp.id)
    again.switch_page(ANNOTATE).run()
    ok(again)
    assert not [t for t in again.text_input if t.key == "annotate::name_input"]
    assert "Annotating as **ann**" in all_text(again)
    shortcuts = {b.label: b.proto.shortcut for b in again.get("button")}
    assert shortcuts.get("Submit this call") == "ctrl+enter" or shortcuts.get("Submit this message") == "ctrl+enter"
    assert shortcuts.get("Skip") == "alt+k"
    # a bad name in the URL is dropped, and the form asks for one
    bad = AppTest.from_file(APP, default_timeout=30)
    bad.query_params["annotator"] = "x" * 500
    bad.switch_page(ANNOTATE).run()
    assert [t for t in bad.text_input if t.key == "annotate::name_input"]
