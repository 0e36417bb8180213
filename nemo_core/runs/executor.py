"""The one executor for batch work: `work(item)` over many items with bounded concurrency.

Grading a predictions file (batches in worker processes, or lines on threads for the LLM grader), a model run
(one request per decision point on threads) and the audit's LLM grading (one request per item on threads) all
do the same thing: hand items to workers with at most a few in flight, take the results back in this thread
(which alone writes to the store, so each caller commits per batch), report progress, and stop early when
asked (a Stop button, Ctrl-C) without losing what is in flight. They differ only in where the work runs:

- `workers=0`: here, inline, one item at a time (a small file, the keyword grader in the app);
- threads (`workers=N`): for work that waits on the network (the LLM grader, a model endpoint);
- processes (`processes=True`): for CPU work (the keyword grader on a large file), forked before any thread
  of the caller starts; each process runs `initializer(*initargs)` once (to open the store read-only).

`map` pulls items from its iterable lazily (so a caller can load what an item needs just before it is sent,
in this thread), keeps at most `window` in flight, and yields results in input order (`ordered=True`) or as
they finish, calling `progress(done, total)` as they come. `should_stop()` is asked before each item is sent:
once it is true nothing more is sent, what is in flight still finishes and is yielded (it is paid for), and
`stopped` is set. An exception in the loop (Ctrl-C, a failed write) ends the map: items not started are
cancelled, threads finish the item they hold, worker processes are terminated. Resuming is the caller's part:
it knows what was stored (a run's done ids, an audit set's scored items), and the executor's callers commit
what they take back in batches (a run through its owner, `owner.RunOwner`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

ProgressCallback = Callable[[int, "int | None"], None]  # (items done, total or None)


class Executor:
    """Bounded-concurrency `map` on this thread, threads or processes (see the module docstring)."""

    def __init__(self, workers: int = 0, *, processes: bool = False, window: int | None = None,
                 initializer: Callable[..., None] | None = None, initargs: tuple = (),
                 should_stop: Callable[[], bool] | None = None, progress: ProgressCallback | None = None,
                 name: str = "nemo"):
        if workers < 0:
            raise ValueError(f"workers must be 0 or more, not {workers}")
        self.workers = workers
        self.processes = processes and workers > 0
        self.window = max(1, window if window is not None else 2 * max(workers, 1))
        self.should_stop = should_stop
        self.progress = progress
        self.stopped = False
        self.done = 0
        self._threads: ThreadPoolExecutor | None = None
        self._pool: Any = None
        if self.processes:
            ctx = multiprocessing.get_context("fork" if os.name != "nt" else "spawn")
            self._pool = ctx.Pool(workers, initializer=initializer, initargs=initargs)
        elif workers:
            self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    # ---- running ---------------------------------------------------------------------------------------
    def map(self, work: Callable[[T], R], items: Iterable[T], *, ordered: bool = True,
            total: int | None = None) -> Iterator[R]:
        """`work(item)` for each item, at most `window` at a time; see the module docstring."""
        self._report(total)
        if self._pool is None and self._threads is None:
            yield from self._inline(work, items, total)
        elif ordered:
            yield from self._ordered(work, items, total)
        else:
            yield from self._as_completed(work, items, total)

    def _want_stop(self) -> bool:
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
        return self.stopped

    def _report(self, total: int | None) -> None:
        if self.progress is not None:
            self.progress(self.done, total)

    def _submit(self, work: Callable[[T], R], item: T) -> Any:
        if self._pool is not None:
            return self._pool.apply_async(work, (item,))
        assert self._threads is not None
        return self._threads.submit(work, item)

    @staticmethod
    def _result(handle: Any) -> Any:
        return handle.result() if isinstance(handle, Future) else handle.get()

    def _inline(self, work: Callable[[T], R], items: Iterable[T], total: int | None) -> Iterator[R]:
        for item in items:
            if self._want_stop():
                return
            result = work(item)
            self.done += 1
            self._report(total)
            yield result

    def _refill(self, work: Callable[[T], R], items: Iterable[T], in_flight: Collection[Any],
                add: Callable[[Any], None]) -> Iterator[None]:
        """The window both threaded orders share: send items (through `add`) until `window` are in flight, then
        yield so the caller takes one or more back; ends once nothing is in flight and nothing more will be sent.
        Once `items` has run out, `should_stop` is no longer asked, so a stop wanted after the last item was sent
        does not mark a map that finished as stopped."""
        source = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < self.window and not self._want_stop():
                item = next(source, _END)
                if item is _END:
                    exhausted = True
                    break
                add(self._submit(work, item))
            if not in_flight:
                return
            yield

    def _ordered(self, work: Callable[[T], R], items: Iterable[T], total: int | None) -> Iterator[R]:
        in_flight: deque = deque()
        for _ in self._refill(work, items, in_flight, in_flight.append):
            result = self._result(in_flight.popleft())
            self.done += 1
            self._report(total)
            yield result

    def _as_completed(self, work: Callable[[T], R], items: Iterable[T], total: int | None) -> Iterator[R]:
        if self._pool is not None:  # a process pool's results come back in order anyway
            yield from self._ordered(work, items, total)
            return
        in_flight: set[Future] = set()
        for _ in self._refill(work, items, in_flight, in_flight.add):
            finished, _still_running = wait(in_flight, return_when=FIRST_COMPLETED)
            in_flight -= finished
            for future in finished:
                result = future.result()
                self.done += 1
                yield result
            self._report(total)

    # ---- ending ----------------------------------------------------------------------------------------
    def close(self, *, completed: bool = True) -> None:
        """Completed: let the worker processes finish and join them. Otherwise (an exception, Ctrl-C): terminate
        them. Threads always finish the item they hold (a request in flight is paid for: the LLM grader's cache
        keeps its answer, so a resumed run does not pay again); items not started are cancelled."""
        if self._pool is not None:
            self._pool.close() if completed else self._pool.terminate()
            self._pool.join()
            self._pool = None
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(completed=exc_type is None)


_END: Any = object()
