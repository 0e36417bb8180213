"""`python -m nemo_core serve-env` as a real server process on 127.0.0.1 for tests (and `bench/bench_env.py`).

    with EnvServer(db, record="run-1", workers=2) as server:   # started, port chosen by the system
        env = client.environments.get("Nemotron-Agentic", base_url=server.base_url)
        ...
    server.output  # everything the server printed (stdout and stderr), for checks on what it logs

The server runs in its own process group (so a test can SIGKILL the supervisor and its workers together
without touching pytest) and is stopped with SIGTERM on exit.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
READY = re.compile(r"serving \S+ on (http://\S+?:(\d+)) ")


class EnvServer:
    def __init__(self, db: Path | str | None, *, record: str | None = None, workers: int = 1,
                 args: tuple[str, ...] = (), env: dict[str, str] | None = None, command: list[str] | None = None):
        self.db = db
        self.record = record
        self.workers = workers
        self.args = args
        self.env = {**os.environ, "OPENREWARD_DISABLE_UPDATE_CHECK": "1", **(env or {})}
        self.command = command
        self.proc: subprocess.Popen | None = None
        self.base_url = ""
        self.port = 0
        self._lines: list[str] = []
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self._reader: threading.Thread | None = None
        self.ready_seconds = 0.0

    def start(self, timeout: float = 90.0) -> "EnvServer":
        cmd = self.command or [sys.executable, "-m", "nemo_core", "serve-env", "--port", "0",
                               "--workers", str(self.workers)]
        if self.db is not None and self.command is None:
            cmd += ["--db", str(self.db)]
        if self.record is not None:
            cmd += ["--record", self.record]
        cmd += list(self.args)
        started = time.perf_counter()
        atexit.register(self.stop)  # a server runs in its own process group: never leave one behind
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=self._stderr,
                                     text=True, start_new_session=True)
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self._lines.append(line)
                m = READY.search(line)
                if m and not ready.is_set():
                    self.base_url, self.port = m.group(1), int(m.group(2))
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(timeout) or not self.base_url:
            self.stop(timeout=5)
            raise RuntimeError(f"serve-env did not start:\n{self.output}")
        self.ready_seconds = time.perf_counter() - started
        return self

    @property
    def output(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        err = self._stderr.read()
        self._stderr.seek(0, 2)
        return "".join(self._lines) + err

    def send(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the supervisor and every worker at once (the whole process group)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        atexit.unregister(self.stop)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        try:  # no worker may outlive the test
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            pass
        else:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.proc.returncode

    def __enter__(self) -> "EnvServer":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
