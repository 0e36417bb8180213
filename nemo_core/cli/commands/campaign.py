"""`campaign`: human baseline campaigns from the terminal (create, list, results, export); people annotate on
the app's Annotate page."""

from __future__ import annotations

import json
import sys

HELP = """Human baseline campaigns (the app's Campaigns page, as commands).

  create NAME --size N   draw a seeded sample (optionally stratified by split x action type) of the
                         decision points a selection matches; annotators answer it on the Annotate page
  list                   campaigns with their progress
  results NAME           human baseline reward with 95% bootstrap CIs overall, by split, by action type and
                         per annotator; time per item; agreement on overlapping items (--json for all of it)
  export NAME            every answer as CSV, or as JSONL in the `grade` input format
                         ({"id", "action", "annotator", ...}), so `grade` re-grades it as a run
  delete NAME --yes      delete a campaign, its items and every answer (runs saved from it stay)

examples:
  python -m nemo_core campaign create pilot --size 200 --seed 1 --stratify --overlap 2 --shared 0.1 \\
      --exclude-flag ungradeable
  python -m nemo_core campaign results pilot
  python -m nemo_core campaign export pilot --format jsonl --annotator ann --out ann.jsonl
"""


def register(sub) -> None:
    from ..options import HelpFormatter, add_db_option

    p = sub.add_parser("campaign", help="human baseline campaigns: create, list, results, export, delete", description=HELP,
                       formatter_class=HelpFormatter)
    actions = p.add_subparsers(dest="campaign_action", metavar="ACTION", required=True)

    def action(name: str, help: str, run, *, names_a_campaign: bool = True):
        """One action's parser: its help, the campaign NAME it acts on (all but `list`), what it runs."""
        parser = actions.add_parser(name, help=help, formatter_class=HelpFormatter)
        if names_a_campaign:
            parser.add_argument("name")
        parser.set_defaults(run=run)
        return parser

    c = action("create", "draw a campaign's sample", run_create)
    c.add_argument("--size", type=int, required=True, help="how many decision points to draw")
    c.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    c.add_argument("--stratify", action="store_true", help="stratify by split x action type (proportional)")
    c.add_argument("--overlap", type=int, default=1, help="annotators per item (default 1)")
    c.add_argument("--shared", type=float, default=0.0, help="share of items every annotator answers, 0-1")
    c.add_argument("--split", help="only this split")
    c.add_argument("--action-type", help="only this action type")
    c.add_argument("--tool", help="only this expected tool")
    c.add_argument("--flag", action="append", default=[], help="only with this flag (repeatable)")
    c.add_argument("--exclude-flag", action="append", default=[], help="without this flag (repeatable)")
    c.add_argument("--instructions", default="", help="text shown to annotators")
    c.add_argument("--reveal", action="store_true", help="show annotators their grade after each answer")
    c.add_argument("--grader", default="auto", choices=["auto", "keyword"], help="grader of message answers")

    action("list", "campaigns and their progress", run_list, names_a_campaign=False)

    r = action("results", "the human baseline of a campaign", run_results)
    r.add_argument("--json", action="store_true", help="print JSON")

    e = action("export", "a campaign's answers as CSV or grade-input JSONL", run_export)
    e.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    e.add_argument("--annotator", help="only this annotator's answers (a JSONL that grades as one run)")
    e.add_argument("--out", help="write here instead of stdout")

    d = action("delete", "delete a campaign and its answers", run_delete)
    d.add_argument("--yes", action="store_true", help="really delete (without it, say what would be deleted)")

    for parser in actions.choices.values():  # every action reads the database; --db last in each one's help
        add_db_option(parser)


def _open(args):
    """The database (--db, $NEMO_DB, data/nemo.db, else the demo database, as for every command)."""
    from ..options import resolve_db
    from ...data.store import Store

    return Store.open(resolve_db(args.db))


def run_create(args) -> int:
    from ...people import campaigns as C
    from ...data.filters import DecisionPointFilter

    flt = DecisionPointFilter(split=args.split, action_type=args.action_type, tool=args.tool, flags=tuple(args.flag),
                              exclude_flags=tuple(args.exclude_flag)).validate()
    with _open(args) as store:
        camp = C.create_campaign(store, args.name, selection=flt, sample_size=args.size, seed=args.seed,
                                 stratify=args.stratify, overlap=args.overlap, shared_share=args.shared,
                                 instructions=args.instructions, reveal_after_submit=args.reveal, grader=args.grader)
    print(f"campaign {camp.name!r} (id {camp.id}): {camp.n_items:,} items of {camp.n_population:,} matching, "
          f"seed {camp.seed}, overlap {camp.overlap}, {camp.shared_share:.0%} shared")
    for stratum, counts in camp.allocation.items():
        print(f"  {stratum}: {counts['drawn']:,} of {counts['population']:,}")
    return 0


def run_list(args) -> int:
    from ...people import campaigns as C

    with _open(args) as store:
        found = C.list_campaigns(store)
        if not found:
            print("no campaign yet: python -m nemo_core campaign create NAME --size N")
        for camp in found:
            prog = C.progress(store, camp.id)
            print(f"{camp.id}\t{camp.name}\t{camp.status}\t{prog.done:,}/{prog.target_answers:,} answers\t"
                  f"{len(prog.annotators)} annotators\t{camp.n_items:,} items")
    return 0


def run_results(args) -> int:
    from ...people import campaigns as C
    from ...people.baseline import campaign_results

    with _open(args) as store:
        res = campaign_results(store, C.get_campaign(store, args.name).id)
    if args.json:
        print(json.dumps({
            "campaign": args.name, "answers": res.n_answers, "skips": res.n_skips, "scores": res.table(),
            "time": {"median_s": res.time_overall.median, "mean_s": res.time_overall.mean},
            "agreement": res.agreement.to_json(),
            "disagreements": [{"id": d.dp_id, "expected": d.expected, "answers": d.n_answers,
                               "disagree": d.n_disagree, "mean_reward": d.mean_reward, "labels": d.labels}
                              for d in res.disagreements],
        }, indent=2))
        return 0
    print(f"campaign {args.name!r}: {res.n_answers:,} answers, {res.n_skips:,} skips")
    print(f"human baseline reward: {res.overall.fmt()}")
    for title, groups in (("by split", res.by_split), ("by action type", res.by_action_type),
                          ("by annotator", res.by_annotator)):
        print(f"{title}:")
        for name, ci in groups.items():
            print(f"  {name}: {ci.fmt()}")
    if res.time_overall.median is not None:
        print(f"time per item: median {res.time_overall.median:.1f} s, mean {res.time_overall.mean:.1f} s")
    ag = res.agreement
    if ag.n_items:
        kappa = "Cohen's" if ag.kappa_method == "cohen" else "Fleiss'"
        print(f"agreement on {ag.n_items:,} items ({ag.n_pairs:,} pairs): same type {ag.same_type:.0%}, same tool "
              f"{ag.same_tool:.0%}, {kappa} kappa (tool) "
              + ("n/a" if ag.kappa_tool is None else f"{ag.kappa_tool:.2f}")
              + ", argument agreement " + ("n/a" if ag.arg_agreement is None else f"{ag.arg_agreement:.2f}"))
    return 0


def run_export(args) -> int:
    from ...people import campaigns as C
    from ...people.baseline import export_rows, to_csv, to_jsonl
    from ..options import check_output_path

    check_output_path(args.out, "--out")
    with _open(args) as store:
        rows = export_rows(store, C.get_campaign(store, args.name).id, annotator=args.annotator)
    text = to_csv(rows) if args.format == "csv" else to_jsonl(rows)
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        print(f"wrote {len(rows):,} rows to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def run_delete(args) -> int:
    from ...people import campaigns as C

    with _open(args) as store:
        camp = C.get_campaign(store, args.name)
        n_answers = store.scalar("SELECT count(*) FROM campaign_answers WHERE campaign_id = ? AND status = 'answered'",
                                 (camp.id,)) or 0
        if not args.yes:
            print(f"campaign {camp.name!r}: {camp.n_items:,} items, {n_answers:,} answers would be deleted; "
                  "run again with --yes to delete it")
            return 1
        gone = C.delete_campaign(store, camp.id)
        print(f"deleted campaign {camp.name!r}: {gone['items']:,} items, {gone['answers']:,} answer rows "
              f"({n_answers:,} answered)")
    return 0
