"""Issue 20, point 6: an annotators' server (NEMO_APP_MODE=annotate) shows nothing about the server: no database
path, no "Open another database", no error that names a file, and no way to make it open another database.
On main it drew the sidebar's database panel, whose form answered "no file at" / "is not a file" / "is not a
SQLite database" for any path typed and opened any workbench database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from nemo_core.people import campaigns as C
from nemo_core.data.store import Store
from ui.db import DB_KEY

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")


def everything(at: AppTest) -> str:
    """Every string the run sent to the browser (each element's whole proto)."""
    return "\n".join(str(node.proto) for node in at._tree if getattr(node, "proto", None) is not None)


def run_app(session: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_no_path_and_no_database_switch(monkeypatch, demo_db, annotate_mode):
    monkeypatch.setenv("NEMO_DB", str(demo_db))
    at = run_app()
    assert at.title[0].value == "Annotate"
    page = everything(at)
    assert str(demo_db) not in page and demo_db.name not in page and str(demo_db.parent) not in page
    assert not at.sidebar.text_input and not at.sidebar.expander and not at.sidebar.button
    assert not [t for t in at.text_input if "database" in t.label.lower()]
    assert config.get_option("client.showErrorDetails") == "none"  # a traceback would name the server's files


@pytest.mark.parametrize("problem", ["missing", "a folder", "not sqlite", "not a workbench db"])
def test_a_database_that_cannot_be_opened_is_not_described(monkeypatch, tmp_path, annotate_mode, problem):
    target = tmp_path / "secret-location" / "annotations.db"
    target.parent.mkdir()
    if problem == "a folder":
        target.mkdir()
    elif problem == "not sqlite":
        target.write_text("hello")
    elif problem == "not a workbench db":
        import sqlite3

        sqlite3.connect(target).execute("CREATE TABLE t (x)").connection.close()
    monkeypatch.setenv("NEMO_DB", str(target))
    at = run_app()
    page = everything(at)
    assert "secret-location" not in page and "annotations.db" not in page
    for telltale in ("no database at", "no file at", "is not a file", "not a SQLite database", "workbench database"):
        assert telltale not in page, telltale
    assert [e.value for e in at.error] == ["The annotation database cannot be opened right now: tell the person "
                                           "who runs this server."]


def test_a_session_cannot_switch_the_database(monkeypatch, demo_db, tmp_path, annotate_mode):
    """Even a session whose state names another database (the full app's sidebar sets it) stays on the
    server's own: here the other one holds an open campaign, the server's none."""
    other = tmp_path / "other.db"
    shutil.copy(demo_db, other)
    with Store.open(other) as store:
        C.create_campaign(store, "elsewhere", sample_size=2, seed=1)
    monkeypatch.setenv("NEMO_DB", str(demo_db))
    at = run_app({DB_KEY: str(other), "annotate::name": "ann"})
    assert "No campaign is open" in [i.value for i in at.info][0]
    assert "elsewhere" not in everything(at)


def test_the_full_app_still_has_its_database_panel(monkeypatch, demo_db):
    monkeypatch.delenv("NEMO_APP_MODE", raising=False)
    monkeypatch.setenv("NEMO_DB", str(demo_db))
    at = run_app()
    assert str(demo_db) in [t.value for t in at.sidebar.text]
    assert [t for t in at.sidebar.text_input if t.label == "Path to a workbench database file"]
