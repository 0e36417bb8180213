"""The database a session works on: chosen in the sidebar, opened once per process, cached aggregates.

Default: `$NEMO_DB` when set, else `data/nemo.db` when it exists, else the demo database (built from
`data/demo/` on first use). Another file can be opened from the sidebar by path; the choice lives in the
session (not in the URL, so a shared link cannot make the server open an arbitrary file). On an annotators'
server (`ui.mode`) there is no sidebar panel at all: no path, no switch, no error that names a file.

Aggregates over the whole table (counts, histograms, top tools) take seconds at 1.2 M decision points,
so they are `st.cache_data`-cached under a *signature* of the database (file identity, last row, last
ingest; see `nemo_core.data.overview`), which changes exactly when an ingest adds rows or the file is
replaced. A plain mtime would also change on every checkpoint after unrelated writes (scores, runs).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import streamlit as st

from nemo_core.base.config import DEFAULT_DB, DEMO_DB
from nemo_core.base.errors import NemoError, StoreError
from nemo_core.data.demo import ensure_demo_db
from nemo_core.data.overview import load_cached
from nemo_core.data.overview import signature as core_signature
from nemo_core.data.store import Store, check_workbench_db

from .mode import annotate_mode
from .safe import escape_markdown

DB_KEY = "nemo_db_path"
_LOG = logging.getLogger(__name__)


def default_db_path() -> Path:
    env = os.environ.get("NEMO_DB")
    if env:
        return Path(env)
    if DEFAULT_DB.exists():
        return DEFAULT_DB
    from nemo_core.people.demo_content import ensure_full_demo_db

    return ensure_full_demo_db()


def current_db_path() -> Path:
    chosen = None if annotate_mode() else st.session_state.get(DB_KEY)
    return Path(chosen) if chosen else default_db_path()


@st.cache_resource(show_spinner=False)
def _open_store(path: str, identity: tuple) -> Store:
    """One connection per database file per process (the Store serialises queries with its lock)."""
    return Store.open(path, create=False)


def _identity(path: Path) -> tuple:
    st_ = path.stat()
    return (st_.st_dev, st_.st_ino)


def get_store(path: str | Path) -> Store:
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no database at {path}", "set NEMO_DB, or open another database from the sidebar")
    return _open_store(str(path.resolve()), _identity(path))


def signature(store: Store) -> str:
    """What the cached aggregates depend on (see `nemo_core.data.overview.signature`), plus the file's identity
    so a replaced file is never served from another one's cache."""
    return f"{_identity(Path(store.path))}:{core_signature(store)}"


@st.cache_data(show_spinner=False, max_entries=16)
def summary(path: str, sig: str) -> dict[str, Any]:
    """Counts for the sidebar (from the stored overview when there is one)."""
    store = get_store(path)
    stored = load_cached(store)
    if stored is not None:
        counts = stored["counts"]
        return {"counts": counts, "total": sum(sum(v.values()) for v in counts.values()),
                "conversations": stored["conversations"]}
    counts = store.counts()
    return {
        "counts": counts,
        "total": sum(sum(v.values()) for v in counts.values()),
        "conversations": store.n_conversations(),
    }


def annotate_store() -> Store | None:
    """The store of an annotators' server, drawing nothing but a message that names no file when it cannot
    be opened (the reason goes to the server's log). The file is checked read-only first, so a wrong
    NEMO_DB is never given the workbench's tables."""
    try:
        path = current_db_path()
        problem = check_workbench_db(path)
        if problem is None:
            store = get_store(path)
            summary(str(Path(path).resolve()), signature(store))
            return store
    except (NemoError, sqlite3.DatabaseError, OSError) as exc:
        problem = exc.one_line() if isinstance(exc, NemoError) else str(exc)
    _LOG.error("annotate mode: cannot open the database: %s", problem)
    st.error("The annotation database cannot be opened right now: tell the person who runs this server.")
    return None


def sidebar() -> Store | None:
    """Draw the database panel in the sidebar and return the open store (None after showing why not)."""
    if annotate_mode():
        return annotate_store()
    path = current_db_path()
    store: Store | None = None
    with st.sidebar:
        st.subheader("Database")
        st.text(str(path))
        try:
            store = get_store(path)
            info = summary(str(Path(path).resolve()), signature(store))
        except (NemoError, sqlite3.DatabaseError) as exc:
            message = exc.one_line() if isinstance(exc, NemoError) else str(exc)
            st.error("Cannot open this database: " + escape_markdown(message))
            store = None
            # one click to something that works: the bundled demo database (built from data/demo/ if missing)
            if Path(path).resolve() != Path(DEMO_DB).resolve() and st.button(
                    "Open the demo database", key="db_open_demo", type="primary",
                    help="The bundled demo data (built in about a second if it is not there yet)."):
                try:
                    ensure_demo_db(DEMO_DB)
                except (NemoError, OSError, sqlite3.DatabaseError) as exc:
                    st.error("The demo database cannot be built: " + escape_markdown(str(exc)))
                else:
                    st.session_state[DB_KEY] = str(Path(DEMO_DB).resolve())
                    st.rerun()
        else:
            c1, c2 = st.columns(2)
            c1.metric("Decision points", f"{info['total']:,}")
            c2.metric("Conversations", f"{info['conversations']:,}")
            for split, by_type in info["counts"].items():
                st.caption(
                    f"{split}: {sum(by_type.values()):,} ("
                    + ", ".join(f"{n:,} {t}" for t, n in by_type.items())
                    + ")"
                )
        with st.expander("Open another database", expanded=store is None):
            with st.form("open_db_form", border=False):
                new_path = st.text_input("Path to a workbench database file", key="open_db_input",
                                         placeholder="/path/to/nemo.db")
                submitted = st.form_submit_button("Open")
            if submitted:
                problem = check_workbench_db(new_path)
                if problem:
                    st.error(escape_markdown(problem))
                else:
                    st.session_state[DB_KEY] = str(Path(new_path).expanduser().resolve())
                    st.rerun()
            if st.session_state.get(DB_KEY) and st.button("Back to the default database", key="db_default"):
                del st.session_state[DB_KEY]
                st.rerun()
    return store


def require_store() -> Store:
    """The sidebar's store, or stop the page after the sidebar has said what is wrong."""
    store = sidebar()
    if store is None:
        if not annotate_mode():
            st.info("Open a workbench database from the sidebar to continue.")
        st.stop()
    return store
