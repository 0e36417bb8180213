"""Fixtures shared by every test file. Feature-specific fixtures live beside their tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nemo_core.data.demo import ensure_demo_db
from nemo_core.data.store import Store

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO.parent / "shared" / "fixtures"
REAL_RECORDS = REPO / "data" / "demo"  # the real rows, copied in with attribution


@pytest.fixture(scope="session")
def demo_db_master(tmp_path_factory) -> Path:
    """The demo database built once per test session from data/demo/ (never the one in data/)."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    return ensure_demo_db(path)


@pytest.fixture(scope="session")
def shipped_demo_db_master(tmp_path_factory) -> Path:
    """The demo database as the app and the CLI ship it (`people/demo_content.py`): the demo data plus a run of
    each baseline policy, the synthetic campaign and the calibration audit set. Built once per session; the
    other tests keep `demo_db` (the data alone), since they count what they add and look at empty states."""
    from nemo_core.people.demo_content import ensure_full_demo_db

    path = tmp_path_factory.mktemp("shipped-demo") / "demo.db"
    return ensure_full_demo_db(path)


@pytest.fixture
def shipped_demo_db(shipped_demo_db_master, tmp_path) -> Path:
    """A private copy of the shipped demo database that a test may write to."""
    path = tmp_path / "shipped-demo.db"
    shutil.copy(shipped_demo_db_master, path)
    return path


@pytest.fixture(scope="session")
def hostile_db_master(demo_db_master, tmp_path_factory):
    """The demo database plus hostile names and data everywhere (see hostile_data.py), built once."""
    import hostile_data

    path = tmp_path_factory.mktemp("hostile") / "demo.db"
    shutil.copy(demo_db_master, path)
    return hostile_data.build(path)


@pytest.fixture
def annotate_mode(monkeypatch):
    """NEMO_APP_MODE=annotate for this test. The app then sets Streamlit's `client.showErrorDetails`, a
    process-wide option: put it back afterwards so other tests see tracebacks."""
    from streamlit import config

    before = config.get_option("client.showErrorDetails")
    monkeypatch.setenv("NEMO_APP_MODE", "annotate")
    yield
    config.set_option("client.showErrorDetails", before)


@pytest.fixture
def demo_db(demo_db_master, tmp_path) -> Path:
    """A private copy of the demo database that a test may write to."""
    path = tmp_path / "demo.db"
    shutil.copy(demo_db_master, path)
    return path


@pytest.fixture
def demo_store(demo_db):
    store = Store.open(demo_db)
    yield store
    store.close()


@pytest.fixture
def empty_store(tmp_path):
    store = Store.open(tmp_path / "empty.db")
    yield store
    store.close()


@pytest.fixture
def open_page(demo_db, monkeypatch):
    """`open_page(page, **query)` runs the app (app.py, so its navigation) on `page` with those URL query
    parameters against a private copy of the demo database, and fails on any exception."""
    from app_runner import run_app_page

    monkeypatch.setenv("NEMO_DB", str(demo_db))

    def run(page_file: str, /, **query: str):
        return run_app_page(page_file, query)

    return run
