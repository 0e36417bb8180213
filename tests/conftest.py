"""Fixtures shared by every test file. Feature-specific fixtures live beside their tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nemo_core.demo import ensure_demo_db
from nemo_core.store import Store

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO.parent / "shared" / "fixtures"
REAL_RECORDS = REPO / "data" / "demo"  # the real rows, copied in with attribution


@pytest.fixture(scope="session")
def demo_db_master(tmp_path_factory) -> Path:
    """The demo database built once per test session from data/demo/ (never the one in data/)."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    return ensure_demo_db(path)


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
