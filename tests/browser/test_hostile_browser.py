"""Issue 20 in a real browser (headless Chromium), on a copy of the demo database full of hostile names and data
(`tests/hostile_data.py`: Markdown images, bare URLs, e-mail addresses, `<script>`, `javascript:` links and raw
HTML in run, campaign, audit-set and annotator names, notes, a tool's name, description and results, a crafted
`?id=`).

- Every page, in the states that show that data: no request leaves 127.0.0.1 and no link or source in the DOM
  points anywhere else (`javascript:` included); the names read as their literal text. Screenshots:
  artifacts/screenshots/hostile_*.png.
- With the admin passphrase set and not given: no annotator name and no campaign answer reaches the browser on
  any page, in the DOM or in the websocket frames (dataframes are drawn on a canvas, so their cells are only in
  the frames); once it is given they do. Screenshots: artifacts/screenshots/guarded_*.png.
- An annotators' server (NEMO_APP_MODE=annotate) shows no database path and no way to open another database.
"""

from __future__ import annotations

import shutil
from urllib.parse import quote, urljoin, urlparse

import pytest
from playwright.sync_api import expect

import hostile_data as H
from browser_helpers import screenshot, serve_app, type_in, upload_predictions, wait_idle

pytestmark = pytest.mark.browser

WJ = "\u2060"  # the invisible word joiner ui/safe.py puts where an autolink would start
LINK_ATTRIBUTES = ("href", "src", "srcset", "action", "formaction", "xlink:href", "poster", "data")


def q(value: str) -> str:
    return quote(value, safe="")


@pytest.fixture(scope="module")
def hostile_url(hostile_db_master, tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile-app")
    db = work / "demo.db"
    shutil.copy(hostile_db_master.path, db)
    with serve_app(db, work, {"NEMO_ADMIN_PASSWORD": ""}) as url:
        yield url


@pytest.fixture(scope="module")
def guarded_url(hostile_db_master, tmp_path_factory):
    work = tmp_path_factory.mktemp("guarded-app")
    db = work / "demo.db"
    shutil.copy(hostile_db_master.path, db)
    with serve_app(db, work, {"NEMO_ADMIN_PASSWORD": "correct horse"}) as url:
        yield url


def links_off_loopback(page) -> list[str]:
    """Every link or source in the DOM that resolves to anything but 127.0.0.1 (or an in-page anchor, data:
    or blob:)."""
    values = page.evaluate(
        """(attrs) => { const out = [];
            for (const el of document.querySelectorAll('*')) {
                for (const a of attrs) { const v = el.getAttribute(a); if (v !== null) out.push(v); }
            } return out; }""", list(LINK_ATTRIBUTES))
    bad = []
    for value in values:
        if value.startswith("#"):
            continue
        target = urljoin(page.url, value.strip())
        parsed = urlparse(target)
        if parsed.scheme in ("data", "blob"):
            continue
        if parsed.scheme not in ("http", "https", "ws") or parsed.hostname != "127.0.0.1":
            bad.append(value)
    return bad


def visit(page, url: str, shot: str | None = None) -> None:
    """Open `url` and wait until its script has run to the end (idle twice: on a busy machine the first idle
    can come before the script has started)."""
    page.goto(url)
    wait_idle(page)
    page.wait_for_timeout(800)  # give any image or link a chance to appear and be requested
    wait_idle(page)
    if shot:
        screenshot(page, shot)


def visible_text(page) -> str:
    """The page's text as a person reads it (the word joiners are invisible; code spans use no-break spaces)."""
    return page.inner_text("body").replace(WJ, "").replace("\xa0", " ")


# ---- (a) hostile names and data stay inert ------------------------------------------------------------------------
def test_every_page_with_hostile_data(page, hostile_url, hostile_db_master, outside_requests):
    db = hostile_db_master
    states = [
        ("overview", "/"),
        ("browse", "/browse?tool=" + q(H.TOOL_NAME)),
        ("decision_call", f"/decision_point?id={q(H.CALL_DP)}&run={q(H.RUN_NAME)}"),
        ("decision_message", f"/decision_point?id={q(H.MESSAGE_DP)}&run={q(H.RUN_NAME)}&vs={q(db.human_run)}"),
        ("decision_crafted_id", "/decision_point?id=" + q(H.CRAFTED_ID)),
        ("decision_crafted_run", f"/decision_point?id={q(H.MESSAGE_DP)}&run={q(H.CRAFTED_ID)}"),
        ("runs", "/runs?run=" + q(H.RUN_NAME)),
        ("runs_human", "/runs?run=" + q(db.human_run)),
        ("failures", "/failures?run=" + q(H.RUN_NAME)),
        ("compare", f"/compare?a={q(H.RUN_NAME)}&b={q(db.human_run)}"),
        ("campaigns", f"/campaigns?campaign={db.campaign_id}"),
        ("audit_named", "/audit?set=" + q(H.SET_NAME)),
        ("audit_campaign", "/audit?set=" + q(db.campaign_set)),
        ("audit_run", "/audit?set=" + q("run:" + H.RUN_NAME)),
    ]
    problems = {}
    for name, path in states:
        visit(page, hostile_url + path, f"hostile_{name}")
        if bad := links_off_loopback(page):
            problems[name] = bad
    assert problems == {}, problems

    # the names read as their literal text
    visit(page, hostile_url + "/runs?run=" + q(H.RUN_NAME))
    expect(page.get_by_text("Kind upload")).to_be_visible(timeout=20_000)  # the run's caption, drawn late
    text = visible_text(page)
    assert "model Model ![p](http://203.0.113.9/Model.png) http://203.0.113.9/Model www.evil-Model.example" \
        in text, [line for line in text.splitlines() if "Model" in line]
    visit(page, hostile_url + f"/decision_point?id={q(H.CALL_DP)}")
    expect(page.get_by_role("heading", name="Tools offered")).to_be_visible(timeout=20_000)
    assert H.TOOL_NAME in visible_text(page)
    visit(page, hostile_url + "/decision_point?id=" + q(H.CRAFTED_ID))
    assert H.CRAFTED_ID in page.get_by_test_id("stAlertContentError").inner_text().replace(WJ, "")
    assert page.locator("script:has-text('alert')").count() == 0
    assert outside_requests == [], f"the page tried to fetch: {outside_requests}"


def test_campaign_tabs_and_annotating_with_hostile_names(page, hostile_url, hostile_db_master, outside_requests):
    visit(page, hostile_url + f"/campaigns?campaign={hostile_db_master.campaign_id}")
    for tab in ("Progress", "Results", "Export", "Manage"):
        page.get_by_role("tab", name=tab).click()
        wait_idle(page)
        page.wait_for_timeout(500)
        screenshot(page, f"hostile_campaigns_{tab.lower()}")
        assert links_off_loopback(page) == [], tab
    page.get_by_role("tab", name="Progress").click()
    assert "ZeldaAnn ![p](http://203.0.113.9/p.png)" in visible_text(page)  # a progress text, as text

    visit(page, hostile_url + "/annotate")
    type_in(page, page.get_by_role("textbox", name="Your name"), H.short_hostile("Newcomer"))
    page.get_by_role("button", name="Start annotating").click()
    wait_idle(page)
    expect(page.get_by_text("Annotating as")).to_be_visible(timeout=20_000)
    page.wait_for_timeout(800)
    screenshot(page, "hostile_annotate")
    assert links_off_loopback(page) == []
    assert "Newcomer ![p](http://203.0.113.9/p.png) www.evil.example <b>x</b>" in visible_text(page)
    assert outside_requests == [], f"the page tried to fetch: {outside_requests}"


def test_an_upload_named_like_an_image_fetches_nothing(page, hostile_url, tmp_path, outside_requests):
    """The issue's case: a run name `![p](http://…/x.png)` typed in the upload form made Chromium fetch it."""
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "' + H.MESSAGE_DP + '", "action": {"type": "message", "content": "hi"}}\n')
    visit(page, hostile_url + "/runs")
    upload_predictions(page, str(preds))
    name = "![p](http://203.0.113.9/typed.png) www.evil-typed.example"
    type_in(page, page.get_by_label("Run name"), name)
    page.get_by_role("button", name="Grade the").click()
    wait_idle(page)
    expect(page.get_by_text("Stored run")).to_be_visible(timeout=20_000)
    page.wait_for_timeout(1_000)
    screenshot(page, "hostile_upload_stored")
    assert name in page.get_by_test_id("stAlertContentSuccess").inner_text().replace(WJ, "")
    assert links_off_loopback(page) == []
    assert outside_requests == [], f"the page tried to fetch: {outside_requests}"


# ---- (b) the passphrase guards names and answers -------------------------------------------------------------------
def record_frames(page) -> list[bytes]:
    frames: list[bytes] = []

    def on_socket(ws):
        ws.on("framereceived", lambda payload: frames.append(payload if isinstance(payload, bytes)
                                                              else payload.encode("utf-8")))

    page.on("websocket", on_socket)
    return frames


def tokens_in(page, frames: list[bytes]) -> list[str]:
    html = page.content()
    data = b"".join(frames)
    return [t for t in H.SECRET_TOKENS if t in html or t.encode() in data]


def test_no_page_shows_names_or_answers_without_the_passphrase(page, guarded_url, hostile_db_master,
                                                               outside_requests):
    db = hostile_db_master
    frames = record_frames(page)
    states = [
        ("overview", "/"), ("browse", "/browse"), ("annotate", "/annotate"),
        ("campaigns", f"/campaigns?campaign={db.campaign_id}"),
        ("runs", "/runs"), ("runs_human", "/runs?run=" + q(db.human_run)),
        ("failures", "/failures?run=" + q(db.human_run)),
        ("compare", f"/compare?a={q(db.human_run)}&b={q(H.RUN_NAME)}"),
        ("audit", "/audit"), ("audit_campaign_set", "/audit?set=" + q(db.campaign_set)),
        ("decision", f"/decision_point?id={q(H.MESSAGE_DP)}"),
        ("decision_human", f"/decision_point?id={q(H.MESSAGE_DP)}&run={q(db.human_run)}"),
    ]
    with_answers = {}
    for name, path in states:
        frames.clear()
        visit(page, guarded_url + path, f"guarded_{name}")
        if found := tokens_in(page, frames):
            with_answers[name] = found
    assert with_answers == {}, with_answers

    # the Grader audit's builder, the case: choosing a campaign's answers asks for the passphrase
    frames.clear()
    visit(page, guarded_url + "/audit")
    page.get_by_text("Build an audit set").click()
    page.get_by_text("A campaign's human answers").click()
    wait_idle(page)
    expect(page.get_by_text("names of the people who gave them, need the admin passphrase")).to_be_visible(
        timeout=20_000)
    screenshot(page, "guarded_audit_builder")
    assert page.get_by_role("button", name="Build the audit set").count() == 0
    assert tokens_in(page, frames) == []

    # given the passphrase, the same browser session sees them (so the check above looks in the right place);
    # move on through the sidebar, in the same session (a reload stays unlocked too, through the unlock cookie:
    # test_admin_cookie_browser.py)
    type_in(page, page.get_by_label("Admin passphrase").first, "correct horse")
    page.get_by_role("button", name="Unlock").first.click()
    wait_idle(page)
    expect(page.get_by_role("button", name="Build the audit set")).to_be_visible(timeout=20_000)
    frames.clear()
    page.get_by_role("link", name="Runs", exact=True).click()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stDataFrame"] canvas', timeout=20_000)
    screenshot(page, "guarded_runs_unlocked")
    assert tokens_in(page, frames), "once unlocked, the human run (named after its annotator) is listed"
    assert outside_requests == []


# ---- an annotators' server ---------------------------------------------------------------------------------------
def test_annotate_mode_shows_nothing_about_the_server(page, hostile_db_master, tmp_path, outside_requests):
    db = tmp_path / "annotation-secret-place.db"
    shutil.copy(hostile_db_master.path, db)
    with serve_app(db, tmp_path, {"NEMO_APP_MODE": "annotate"}) as url:
        visit(page, url, "annotate_mode")
        expect(page.get_by_role("heading", name="Annotate")).to_be_visible(timeout=20_000)
        html = page.content()
        assert "annotation-secret-place" not in html and str(tmp_path) not in html
        assert page.get_by_text("Open another database").count() == 0
        assert page.get_by_label("Path to a workbench database file").count() == 0
    assert outside_requests == []
