"""Serving an SDK environment from N worker processes, with a supervisor (and a session router for N > 1).

Why processes: an SDK server is one asyncio loop in one Python process, so it uses one core. The supervisor
(the process `serve-env` starts as) binds the port, does the slow once-per-server work (importing the SDK,
reading the task order of 1.2 M decision points) and forks the workers, which inherit it: a worker starts in
milliseconds and shares that memory with its siblings until written. Each worker runs uvicorn with its own
store connection and recorder. With one worker it listens on the port itself. With several, a session must
stay on the worker that created it (the SDK keeps sessions in process memory), so a router process listens on
the port and forwards each request to its session's worker over a Unix socket (`router.py`). Past one machine,
run such servers behind any HTTP load balancer that does the same: hash on the `X-Session-ID` header.

Signals: SIGTERM or SIGINT to the supervisor stops the workers gracefully (uvicorn finishes the requests in
flight, then each worker stores what it graded and deletes its journal), then the router; the supervisor then
replays any journal a worker left behind and calls `on_stop`. A worker (or the router) that dies on its own
is replaced, its journal replayed first. Children ask the kernel for SIGTERM when the supervisor dies
(`PR_SET_PDEATHSIG`), so even a SIGKILL of the supervisor alone lets workers store what they graded.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import sys
import tempfile
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
    """The listening socket, the worker processes and (with several workers) the session router."""

    host: str
    port: int
    workers: int
    make_worker: Callable[[], Worker]  # called in each worker process, after the fork
    on_worker_death: Callable[[int], None] = lambda pid: None  # in the supervisor (replay its journal)
    on_stop: Callable[[], None] = lambda: None  # in the supervisor, once every worker has exited
    log_level: str = "warning"
    sock: socket.socket | None = None
    worker_socks: list[socket.socket] = field(default_factory=list)  # one Unix socket per worker (routed)
    socket_dir: str | None = None
    children: dict[int, tuple[str, int, float]] = field(default_factory=dict)  # pid -> (role, slot, start time)
    _stopping: bool = False

    @property
    def routed(self) -> bool:
        return self.workers > 1

    def bind(self) -> int:
        """Bind and listen (and, with several workers, make their Unix sockets); the public port (the one the
        system chose when `port` is 0)."""
        # IPPROTO_TCP said explicitly: the connections accepted from this socket inherit its protocol number, and
        # asyncio sets TCP_NODELAY only on sockets whose protocol is TCP; with 0 (the default) uvicorn's answers
        # waited 40 ms each for the client's delayed ACK (Nagle): 236 ms an episode instead of 13 ms
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM,
                             socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(2048)
        sock.set_inheritable(True)
        self.sock = sock
        self.port = sock.getsockname()[1]
        if self.routed:
            self.socket_dir = tempfile.mkdtemp(prefix="serve-env-")
            for slot in range(self.workers):
                uds = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                uds.bind(os.path.join(self.socket_dir, f"worker-{slot}.sock"))
                uds.listen(2048)
                uds.set_inheritable(True)
                self.worker_socks.append(uds)
        return self.port

    @property
    def worker_paths(self) -> list[str]:
        return [s.getsockname() for s in self.worker_socks]

    def _fork(self, role: str, slot: int, body: Callable[[], int]) -> int:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                # not SIG_DFL: uvicorn re-raises the signal that stopped it once it has shut down, which with
                # the default action would end the process before the worker stores what it graded
                signal.signal(signal.SIGTERM, _ignore_signal)
                signal.signal(signal.SIGINT, _ignore_signal)
                _die_with_parent(parent)
                code = body()
            except BaseException:  # noqa: BLE001 - a child reports and exits; the supervisor replaces it
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = (role, slot, time.monotonic())
        return pid

    def _spawn_worker(self, slot: int) -> int:
        def body() -> int:
            if not self.routed:
                return run_worker(self.make_worker(), self.sock, self.log_level)
            self.sock.close()  # the router's; a worker listens on its own Unix socket only
            for i, uds in enumerate(self.worker_socks):
                if i != slot:
                    uds.close()
            return run_worker(self.make_worker(), self.worker_socks[slot], self.log_level)

        return self._fork("worker", slot, body)

    def _spawn_router(self) -> int:
        def body() -> int:
            from .router import run_router

            paths = self.worker_paths
            for uds in self.worker_socks:
                uds.close()
            run_router(self.sock, paths, self.log_level)
            return 0

        return self._fork("router", 0, body)

    def run(self, announce: Callable[[int], None] = lambda port: None) -> int:
        """Serve until SIGTERM / SIGINT; the exit code."""
        if self.sock is None:
            self.bind()
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        for slot in range(self.workers):
            self._spawn_worker(slot)
        if self.routed:
            self._spawn_router()
        announce(self.port)
        fast_deaths = 0
        code = 0
        while not self._stopping:
            pid, status = _reap()
            if pid is None:
                time.sleep(0.1)
                continue
            role, slot, started = self.children.pop(pid, ("worker", 0, time.monotonic()))
            if role == "worker":
                self.on_worker_death(pid)
            if self._stopping:
                break
            fast_deaths = fast_deaths + 1 if time.monotonic() - started < FAST_DEATH_SECONDS else 0
            print(f"serve-env: {role} {pid} exited ({_describe(status)}); "
                  + ("too many quick deaths, stopping" if fast_deaths > RESTART_LIMIT else "starting another"),
                  file=sys.stderr, flush=True)
            if fast_deaths > RESTART_LIMIT:
                code = 1
                break
            self._spawn_worker(slot) if role == "worker" else self._spawn_router()
        self._stop_children()
        self.on_stop()
        return code

    def _request_stop(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _stop_children(self) -> None:
        """Workers first (each finishes its requests in flight, through the router, and stores what it
        graded), then the router; then the sockets."""
        for uds in self.worker_socks:  # a worker that stops accepting must refuse, not queue, new requests
            uds.close()
        self._stop_role("worker")
        self._stop_role("router")
        if self.sock is not None:
            self.sock.close()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def _stop_role(self, role: str) -> None:
        pids = [pid for pid, (r, _slot, _t) in self.children.items() if r == role]
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + WORKER_GRACE_SECONDS
        while any(p in self.children for p in pids) and time.monotonic() < deadline:
            pid, _status = _reap()
            if pid is None:
                time.sleep(0.05)
                continue
            gone = self.children.pop(pid, None)
            if gone is not None and gone[0] == "worker":
                self.on_worker_death(pid)
        for pid in [p for p in pids if p in self.children]:  # past the grace period: its journal keeps the rest
            _signal(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.children.pop(pid, None)
            if role == "worker":
                self.on_worker_death(pid)


def run_worker(worker: Worker, sock: socket.socket, log_level: str) -> int:
    """uvicorn on the inherited socket until SIGTERM / SIGINT, then the worker's `on_exit`."""
    import uvicorn

    config = uvicorn.Config(worker.app, log_level=log_level, access_log=False, timeout_keep_alive=60,
                            timeout_graceful_shutdown=WORKER_GRACE_SECONDS - 5, lifespan="on")
    server = uvicorn.Server(config)
    try:
        if not _stop_requested:
            server.run(sockets=[sock])
    finally:
        worker.on_exit()
    return 0


_stop_requested = False


def _ignore_signal(signum: int, frame: Any) -> None:
    """A child's SIGTERM / SIGINT before uvicorn installs its own handlers (or after it has stopped): noted,
    so a worker told to stop while it was starting does not start serving."""
    global _stop_requested
    _stop_requested = True


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
