"""Process-wide settings for bulk work (`nemo_core.data.tuning.tuned`: the garbage collector, SQLite's page cache and
checkpoint interval) are set for the work and put back after it, also after an error, also when two uses overlap;
nothing leaks into the app's server, which grades uploads in its own process."""

from __future__ import annotations

import gc
import threading

import pytest

from app_runner import run_app_page
from nemo_core.data.store import Store
from nemo_core.data.tuning import tuned


def settings(store: Store) -> tuple:
    return gc.isenabled(), store.scalar("PRAGMA cache_size"), store.scalar("PRAGMA wal_autocheckpoint")


def test_the_settings_hold_inside_and_come_back_after_an_error(demo_store):
    before = settings(demo_store)
    with pytest.raises(RuntimeError):
        with tuned(demo_store, gc_off=True, cache_kib=4096, wal_autocheckpoint=5000):
            assert settings(demo_store) == (False, -4096, 5000)
            raise RuntimeError("the work failed")
    assert settings(demo_store) == before == (True, before[1], before[2])


def test_overlapping_uses_in_two_threads_end_with_everything_back(demo_store):
    before = settings(demo_store)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with tuned(demo_store, gc_off=True, wal_autocheckpoint=7000):
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with tuned(demo_store, gc_off=True, wal_autocheckpoint=9000):
            second_in.set()
            first_out.wait(5)  # the first use ends while this one is still on
            assert not gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert settings(demo_store) == before


def test_an_upload_in_the_app_leaves_the_collector_and_the_connection_as_they_were(demo_db, monkeypatch):
    from ui.db import get_store

    monkeypatch.setenv("NEMO_DB", str(demo_db))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    at = run_app_page("app_pages/runs.py", timeout=60)
    store = get_store(demo_db)  # the app's own connection (one per database per process)
    before = settings(store)
    assert before[0]
    dp_id = store.query("SELECT id FROM decision_points WHERE action_type = 'message' LIMIT 1")[0]["id"]
    lines = b"".join(b'{"id": "%s", "action": {"type": "message", "content": "hi %d"}}\n' % (dp_id.encode(), n)
                     for n in range(1)) + b"not json\n"
    at.get("file_uploader")[0].upload("p.jsonl", lines).run()
    next(b for b in at.button if "good lines" in b.label).click().run()
    assert not at.exception and at.success and "Stored run" in at.success[0].value
    assert settings(store) == before  # the collector on, the page cache and checkpoint interval as they were
