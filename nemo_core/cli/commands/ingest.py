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
            store.browse_index()  # and Browse's index (about 2 s of CPU at 1.2 M decision points), stored
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
