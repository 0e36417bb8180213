from __future__ import annotations

import json

HELP = """Counts in the store: decision points by split x action type, conversations, flags, rejected rows.

example:
  python -m nemo_core stats --json
"""


def register(sub) -> None:
    from ..options import HelpFormatter, add_db_option

    p = sub.add_parser("stats", help="counts of decision points, conversations, flags", description=HELP, formatter_class=HelpFormatter)
    add_db_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..options import resolve_db
    from ...data.extract import FLAGS
    from ...data.store import Store

    with Store.open(resolve_db(args.db)) as store:
        stats = store.stats()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"database: {stats['database']}")
    print(f"conversations: {stats['conversations']:,}")
    print(f"decision points: {stats['total_decision_points']:,}")
    for split, by_type in stats["decision_points"].items():
        total = sum(by_type.values())
        parts = ", ".join(f"{t} {n:,} ({(100 * n / total) if total else 0:.1f}%)" for t, n in by_type.items())
        print(f"  {split}: {total:,}  {parts}")
    ungradeable = stats["flags"].get("ungradeable", 0)
    print(f"tasks (serve-env): {sum(stats['tasks'].values()):,}  "
          + ", ".join(f"{split} {n:,}" for split, n in stats["tasks"].items())
          + (f"  (decision points minus the {ungradeable:,} ungradeable ones: a task must always yield a reward)"
             if ungradeable else ""))
    print("flags:")
    for name, n in stats["flags"].items():
        print(f"  {name}: {n:,}  ({FLAGS[name]})")
    print(f"rejected rows: {stats['rejected_rows']:,}")
    return 0
