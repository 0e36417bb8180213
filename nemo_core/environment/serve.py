"""Serving an SDK environment from N worker processes over one listening socket, with a supervisor.

Why processes: an SDK server is one asyncio loop in one Python process, so it uses one core. The supervisor
(the process `serve-env` starts as) binds the socket, does the slow once-per-server work (importing the SDK,
reading the task order of 1.2 M decision points) and forks N workers that inherit both, so a worker starts in
milliseconds and its memory for that work is shared with its siblings until written. Each worker runs
uvicorn on the inherited socket (the kernel hands each new connection to one of them) with its own store
connection and recorder. Past one machine, run such servers behind any HTTP load balancer: a session is
held by the worker that created it, so the balancer must keep a session's requests on one server (route
on the `X-Session-ID` header, or sticky connections).

Signals: SIGTERM or SIGINT to the supervisor stops the workers gracefully (uvicorn finishes the requests
in flight, then each worker stores what it graded and deletes its journal); the supervisor then replays any
journal a worker left behind and calls `on_stop`. A worker that dies on its own is replayed the same way
and replaced. Workers ask the kernel for SIGTERM when the supervisor dies (`PR_SET_PDEATHSIG`), so even a
SIGKILL of the supervisor alone lets them flush.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WORKER_GRACE_SECONDS = 30.0  # how long a stopping worker may take before it is killed
RESTART_LIMIT = 5  # workers dying within `FAST_DEATH_SECONDS` of their start, before the server gives up
FAST_DEATH_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Worker:
    """What a worker process runs: an ASGI app and what to do once uvicorn has stopped (flush)."""

    app: Any
    on_exit: Callable[[], None] = lambda: None


@dataclass
class Supervisor:
    """The listening socket and the worker processes."""

    host: str
    port: int
    workers: int
    make_worker: Callable[[], Worker]  # called in each worker process, after the fork
    on_worker_death: Callable[[int], None] = lambda pid: None  # in the supervisor (replay its journal)
    on_stop: Callable[[], None] = lambda: None  # in the supervisor, once every worker has exited
    log_level: str = "warning"
    sock: socket.socket | None = None
    children: dict[int, float] = field(default_factory=dict)  # pid -> start time
    _stopping: bool = False

    def bind(self) -> int:
        """Bind and listen; the port (the one the system chose when `port` is 0)."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(2048)
        sock.set_inheritable(True)
        self.sock = sock
        self.port = sock.getsockname()[1]
        return self.port

    def _spawn(self) -> int:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _die_with_parent(parent)
                code = run_worker(self.make_worker(), self.sock, self.log_level)
            except BaseException:  # noqa: BLE001 - a worker reports and exits; the supervisor replaces it
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = time.monotonic()
        return pid

    def run(self, announce: Callable[[int], None] = lambda port: None) -> int:
        """Serve until SIGTERM / SIGINT; the exit code."""
        if self.sock is None:
            self.bind()
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        for _ in range(self.workers):
            self._spawn()
        announce(self.port)
        fast_deaths = 0
        code = 0
        while not self._stopping:
            pid, status = _reap()
            if pid is None:
                time.sleep(0.1)
                continue
            started = self.children.pop(pid, time.monotonic())
            self.on_worker_death(pid)
            if self._stopping:
                break
            fast_deaths = fast_deaths + 1 if time.monotonic() - started < FAST_DEATH_SECONDS else 0
            print(f"serve-env: worker {pid} exited ({_describe(status)}); "
                  + ("too many quick deaths, stopping" if fast_deaths > RESTART_LIMIT else "starting another"),
                  file=sys.stderr, flush=True)
            if fast_deaths > RESTART_LIMIT:
                code = 1
                break
            self._spawn()
        self._stop_children()
        self.sock.close()
        self.on_stop()
        return code

    def _request_stop(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _stop_children(self) -> None:
        for pid in list(self.children):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + WORKER_GRACE_SECONDS
        while self.children and time.monotonic() < deadline:
            pid, _status = _reap()
            if pid is None:
                time.sleep(0.05)
                continue
            self.children.pop(pid, None)
            self.on_worker_death(pid)
        for pid in list(self.children):  # past the grace period: its journal keeps what it graded
            _signal(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.children.pop(pid, None)
            self.on_worker_death(pid)


def run_worker(worker: Worker, sock: socket.socket, log_level: str) -> int:
    """uvicorn on the inherited socket until SIGTERM / SIGINT, then the worker's `on_exit`."""
    import uvicorn

    config = uvicorn.Config(worker.app, log_level=log_level, access_log=False, timeout_keep_alive=60,
                            timeout_graceful_shutdown=WORKER_GRACE_SECONDS - 5, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        worker.on_exit()
    return 0


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM this process when the supervisor dies (so a SIGKILL of the supervisor still lets
    workers store what they graded). Elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _reap() -> tuple[int | None, int]:
    try:
        pid, status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return None, 0
    return (pid or None), status


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"status {status}"
