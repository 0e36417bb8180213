"""The admin passphrase: the one check in front of every view of people's campaign answers and annotator names.

The passphrase is `NEMO_ADMIN_PASSWORD`, else the `admin_password` Streamlit secret; with neither the app is
open to everyone who can reach it. A session that typed it keeps a digest of it (never the passphrase), so
changing the passphrase locks every session again; unlocking on one page unlocks them all. What is guarded is
decided in `nemo_core.people.guarded` (the Campaigns page, runs of people's answers, audit sets built from them):
pages call `admin_unlocked()` before showing any of it, and `unlock_form` where they hold something back.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import streamlit as st

from nemo_core.people.campaigns import passphrase_ok
from nemo_core.people.guarded import people_run_names
from nemo_core.data.store import Store

from .secrets import secret

ADMIN_KEY = "admin::unlocked"


def admin_passphrase() -> str | None:
    return os.environ.get("NEMO_ADMIN_PASSWORD") or secret("admin_password")


def _unlock_token(passphrase: str) -> str:
    return hashlib.sha256(("nemo-admin:" + passphrase).encode("utf-8")).hexdigest()


def admin_unlocked() -> bool:
    """True when no passphrase is configured, or this session gave the current one."""
    expected = admin_passphrase()
    if not expected:
        return True
    return hmac.compare_digest(str(st.session_state.get(ADMIN_KEY) or ""), _unlock_token(expected))


def unlock_form(key: str) -> None:
    """The passphrase form (`key` keeps it apart from the page's other widgets); on the right passphrase the
    session is unlocked and the page runs again."""
    expected = admin_passphrase()
    with st.form(f"{key}::unlock"):
        typed = st.text_input("Admin passphrase", type="password", key=f"{key}::passphrase")
        unlock = st.form_submit_button("Unlock", type="primary")
    if unlock:
        if expected and passphrase_ok(expected, typed):
            st.session_state[ADMIN_KEY] = _unlock_token(expected)
            st.rerun()
        st.error("Wrong passphrase.")


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
