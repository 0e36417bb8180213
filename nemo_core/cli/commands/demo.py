from __future__ import annotations

HELP = """Build the demo database (data/demo.db) from the bundled files in data/demo/, with a run of each
baseline policy (baseline-always-message, baseline-first-tool, baseline-keyword-router,
baseline-copy-last-call), a small campaign answered by synthetic annotators and a calibration audit set
(see nemo_core/people/demo_content.py), so every page has something to show.

The app and the read-only commands do this by themselves when no database exists; this command is
for rebuilding it, or (--write) for regenerating the synthetic demo files after changing synth.py.

example:
  python -m nemo_core demo --rebuild
"""


def register(sub) -> None:
    from ..options import HelpFormatter

    p = sub.add_parser("demo", help="build the demo database from data/demo/", description=HELP, formatter_class=HelpFormatter)
    p.add_argument("--rebuild", action="store_true", help="rebuild even if the demo database is up to date")
    p.add_argument("--write", action="store_true", help="first regenerate the synthetic demo files in data/demo/")
    p.set_defaults(run=run)


def run(args) -> int:
    from ...data.demo import write_demo_files
    from ...people.demo_content import ensure_full_demo_db

    if args.write:
        for path in write_demo_files():
            print(f"wrote {path}")
    path = ensure_full_demo_db(rebuild=args.rebuild or args.write)
    print(f"demo database: {path}")
    return 0
