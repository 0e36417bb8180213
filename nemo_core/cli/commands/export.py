from __future__ import annotations

import sys
from pathlib import Path

HELP = """Export decision points (or a run's predictions with them) to a file, streamed with a progress bar.

Formats:
  parquet    one row per decision point: id, split, conversation_uuid, turn_index, action_type, flags, and
             context / tools / expected as JSON text (pandas.read_parquet, datasets.load_dataset("parquet"))
  jsonl      the same rows with context / tools / expected nested: a line is exactly `show ID --json`
  csv        the same columns as parquet (flags joined with commas)
  openai-ft  OpenAI chat fine-tuning lines (messages + tools); decision points that cannot make a valid
             line are left out and counted by reason
  nemo-gym   rows for NeMo Gym's single_step_tool_use_with_argument_comparison resources server

The selection takes the Browse page's filters; --sample N --seed S draws the same decision points as
`run-model --limit N --sample-seed S`. With --run NAME (parquet, jsonl, csv) the rows are the run's
predictions, each beside its decision point: prediction, reward, name/arg match, grader, reason, error,
taxonomy category and the breakdown.

examples:
  python -m nemo_core export --format parquet --out dps.parquet
  python -m nemo_core export --format openai-ft --split tool_calling --sample 5000 --seed 1 --out ft.jsonl
  python -m nemo_core export --format parquet --run my-model-v1 --out my-model-v1.parquet
"""


def add_filter_options(p) -> None:
    """The Browse page's filters as options (also used by `run-model --write-batch`'s selection)."""
    from ...base.config import ACTION_TYPES, SPLITS
    from ...data.extract import FLAGS

    p.add_argument("--split", choices=SPLITS, help="only this split")
    p.add_argument("--action-type", choices=ACTION_TYPES, help="only decision points expecting this action type")
    p.add_argument("--tool", metavar="NAME", help="only decision points whose expected call is this tool")
    p.add_argument("--flag", action="append", default=[], choices=list(FLAGS), metavar="FLAG",
                   help=f"only decision points with this flag (repeat for several): {', '.join(FLAGS)}")
    p.add_argument("--exclude-flag", action="append", default=[], choices=list(FLAGS), metavar="FLAG",
                   help="only decision points without this flag (repeat for several)")
    p.add_argument("--text", metavar="WORDS", help="full-text search: every word must occur in the conversation")
    for name, what in (("min-tools", "tools offered ≥"), ("max-tools", "tools offered ≤"),
                       ("min-turn", "turn index ≥"), ("max-turn", "turn index ≤")):
        p.add_argument(f"--{name}", type=int, metavar="N", help=what)


def filter_from_args(args):
    from ...data.filters import DecisionPointFilter

    return DecisionPointFilter(split=args.split, action_type=args.action_type, tool=args.tool, text=args.text,
                               flags=tuple(args.flag), exclude_flags=tuple(args.exclude_flag),
                               min_tools=args.min_tools, max_tools=args.max_tools, min_turn=args.min_turn,
                               max_turn=args.max_turn).validate()


def register(sub) -> None:
    from ..options import HelpFormatter, add_db_option
    from ...runs.export import FORMATS

    p = sub.add_parser("export", help="export decision points or a run (parquet, jsonl, csv, openai-ft, nemo-gym)",
                       description=HELP, formatter_class=HelpFormatter)
    p.add_argument("--format", required=True, choices=FORMATS, dest="fmt", help="output format (see above)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="the file to write")
    add_db_option(p)
    add_filter_options(p)
    p.add_argument("--sample", type=int, metavar="N", help="a seeded random sample of N of the selected decision points")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the sample's seed (default 0)")
    p.add_argument("--run", dest="run_name", metavar="NAME", help="export this run's predictions (parquet, jsonl, csv)")
    p.add_argument("--submit-message-tool", action="store_true",
                   help="openai-ft: offer submit_message and write text replies as its calls (default: a reply "
                        "is an assistant message)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="conversion processes (default: one per core for 20,000 decision points or more; 0 = none)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..options import check_output_path, check_workers, progress_bar, resolve_db
    from ...data.dp_stream import Selection, count
    from ...base.errors import OptionError
    from ...runs.export import check_format, export
    from ...data.store import Store

    if args.sample is not None and args.sample < 1:
        raise OptionError("--sample must be at least 1", "for example --sample 1000")
    check_workers(args.workers, zero="convert in this process")
    check_output_path(args.out, "--out")
    if str(args.out) == "-":
        raise OptionError("--out -: an export is written to a file", "give a file name, e.g. export.parquet")
    flt = filter_from_args(args)
    path = resolve_db(args.db)
    # a plain export only reads; a run export may first bring the run's taxonomy up to date (a write)
    with Store.open(path, readonly=args.run_name is None) as store:
        run_id = _run_id(store, args.run_name)
        selection = Selection(flt, sample=args.sample, seed=args.seed if args.sample is not None else None,
                              run_id=run_id)
        check_format(args.fmt, selection)
        total = count(store, selection)
        if total == 0:
            print("error: no decision point matches this selection (fix: check the filters and "
                  "`python -m nemo_core stats`)", file=sys.stderr)
            return 1
        with progress_bar(total, unit="dp", desc=f"export {args.fmt}", quiet=args.quiet) as bar:
            try:
                result = export(store, selection, args.fmt, args.out, submit_message_tool=args.submit_message_tool,
                                workers=args.workers, on_progress=bar.update if bar is not None else None)
            except KeyboardInterrupt:
                print(f"interrupted: nothing written to {args.out}", file=sys.stderr)
                return 130
    print(result.summary())
    return 0


def _run_id(store, run_name: str | None) -> int | None:
    if run_name is None:
        return None
    from ...runs.run import get_run
    from ...runs.taxonomy import ensure_taxonomy

    run = get_run(store, run_name)
    ensure_taxonomy(store, run.id)  # the category column is read from the run's taxonomy
    return run.id
