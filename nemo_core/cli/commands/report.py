"""`report`: a stored run's summary and failure taxonomy in the terminal (the Runs page, as text)."""

from __future__ import annotations

import json

HELP = """Summarise a stored run: mean reward with a 95% bootstrap CI overall, by split and by action type,
and the failure taxonomy (how many predictions fall in each category; see nemo_core/runs/taxonomy.py).

The taxonomy is computed and stored when a run finishes; a run stored before that is classified on
first use.

A run that did not complete (interrupted, failed, killed, or still running) covers only part of its
input: the report says so first ("partial: N of M lines"), and its figures are those of that part.

--json prints one object with the keys run, n, mean_reward, by_split, by_action_type,
by_split_and_action_type (split -> action type -> mean), taxonomy (category -> count), plus
argument_errors (key counts), sub_kinds, status (completed, interrupted, failed, running) and progress
({status, complete, done, total, unit, partial}).

example:
  python -m nemo_core report --run my-model-v1 --json
"""


def register(sub) -> None:
    from ..options import HelpFormatter, add_db_option

    p = sub.add_parser("report", help="summary and failure taxonomy of a stored run", description=HELP,
                       formatter_class=HelpFormatter)
    p.add_argument("--run", dest="run_name", metavar="NAME", required=True, help="name of the stored run")
    add_db_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def _fmt(ci: dict) -> str:
    if ci["mean"] is None:
        return f"n/a (0 graded, {ci['n_ungraded']:,} ungraded)"
    extra = f", {ci['n_ungraded']:,} ungraded" if ci["n_ungraded"] else ""
    return f"{ci['mean']:.3f} [{ci['ci_low']:.3f}, {ci['ci_high']:.3f}] (n={ci['n']:,}{extra})"


def run(args) -> int:
    from ..options import resolve_db
    from ...runs.analysis import report
    from ...data.store import Store
    from ...runs.taxonomy import CATEGORIES

    with Store.open(resolve_db(args.db)) as store:
        data = report(store, args.run_name)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"run {data['run']!r} (id {data['run_id']}, {data['kind']}"
          + (f", model {data['model']}" if data["model"] else "") + f"): {data['n']:,} predictions")
    progress = data["progress"]
    if not progress["complete"]:
        again = {"grade": "re-run the same grade command (same --run) to grade the whole file",
                 "run-model": "re-run run-model with the same --run to continue"}.get(data["kind"], "")
        print(f"status: {progress['status']}, {progress['partial']}: the figures below cover only those"
              + (f" ({again})" if again and progress["status"] != "running" else ""))
    print(f"mean reward: {_fmt(data['mean_reward'])}")
    for title, groups in (("by split", data["by_split"]), ("by action type", data["by_action_type"])):
        print(f"{title}:")
        for name, ci in groups.items():
            print(f"  {name}: {_fmt(ci)}")
    print("by split × action type:")
    for split, cells in data["by_split_and_action_type"].items():
        for action_type, ci in cells.items():
            print(f"  {split} / {action_type}: {_fmt(ci)}")
    total = data["n"] or 1
    print("failure taxonomy:")
    width = max(len(c) for c in CATEGORIES)
    for category, n in data["taxonomy"].items():
        print(f"  {category:<{width}}  {n:>9,}  {100 * n / total:5.1f}%")
    for row in data["sub_kinds"]:
        print(f"    {row['category']} / {row['sub_kind']}: {row['n']:,}")
    keys = data["argument_errors"]
    if any(keys.values()):
        print("argument errors (keys): " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in keys.items()))
    return 0
