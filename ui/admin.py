"""The admin passphrase: the one check in front of every view of people's campaign answers and annotator names.

The passphrase is `NEMO_ADMIN_PASSWORD`, else the `admin_password` Streamlit secret; with neither the app is
open to everyone who can reach it. What is guarded is decided in `nemo_core.people.guarded` (the Campaigns
page, runs of people's answers, audit sets built from them): pages call `admin_unlocked()` before showing any
of it, and `unlock_form` where they hold something back.

Giving the passphrase unlocks the session (every page) and the browser: the session keeps a signed, expiring
token (`nemo_core.people.unlock`, 12 hours), and the browser gets the same token as the cookie `nemo_admin`,
so a reload (a new Streamlit session) stays unlocked until it expires. Neither holds the passphrase nor a
fixed digest of it; changing the passphrase invalidates both. Streamlit reads cookies only from the request
that opened the session (`st.context.cookies`) and cannot set them, so `admin_controls` (drawn by `app.py`
on every page) writes and clears the cookie with a line of script whose only variable parts are a checked
token (digits and hex) and an integer. "Lock" forgets the session's token, clears the cookie, and ignores the
cookie this session was opened with.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

import streamlit as st

from nemo_core.people.campaigns import passphrase_ok
from nemo_core.people.guarded import people_run_names
from nemo_core.people.unlock import expiry_of, make_token, remaining_seconds, verify, well_formed
from nemo_core.data.store import Store

from .formats import when
from .secrets import secret

ADMIN_KEY = "admin::unlocked"  # the session's token
IGNORED_KEY = "admin::ignored_cookie"  # the cookie a Lock in this session revoked (the session still sees it)
PENDING_KEY = "admin::pending_cookie"  # ("set", token) or ("clear", "") for the next admin_controls
COOKIE = "nemo_admin"


def admin_passphrase() -> str | None:
    return os.environ.get("NEMO_ADMIN_PASSWORD") or secret("admin_password")


def _sent_cookie() -> str | None:
    """The unlock cookie the browser sent when this session opened (none outside a browser, as in AppTest)."""
    return st.context.cookies.get(COOKIE) or None


def _browser_token() -> str | None:
    """The browser's cookie, unless a Lock in this session revoked it."""
    value = _sent_cookie()
    return None if value is None or value == st.session_state.get(IGNORED_KEY) else value


def _valid_token(expected: str) -> str | None:
    """The token that unlocks this session under `expected`: the session's own, else the browser's cookie."""
    for token in (st.session_state.get(ADMIN_KEY), _browser_token()):
        if verify(expected, token):
            return token
    return None


def admin_unlocked() -> bool:
    """True when no passphrase is configured, or this session or this browser gave the current one and that
    has not expired (and was not locked since)."""
    expected = admin_passphrase()
    if not expected:
        return True
    return _valid_token(expected) is not None


def unlock_form(key: str) -> None:
    """The passphrase form (`key` keeps it apart from the page's other widgets); on the right passphrase the
    session and the browser are unlocked and the page runs again."""
    expected = admin_passphrase()
    with st.form(f"{key}::unlock"):
        typed = st.text_input("Admin passphrase", type="password", key=f"{key}::passphrase")
        unlock = st.form_submit_button("Unlock", type="primary")
    if unlock:
        if expected and passphrase_ok(expected, typed):
            token = make_token(expected)
            st.session_state[ADMIN_KEY] = token
            st.session_state[PENDING_KEY] = ("set", token)
            st.rerun()
        st.error("Wrong passphrase.")


def cookie_script(action: str, token: str = "") -> str:
    """The script that sets (`action` "set") or clears the unlock cookie: Path=/ so every page sends it,
    SameSite=Strict so no other site's request carries it, Secure when the page is served over https, and a
    max-age of the token's remaining lifetime. Refuses anything but a well-formed token, so nothing else can
    ever be written into the script."""
    if action == "clear":
        value, max_age = "", 0
    elif action == "set" and well_formed(token):
        value, max_age = token, remaining_seconds(token)
    else:
        raise ValueError("cookie_script: action must be 'set' with a well-formed token, or 'clear'")
    cookie = f"{COOKIE}={value}; Path=/; Max-Age={int(max_age)}; SameSite=Strict"
    # the time makes each script new, so the browser runs it even when an identical one ran before
    return (f"<script>/* {time.time_ns()} */ document.cookie = '{cookie}'"
            " + (location.protocol === 'https:' ? '; Secure' : '');</script>")


def admin_controls() -> None:
    """In the sidebar of every page (drawn by `app.py`), when a passphrase is configured: write or clear the
    unlock cookie as the last unlock or Lock asked, and, while unlocked, say until when with a Lock button."""
    expected = admin_passphrase()
    if not expected:
        return
    with st.sidebar:
        pending = st.session_state.pop(PENDING_KEY, None)
        if pending:
            st.html(cookie_script(*pending), unsafe_allow_javascript=True)
        token = _valid_token(expected)
        if token is None:
            return
        until = when(datetime.fromtimestamp(expiry_of(token) or 0, timezone.utc).isoformat())
        st.caption(f"Admin unlocked in this browser until {until}.")
        st.button("Lock", icon="🔒", key="admin::lock", on_click=lock,
                  help="Forget the admin passphrase in this browser: the pages that show people's answers and "
                       "names ask for it again, here and after a reload.")


def lock() -> None:
    """Lock this session and the browser: forget the session's token, ignore the cookie the session was
    opened with (Streamlit keeps showing it until the next reload), and clear it in the browser."""
    st.session_state[ADMIN_KEY] = None
    st.session_state[IGNORED_KEY] = _sent_cookie()
    st.session_state[PENDING_KEY] = ("clear", "")


def held_back(n: int, what: str, key: str) -> None:
    """Say that `n` `what` are hidden until the passphrase is given, with the form in an expander (nothing
    when `n` is 0)."""
    if not n:
        return
    with st.expander(f"{n:,} {what} hidden: they need the admin passphrase"):
        st.caption("They hold people's campaign answers and annotator names.")
        unlock_form(key)


def visible_run_names(store: Store, names: list[str]) -> tuple[list[str], int]:
    """`names` without the runs of people's answers while the session is locked, and how many were left out."""
    if admin_unlocked():
        return names, 0
    guarded = people_run_names(store)
    shown = [n for n in names if n not in guarded]
    return shown, len(names) - len(shown)
