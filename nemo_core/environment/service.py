"""`serve-env`: Nemotron-Agentic served over the OpenReward protocol from a store, by N worker processes.

`prepare` checks the database and builds what every worker shares (the task order); `serve` runs the
supervisor (`serve.py`) whose workers each build their own store connection, recorder and SDK `Server`.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from ..base.errors import NemoError, StoreError
from ..data.store import Store, current_process
from .tasks import TaskIndex


@dataclass
class ServeOptions:
    db: Path
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    record: str | None = None
    log_level: str = "warning"


@dataclass
class Prepared:
    """What the supervisor computed before forking the workers."""

    options: ServeOptions
    tasks: TaskIndex
    owner: dict  # the supervisor's process: it owns the recorded runs (`runs.mark_abandoned_runs`)
    recovered: dict[str, int]  # submissions of an earlier, killed server stored from its journals, by run


def open_tasks(db: Path) -> tuple[Store, TaskIndex]:
    """The database, read-only, and its task order; `StoreError` (one line, with the fix) when it is missing,
    not a workbench database, or holds no task."""
    store = Store.open(db, create=False, readonly=True)
    try:
        tasks = TaskIndex.build(store)
    except sqlite3.DatabaseError as exc:
        store.close()
        raise StoreError(f"{db} is not an ingested workbench database ({exc})",
                         f"ingest data first: python -m nemo_core ingest FILE --db {db}") from None
    if not sum(tasks.counts().values()):
        store.close()
        raise StoreError(f"{db} holds no task (no gradeable decision point)",
                         f"ingest data first: python -m nemo_core ingest FILE --db {db}")
    return store, tasks


def prepare(options: ServeOptions) -> Prepared:
    from .recorder import journal_dir, open_record, replay_journals

    owner = current_process()
    recovered: dict[str, int] = {}
    store, tasks = open_tasks(options.db)  # read-only: a wrong --db is never written to
    store.close()  # nothing crosses the fork but the task order (each worker opens its own connection)
    if options.record is not None:
        # writable: brings an older database's schema up to date (the `environment` run kind)
        with Store.open(options.db, create=False) as writable:
            open_record(writable, options.record)
            recovered = replay_journals(writable, journal_dir(options.db), owner=owner, source=source(options))
    return Prepared(options, tasks, owner, recovered)


def source(options: ServeOptions) -> str:
    """What a recorded run's `source` column says: the server's address (once the port is known)."""
    if not options.port:
        return "serve-env"
    host = f"[{options.host}]" if ":" in options.host else options.host
    return f"serve-env http://{host}:{options.port}"


def serve(prepared: Prepared, announce=None) -> int:
    """Run the supervisor until SIGTERM / SIGINT."""
    from .recorder import close_record, journal_dir, replay_journals
    from .serve import Supervisor

    options = prepared.options

    def on_worker_death(pid: int) -> None:
        if options.record is None:
            return
        with Store.open(options.db, create=False) as store:
            replayed = replay_journals(store, journal_dir(options.db), owner=prepared.owner, source=source(options))
        if replayed:
            print(f"serve-env: stored {sum(replayed.values()):,} submissions from the journal of worker {pid}",
                  file=sys.stderr, flush=True)

    def on_stop() -> None:
        if options.record is None:
            return
        on_worker_death(0)
        with Store.open(options.db, create=False) as store:
            close_record(store, options.record)
        try:
            journal_dir(options.db).rmdir()  # only when empty: a journal left there is still to be stored
        except OSError:
            pass

    supervisor = Supervisor(options.host, options.port, options.workers, lambda: make_worker(prepared),
                            on_worker_death=on_worker_death, on_stop=on_stop, log_level=options.log_level)
    try:
        options.port = supervisor.bind()  # the port the system chose for --port 0, for the runs' source
    except OSError as exc:
        raise NemoError(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}",
                        "choose another --port, or stop the server using it") from None
    return supervisor.run(announce or (lambda port: None))


def make_worker(prepared: Prepared):
    """In a worker process: its store connection, recorder and SDK server app."""
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from openreward.environments import Server
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from ..base.config import SPLITS
    from .env import ServeContext, environment_class
    from .recorder import RunRecorder
    from .serve import Worker

    options = prepared.options
    store = Store.open(options.db, create=False, readonly=True)
    recorder = None
    if options.record is not None:
        recorder = RunRecorder(options.db, options.record, owner=prepared.owner, source=source(options))
    context = ServeContext(store=store, tasks=prepared.tasks.rebind(store), recorder=recorder)
    server = Server([environment_class(context)])

    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """FastAPI's own answer ({"detail": ...}), with the SDK's bare "Invalid split" made to say which
        splits there are."""
        detail = exc.detail
        if detail == "Invalid split":
            detail = f"Invalid split: the splits are {', '.join(SPLITS)}"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    server.app.add_exception_handler(StarletteHTTPException, http_error)

    def on_exit() -> None:
        if recorder is not None and not recorder.close():
            print(f"serve-env: some submissions could not be stored ({recorder.last_error}); they stay in "
                  f"{recorder.journal.path} and the next start stores them", file=sys.stderr, flush=True)
        store.close()

    return Worker(server.app, on_exit)
