from __future__ import annotations

HELP = """Bring a database made by an older version of the workbench up to date.

Today that means the grading views (nemo_core/data/grading_view.py): per conversation, the tools and the
assistant turns alone, which `grade` reads instead of whole conversations (much faster at scale).
An ingest writes them; a database ingested before they existed grades correctly without them, only
slower, and `grade` says so. Safe to interrupt and run again: it continues where it stopped.

example:
  python -m nemo_core upgrade --db data/nemo.db
"""


def register(sub) -> None:
    from ..options import HelpFormatter, add_db_option

    p = sub.add_parser("upgrade", help="write what an older database lacks (grading views)", description=HELP,
                       formatter_class=HelpFormatter)
    add_db_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..options import progress_bar, resolve_db
    from ...data.grading_view import fill_views, missing_views
    from ...data.store import Store

    with Store.open(resolve_db(args.db, write=True), create=False) as store:
        missing = missing_views(store)
        if not missing:
            print(f"{store.path}: up to date (every conversation has its grading view)")
            return 0
        with progress_bar(missing, unit="conv", desc="grading views", quiet=args.quiet) as bar:
            written = fill_views(store, bar.update if bar is not None else None)
    print(f"{store.path}: wrote {written:,} grading views")
    return 0
