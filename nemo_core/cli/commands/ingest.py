from __future__ import annotations

import json
import sys
from pathlib import Path

from ...base.config import SPLITS

HELP = """Read raw Nemotron-Agentic-v1 JSONL files into the store.

The split comes from each file's name (tool_calling*.jsonl, interactive_agent*.jsonl) or --split.
Re-ingesting the same rows adds nothing. Rows that cannot be used are reported with file and line.

example:
  python -m nemo_core ingest data/raw/tool_calling.jsonl data/raw/interactive_agent.jsonl --report ingest.json
"""


def _count(text: str) -> int:
    """A whole number >= 1 (a negative --limit made the report count negative rows)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


FRESH_PROCESS_ROWS = 200_000  # from this many decision points, Browse's index is built in a new interpreter


def store_browse_index(store, fresh_process_rows: int = FRESH_PROCESS_ROWS) -> None:
    """Build and store Browse's index now, not on the first visit. Its build and save need about 230 MB above what
    the ingest leaves resident (at 1,229,910 decision points the ingest's peak went from 359 MB to 501 MB, past its
    500 MB target), so a large database gets it from a fresh interpreter, which starts small (a subprocess, not
    multiprocessing's spawn, which would import the caller's main script again); a failure there only leaves
    Browse to build the index on its first visit, as for a database made by older code."""
    import os
    import subprocess

    if (store.scalar("SELECT max(rowid) FROM decision_points") or 0) < fresh_process_rows:
        store.browse_index()
        return
    package_root = str(Path(__file__).resolve().parents[3])  # the folder holding nemo_core/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", "import sys; from nemo_core.cli.commands.ingest import "
                           "build_browse_index_of; sys.exit(build_browse_index_of(sys.argv[1]))", str(store.path)],
                          env=env, check=False)
    if done.returncode != 0:
        print(f"warning: Browse's index was not built (exit {done.returncode}); Browse builds it on its first visit",
              file=sys.stderr)


def build_browse_index_of(path: str) -> int:
    """In the fresh interpreter: build and store the index of the database at `path`; 0 when it is stored."""
    from ...data.store import Store

    with Store.open(path) as store:
        return 0 if store.browse_index() is not None else 1


def register(sub) -> None:
    from ..options import HelpFormatter, add_db_option

    p = sub.add_parser("ingest", help="read raw JSONL files into the store", description=HELP, formatter_class=HelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="raw .jsonl files")
    add_db_option(p)
    p.add_argument("--split", choices=SPLITS, help="the split of every file (default: from the file name)")
    p.add_argument("--limit", type=_count, metavar="N", help="read at most N rows in all")
    p.add_argument("--report", type=Path, metavar="FILE", help="also write the report as JSON to FILE")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per core)")
    p.add_argument("--no-fts", action="store_true", help="skip the full-text index (faster; text search finds nothing new)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..options import check_output_path, check_workers, resolve_db
    from ...data.ingest import ingest
    from ...data.store import Store

    check_workers(args.workers, zero="read in this process")
    check_output_path(args.report, "--report")
    db = resolve_db(args.db, write=True)
    store = Store.open(db)
    try:
        report = ingest(store, args.paths, split=args.split, limit=args.limit, workers=args.workers,
                        with_fts=not args.no_fts, progress=not args.quiet and sys.stderr.isatty())
        if report.conversations_stored:  # the Overview page's aggregates, computed once here, not on first visit
            from ...data.overview import overview

            overview(store)
            store_browse_index(store)  # and Browse's index (about 2 s of CPU at 1.2 M decision points), stored
    except BaseException as exc:  # an interrupted or failed ingest still leaves its report behind
        partial = getattr(exc, "ingest_report", None)
        if partial is not None:
            print(partial.to_text(), file=sys.stderr)
            _write_report(args.report, partial)
        raise
    finally:
        store.close()
    print(report.to_text())
    print(f"database: {db}")
    _write_report(args.report, report)
    return 0 if report.rows_read > 0 else 1


def _write_report(path, report) -> None:
    if path:
        path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"report written to {path}")
