"""Issue 20, point 4: the admin passphrase guards every view of campaign answers and annotator names, on every
page (the Campaigns page, runs of people's answers, the decision point's predictions, Failures, Compare, and
the Grader audit's sets and builder), through the one check in `ui.admin`.

The hostile database (`hostile_data`) holds a campaign answered by two annotators whose names, answers, notes
and skip reasons carry plain tokens (`SECRET_TOKENS`), a run saved from one annotator's answers, and an audit
set built from the campaign. With `NEMO_ADMIN_PASSWORD` set and not given, no token may appear anywhere in a
page: every string of every element (dataframes and charts included). Once given, they do (so the check is
not looking in the wrong place).
"""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from app_runner import run_app_page
import hostile_data as H
from nemo_core.people.audit.sets import get_audit_set, list_audit_sets
from nemo_core.people.guarded import audit_set_is_guarded, people_run_names
from nemo_core.runs.analysis import delete_run_with_analysis
from nemo_core.runs.run import get_run
from nemo_core.data.store import Store

PASSPHRASE = "correct horse"


@pytest.fixture(scope="module")
def db(hostile_db_master, tmp_path_factory) -> H.HostileDB:
    path = tmp_path_factory.mktemp("guard") / "demo.db"
    shutil.copy(hostile_db_master.path, path)
    return dataclasses.replace(hostile_db_master, path=path)


@pytest.fixture(scope="module")
def campaign_dp(db) -> str:
    """A decision point that an annotator answered (and that the human run holds)."""
    with Store.open(db.path) as store:
        return store.query("SELECT dp_id FROM campaign_answers WHERE annotator = ? AND status = 'answered' "
                           "ORDER BY id LIMIT 1", (H.ANNOTATORS[0],))[0]["dp_id"]


@pytest.fixture
def run_page(db, monkeypatch):
    monkeypatch.setenv("NEMO_DB", str(db.path))
    monkeypatch.setenv("NEMO_ADMIN_PASSWORD", PASSPHRASE)

    def run(page: str, /, **query: str) -> AppTest:
        return run_app_page(page, query, timeout=60)

    return run


def everything(at: AppTest) -> str:
    """Every string the run sent to the browser: each element's whole proto (labels, options, help, chart
    specs...) and each dataframe's cells."""
    parts = []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
    for df in at.dataframe:
        parts.append(df.value.to_string())
    return "\n".join(parts)


def leaked(at: AppTest) -> list[str]:
    text = everything(at)
    return [t for t in H.SECRET_TOKENS if t in text]


def unlock(at: AppTest, passphrase: str = PASSPHRASE) -> AppTest:
    """Type the passphrase into the page's (first) passphrase form and submit it."""
    field = next(t for t in at.text_input if t.label == "Admin passphrase")
    field.input(passphrase)
    form = field.key.rsplit("::", 1)[0]  # ui.admin.unlock_form: "<key>::passphrase" in form "<key>::unlock"
    at.button(key=f"FormSubmitter:{form}::unlock-Unlock").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# ---- the core rule --------------------------------------------------------------------------------------------
def test_what_is_guarded(db):
    with Store.open(db.path) as store:
        assert people_run_names(store) == {db.human_run}
        guarded = {s.name: audit_set_is_guarded(store, s) for s in list_audit_sets(store)}
        assert guarded == {H.SET_NAME: False, db.campaign_set: True, "run:" + H.RUN_NAME: False}


def test_an_audit_set_whose_run_is_gone_counts_as_guarded(hostile_db_master, tmp_path):
    path = tmp_path / "demo.db"
    shutil.copy(hostile_db_master.path, path)
    with Store.open(path) as store:
        audit_set = get_audit_set(store, "run:" + H.RUN_NAME)
        assert not audit_set_is_guarded(store, audit_set)
        delete_run_with_analysis(store, get_run(store, H.RUN_NAME).id)
        assert audit_set_is_guarded(store, audit_set)


# ---- every page, locked ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page_file, query", [
    ("app_pages/overview.py", {}),
    ("app_pages/browse.py", {}),
    ("app_pages/runs.py", {}),
    ("app_pages/runs.py", {"run": "HUMAN"}),
    ("app_pages/failures.py", {"run": "HUMAN"}),
    ("app_pages/compare.py", {"a": "HUMAN", "b": H.RUN_NAME}),
    ("app_pages/annotate.py", {}),
    ("app_pages/campaigns.py", {"campaign": "1"}),
    ("app_pages/audit.py", {}),
    ("app_pages/audit.py", {"set": "CAMPAIGN_SET"}),
    ("app_pages/decision_point.py", {"id": "CAMPAIGN_DP"}),
    ("app_pages/decision_point.py", {"id": "CAMPAIGN_DP", "run": "HUMAN"}),
    ("app_pages/decision_point.py", {"id": "CAMPAIGN_DP", "run": H.RUN_NAME, "vs": "HUMAN"}),
])
def test_no_page_shows_answers_or_names_without_the_passphrase(run_page, db, campaign_dp, page_file, query):
    values = {"HUMAN": db.human_run, "CAMPAIGN_SET": db.campaign_set, "CAMPAIGN_DP": campaign_dp}
    at = run_page(page_file, **{k: values.get(v, v) for k, v in query.items()})
    assert leaked(at) == []
    if page_file not in ("app_pages/overview.py", "app_pages/browse.py", "app_pages/annotate.py"):
        assert [t for t in at.text_input if t.label == "Admin passphrase"], "the page offers the passphrase"


def test_the_audit_builder_asks_for_the_passphrase_before_reading_a_campaign(run_page, db):
    """The issue's case: Grader audit → "A campaign's human answers" → Build listed every answer, its score
    and the annotator's name without the passphrase."""
    at = run_page("app_pages/audit.py")
    at.radio(key="audit_source").set_value("campaign").run()
    assert not at.exception
    assert not [b for b in at.button if b.label == "Build the audit set"], "no builder before the passphrase"
    assert leaked(at) == []
    unlock(at)
    assert [b for b in at.button if b.label == "Build the audit set"]
    assert any(o == H.CAMPAIGN_NAME for o in at.selectbox(key="audit_build_campaign").options)


@pytest.mark.parametrize("page_file, query, where", [
    ("app_pages/runs.py", {"run": "HUMAN"}, "run name"),
    ("app_pages/audit.py", {"set": "CAMPAIGN_SET"}, "answers as candidates"),
    ("app_pages/decision_point.py", {"id": "CAMPAIGN_DP", "run": "HUMAN"}, "the prediction"),
    ("app_pages/campaigns.py", {"campaign": "1"}, "progress and results"),
])
def test_the_passphrase_unlocks_them(run_page, db, campaign_dp, page_file, query, where):
    values = {"HUMAN": db.human_run, "CAMPAIGN_SET": db.campaign_set, "CAMPAIGN_DP": campaign_dp}
    query = {k: values.get(v, v) for k, v in query.items()}
    at = run_page(page_file, **query)
    assert leaked(at) == []
    unlock(at)
    for key, value in query.items():  # a locked page moved its link on to what it could show: follow it again
        at.query_params[key] = value
    at.run()
    assert leaked(at), f"once unlocked, the {where} show"


def test_a_wrong_passphrase_unlocks_nothing(run_page, db):
    at = unlock(run_page("app_pages/runs.py", run=db.human_run), "wrong horse")
    assert "Wrong passphrase." in [e.value for e in at.error]
    assert leaked(at) == []


def test_without_a_passphrase_nothing_is_hidden(run_page, db, monkeypatch):
    monkeypatch.delenv("NEMO_ADMIN_PASSWORD")
    at = run_page("app_pages/runs.py", run=db.human_run)
    assert leaked(at) and not [t for t in at.text_input if t.label == "Admin passphrase"]


# ---- the remembered unlock (issue 19: the passphrase was asked again after every reload) ---------------------------
# AppTest has no browser, so `ui.admin._sent_cookie` (st.context.cookies) is replaced by the cookie a browser would
# send; tests/browser/test_admin_cookie_browser.py does the same with a real cookie in Chromium.
GUARDED_PAGES = [
    ("app_pages/runs.py", {"run": "HUMAN"}),
    ("app_pages/failures.py", {"run": "HUMAN"}),
    ("app_pages/compare.py", {"a": "HUMAN", "b": H.RUN_NAME}),
    ("app_pages/campaigns.py", {"campaign": "1"}),
    ("app_pages/audit.py", {"set": "CAMPAIGN_SET"}),
    ("app_pages/decision_point.py", {"id": "CAMPAIGN_DP", "run": "HUMAN"}),
]


@pytest.fixture
def browser_cookie(monkeypatch):
    """Set the unlock cookie the next sessions are opened with (None: no cookie)."""
    import ui.admin

    sent: dict[str, str | None] = {"value": None}
    monkeypatch.setattr(ui.admin, "_sent_cookie", lambda: sent["value"])

    def set_cookie(value: str | None) -> None:
        sent["value"] = value

    return set_cookie


def cookie_scripts(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html") if "document.cookie" in h.proto.body]


def lock_buttons(at: AppTest) -> list:
    return [b for b in at.button if b.label == "Lock"]


@pytest.mark.parametrize("page_file, query", GUARDED_PAGES)
def test_a_valid_cookie_unlocks_every_guarded_page(run_page, db, campaign_dp, browser_cookie, page_file, query):
    from nemo_core.people.unlock import make_token

    values = {"HUMAN": db.human_run, "CAMPAIGN_SET": db.campaign_set, "CAMPAIGN_DP": campaign_dp}
    query = {k: values.get(v, v) for k, v in query.items()}
    browser_cookie(make_token(PASSPHRASE))
    at = run_page(page_file, **query)
    assert leaked(at), "a reload with the cookie shows what the passphrase guards"
    assert not [t for t in at.text_input if t.label == "Admin passphrase"]
    assert lock_buttons(at) and "Admin unlocked in this browser until" in " ".join(c.value for c in at.sidebar.caption)


@pytest.mark.parametrize("kind", ["expired", "other passphrase", "forged", "tampered expiry", "malformed",
                                  "old digest"])
@pytest.mark.parametrize("page_file, query", GUARDED_PAGES)
def test_a_bad_cookie_unlocks_nothing(run_page, db, campaign_dp, browser_cookie, page_file, query, kind):
    import hashlib
    import time

    from nemo_core.people.unlock import make_token

    good = make_token(PASSPHRASE)
    _, expiry, sig = good.split(".")
    cookie = {
        "expired": make_token(PASSPHRASE, now=time.time() - 13 * 3600),
        "other passphrase": make_token("wrong horse"),
        "forged": f"v1.{expiry}.{'ab' * 32}",
        "tampered expiry": f"v1.{int(expiry) + 86400}.{sig}",
        "malformed": "v1.<script>alert(1)</script>",
        # what the session used to keep, a fixed digest of the passphrase, must not work as a cookie
        "old digest": hashlib.sha256(("nemo-admin:" + PASSPHRASE).encode()).hexdigest(),
    }[kind]
    browser_cookie(cookie)
    values = {"HUMAN": db.human_run, "CAMPAIGN_SET": db.campaign_set, "CAMPAIGN_DP": campaign_dp}
    at = run_page(page_file, **{k: values.get(v, v) for k, v in query.items()})
    assert leaked(at) == []
    assert [t for t in at.text_input if t.label == "Admin passphrase"]
    assert not lock_buttons(at)


def test_unlocking_sets_a_signed_cookie_and_lock_clears_it(run_page, db, browser_cookie):
    from nemo_core.people.unlock import LIFETIME_SECONDS, verify

    at = unlock(run_page("app_pages/campaigns.py", campaign="1"))
    token = at.session_state["admin::unlocked"]
    assert verify(PASSPHRASE, token) and PASSPHRASE not in token
    [script] = cookie_scripts(at)
    assert f"nemo_admin={token}; Path=/; " in script and "SameSite=Strict" in script and PASSPHRASE not in script
    max_age = int(script.split("Max-Age=")[1].split(";")[0])
    assert LIFETIME_SECONDS - 60 <= max_age <= LIFETIME_SECONDS
    assert leaked(at) and lock_buttons(at)
    at.run()
    assert cookie_scripts(at) == [], "the cookie is written once, not on every rerun"

    lock_buttons(at)[0].click().run()
    assert not at.exception
    [script] = cookie_scripts(at)
    assert "nemo_admin=; Path=/; Max-Age=0; SameSite=Strict" in script
    assert leaked(at) == [] and not lock_buttons(at)
    assert [t for t in at.text_input if t.label == "Admin passphrase"]


def test_lock_ignores_the_cookie_the_session_was_opened_with(run_page, db, browser_cookie):
    """Streamlit keeps showing a session the cookies of the request that opened it: after Lock (which clears
    the cookie in the browser) the session must not unlock itself again from that stale copy."""
    from nemo_core.people.unlock import make_token

    browser_cookie(make_token(PASSPHRASE))
    at = run_page("app_pages/runs.py", run=db.human_run)
    assert leaked(at)
    lock_buttons(at)[0].click().run()
    assert leaked(at) == []
    at.run()
    assert leaked(at) == [] and not lock_buttons(at)
    unlock(at)  # and the passphrase unlocks it again
    assert leaked(at) and lock_buttons(at)


def test_a_new_passphrase_voids_the_cookie(run_page, db, browser_cookie, monkeypatch):
    from nemo_core.people.unlock import make_token

    browser_cookie(make_token(PASSPHRASE))
    monkeypatch.setenv("NEMO_ADMIN_PASSWORD", "a new one")
    at = run_page("app_pages/campaigns.py", campaign="1")
    assert leaked(at) == [] and [t for t in at.text_input if t.label == "Admin passphrase"]


def test_no_lock_button_without_a_passphrase(run_page, db, browser_cookie, monkeypatch):
    monkeypatch.delenv("NEMO_ADMIN_PASSWORD")
    at = run_page("app_pages/runs.py")
    assert not lock_buttons(at) and cookie_scripts(at) == []


@pytest.mark.parametrize("token", ["v1.1';alert(1);'.00", "v1.123." + "a" * 63, "", "x" * 70])
def test_the_cookie_script_embeds_nothing_but_a_checked_token(token):
    from ui.admin import cookie_script

    with pytest.raises(ValueError):
        cookie_script("set", token)
    with pytest.raises(ValueError):
        cookie_script("delete everything", "")
