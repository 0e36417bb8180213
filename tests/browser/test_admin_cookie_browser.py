"""The remembered admin unlock in a real browser (issue 19: "the passphrase is asked again after every reload").

With `NEMO_ADMIN_PASSWORD` set: unlock the Campaigns page, reload, still unlocked (the browser holds a signed,
expiring cookie, `nemo_core.people.unlock`); Lock, reload, locked; a forged or tampered cookie put in the
browser by hand unlocks nothing. Screenshots: artifacts/screenshots/admin_cookie_*.png.
"""

from __future__ import annotations

import shutil
import time

import pytest
from playwright.sync_api import expect

from browser_helpers import screenshot, serve_app, type_in, wait_idle

pytestmark = pytest.mark.browser
PASSPHRASE = "correct horse"


@pytest.fixture(scope="module")
def locked_url(demo_db_master, tmp_path_factory):
    work = tmp_path_factory.mktemp("admin-cookie")
    db = work / "demo.db"
    shutil.copy(demo_db_master, db)
    with serve_app(db, work, {"NEMO_ADMIN_PASSWORD": PASSPHRASE}) as url:
        yield url


def unlock_cookie(context) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == "nemo_admin"), None)


def expect_locked(page) -> None:
    expect(page.get_by_label("Admin passphrase")).to_be_visible(timeout=20_000)
    assert page.get_by_role("button", name="Create campaign").count() == 0
    assert page.get_by_role("button", name="Lock", exact=True).count() == 0


def expect_unlocked(page) -> None:
    expect(page.get_by_role("button", name="Create campaign")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("button", name="Lock", exact=True)).to_be_visible(timeout=20_000)
    assert page.get_by_label("Admin passphrase").count() == 0


def test_unlock_survives_a_reload_and_lock_ends_it(page, context, locked_url, outside_requests):
    page.goto(locked_url + "/campaigns")
    wait_idle(page)
    expect_locked(page)
    assert unlock_cookie(context) is None
    type_in(page, page.get_by_label("Admin passphrase"), PASSPHRASE)
    page.get_by_role("button", name="Unlock").click()
    wait_idle(page)
    expect_unlocked(page)
    page.wait_for_function("() => document.cookie.includes('nemo_admin=v1.')", timeout=20_000)
    cookie = unlock_cookie(context)
    assert cookie["value"].startswith("v1.") and PASSPHRASE not in cookie["value"]
    assert cookie["path"] == "/" and cookie["sameSite"] == "Strict"
    assert 11.9 * 3600 < cookie["expires"] - time.time() <= 12 * 3600
    screenshot(page, "admin_cookie_1_unlocked")

    page.reload()
    wait_idle(page)
    expect_unlocked(page)
    expect(page.get_by_text("Admin unlocked in this browser until")).to_be_visible()
    screenshot(page, "admin_cookie_2_after_reload")

    page.get_by_role("button", name="Lock", exact=True).click()
    wait_idle(page)
    expect_locked(page)
    page.wait_for_function("() => !document.cookie.includes('nemo_admin=')", timeout=20_000)
    assert unlock_cookie(context) is None
    page.reload()
    wait_idle(page)
    expect_locked(page)
    screenshot(page, "admin_cookie_3_locked_after_reload")
    assert outside_requests == []


@pytest.mark.parametrize("kind", ["forged", "tampered expiry", "garbage"])
def test_a_forged_cookie_unlocks_nothing(page, context, locked_url, outside_requests, kind):
    # a real token of this server, to tamper with (made in this browser, then taken apart)
    page.goto(locked_url + "/campaigns")
    wait_idle(page)
    type_in(page, page.get_by_label("Admin passphrase"), PASSPHRASE)
    page.get_by_role("button", name="Unlock").click()
    wait_idle(page)
    page.wait_for_function("() => document.cookie.includes('nemo_admin=v1.')", timeout=20_000)
    _, expiry, sig = unlock_cookie(context)["value"].split(".")
    context.clear_cookies()
    value = {"forged": f"v1.{int(time.time()) + 3600}.{'0' * 64}",
             "tampered expiry": f"v1.{int(expiry) + 7 * 86400}.{sig}",
             "garbage": "v1.%3Cscript%3E"}[kind]
    context.add_cookies([{"name": "nemo_admin", "value": value, "url": locked_url}])
    page.goto(locked_url + "/campaigns")
    wait_idle(page)
    expect_locked(page)
    assert page.get_by_test_id("stException").count() == 0
    if kind == "forged":
        screenshot(page, "admin_cookie_4_forged")
    assert outside_requests == []
