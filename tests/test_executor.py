"""The one executor for batch work (`nemo_core.runs.executor`): bounded concurrency on this thread, threads or
processes, results in order or as they finish, progress, a stop that keeps what is in flight, and an error
that cancels what has not started."""

from __future__ import annotations

import os
import threading
import time

import pytest

from nemo_core.runs.executor import Executor


class Gauge:
    """How many calls run at once, at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = self.calls = 0

    def work(self, item: int) -> int:
        with self.lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.01 * (item % 3))  # finishing out of order
        with self.lock:
            self.now -= 1
        return item * 10


def test_threads_keep_the_input_order_and_at_most_the_window_in_flight():
    gauge = Gauge()
    with Executor(4, window=3) as ex:
        assert list(ex.map(gauge.work, range(20))) == [i * 10 for i in range(20)]
    assert gauge.peak <= 3 and gauge.calls == 20


def test_as_completed_yields_everything_and_reports_progress_from_zero():
    gauge, seen = Gauge(), []
    with Executor(3, progress=lambda done, total: seen.append((done, total))) as ex:
        out = list(ex.map(gauge.work, range(12), ordered=False, total=12))
    assert sorted(out) == [i * 10 for i in range(12)]
    assert seen[0] == (0, 12) and seen[-1] == (12, 12)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_stop_sends_nothing_more_and_keeps_what_was_in_flight():
    gauge, taken = Gauge(), []
    with Executor(2, window=2, should_stop=lambda: len(taken) >= 3) as ex:
        for result in ex.map(gauge.work, range(50), ordered=False):
            taken.append(result)
    assert ex.stopped
    assert 3 <= len(taken) <= 3 + 2 and gauge.calls == len(taken)  # every call that started was handed back


def test_no_workers_runs_each_item_here_in_turn():
    here = threading.get_ident()
    with Executor(0) as ex:
        assert list(ex.map(lambda i: (i, threading.get_ident() == here), range(3))) == [(0, True), (1, True), (2, True)]


def _pid_of(item: int) -> tuple[int, int]:
    return item, os.getpid()


def test_processes_work_elsewhere_and_hand_back_in_order():
    with Executor(2, processes=True, window=4) as ex:
        out = list(ex.map(_pid_of, range(10)))
    assert [i for i, _ in out] == list(range(10))
    assert all(pid != os.getpid() for _, pid in out)


def test_an_error_in_the_loop_cancels_what_has_not_started():
    gauge = Gauge()
    with pytest.raises(RuntimeError):
        with Executor(2, window=2) as ex:
            for _result in ex.map(gauge.work, range(100)):
                raise RuntimeError("the consumer failed")
    assert gauge.calls <= 3  # the window (2) and the one taken; the other 97 never ran
    assert gauge.now == 0  # threads finished what they held before the executor let go


def test_a_negative_worker_count_is_refused():
    with pytest.raises(ValueError, match="workers"):
        Executor(-1)


@pytest.mark.parametrize("ordered", [True, False])
def test_both_orders_keep_at_most_the_window_in_flight(ordered):
    gauge = Gauge()
    with Executor(4, window=2) as ex:
        out = list(ex.map(gauge.work, range(15), ordered=ordered))
    assert sorted(out) == [i * 10 for i in range(15)]
    assert gauge.peak <= 2 and gauge.calls == 15


@pytest.mark.parametrize("ordered", [True, False])
def test_a_stop_wanted_after_the_last_item_was_sent_is_not_a_stop(ordered):
    taken: list[int] = []
    with Executor(2, window=5, should_stop=lambda: len(taken) >= 1) as ex:
        for result in ex.map(lambda i: i, range(3), ordered=ordered):
            taken.append(result)
    assert sorted(taken) == [0, 1, 2]
    assert not ex.stopped  # every item was sent before the stop was wanted: the map finished
