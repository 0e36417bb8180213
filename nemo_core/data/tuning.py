"""Settings that make bulk work fast and must not outlive it: the garbage collector, SQLite's page cache and
WAL checkpoint interval. One context manager sets them and puts them back, so nothing leaks into a process that
lives on (the app's server grades uploads and saves human answers as runs in its own process).

- The cyclic garbage collector walks every tracked object every few thousand allocations; grading keeps
  thousands of parsed conversations in a cache and creates no cycles, so with the collector on it ran at half
  speed. It is process-wide: `tuned` switches it off for the outermost of any nested or concurrent uses (two
  uploads at once in the app) and back on when the last one ends.
- `cache_size` (KiB, per connection): the (run, id) index of predictions grows by a million keys during a
  large `grade`, and CREATE INDEX sorts in it; 256 MB instead of SQLite's 2 MB.
- `wal_autocheckpoint` (pages, per connection): checkpoint every 64 MB of WAL instead of 4 MB, so the same hot
  index pages are copied back less often.

Each setting is restored to the value it had when the first user of that connection's setting began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

_lock = threading.Lock()
_gc_users = 0
_gc_was_enabled = True
_pragma_users: dict[tuple[int, str], list[Any]] = {}  # (connection id, pragma) -> [users, value before]

BULK_CACHE_KIB = 262_144  # 256 MB
BULK_WAL_AUTOCHECKPOINT = 16_384  # pages: 64 MB


@contextmanager
def _gc_off() -> Iterator[None]:
    global _gc_users, _gc_was_enabled
    with _lock:
        if _gc_users == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_users += 1
    try:
        yield
    finally:
        with _lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_was_enabled:
                gc.enable()


@contextmanager
def _pragma(store: Any, name: str, value: int) -> Iterator[None]:
    key = (id(store.conn), name)
    with _lock, store._lock:
        users = _pragma_users.get(key)
        if users is None:
            users = _pragma_users[key] = [0, store.conn.execute(f"PRAGMA {name}").fetchone()[0]]
        users[0] += 1
        store.conn.execute(f"PRAGMA {name} = {int(value)}")
    try:
        yield
    finally:
        with _lock, store._lock:
            users[0] -= 1
            if users[0] == 0:
                del _pragma_users[key]
                store.conn.execute(f"PRAGMA {name} = {int(users[1])}")


@contextmanager
def tuned(store: Any = None, *, gc_off: bool = False, cache_kib: int | None = None,
          wal_autocheckpoint: int | None = None) -> Iterator[None]:
    """Within the block: the collector off (`gc_off`), the store's connection with a page cache of `cache_kib`
    and a checkpoint every `wal_autocheckpoint` pages; all restored after it, also on an error or Ctrl-C."""
    with ExitStack() as stack:
        if gc_off:
            stack.enter_context(_gc_off())
        if store is not None and cache_kib is not None:
            stack.enter_context(_pragma(store, "cache_size", -int(cache_kib)))
        if store is not None and wal_autocheckpoint is not None:
            stack.enter_context(_pragma(store, "wal_autocheckpoint", wal_autocheckpoint))
        yield


def gc_off_for_this_process() -> None:
    """For a worker process that only grades and then ends: the collector off for its whole life (it dies with
    the pool, so nothing is left to restore)."""
    _gc_off().__enter__()
