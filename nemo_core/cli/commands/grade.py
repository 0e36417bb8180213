from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

HELP = """Grade a predictions file: one result line per input line, in input order, and a stored run.

Each input line is {"id": "<decision point id>", "action": {...}}; other keys (model, raw, latency_ms, ...)
are kept with the stored prediction. Accepted actions: {"type": "function_call", "name", "arguments"},
{"type": "message", "content"}, an OpenAI assistant message, or an OpenAI tool call; and what another
harness got back from a model, as it is ("response" may stand for "action"): an OpenAI Chat Completion or
Responses API response, an Anthropic Messages response, a Gemini generateContent response or functionCall
part. An OpenAI Batch API output file is read as it is: custom_id is the id, response.body the answer; a
failed request (an error, a status other than 200) is reported on its line as not graded.

Message tasks use the LLM grader when an OpenAI key is configured (OPENAI_API_KEY), else keyword overlap
(--grader auto); --grader keyword or llm forces one. Model: --model, else $NEMO_GRADER_MODEL, else gpt-5-mini.
Endpoint: --base-url, else $OPENAI_BASE_URL (any OpenAI-compatible server).

Lines that cannot be graded (malformed, unknown id, duplicate id, invalid action) are reported with their
line numbers; the rest is still graded. The exit code is 1 only when nothing could be graded.

Interrupted (Ctrl-C, a crash)? What was graded is kept as a run marked interrupted. Run the same command
again, with the same --run: the file is graded again, whole, into that run (the partial one is replaced;
answers the LLM grader already scored come from its cache, so nothing is paid for twice).

example:
  python -m nemo_core grade predictions.jsonl --run my-model-v1 --out results.jsonl
"""

MAX_PRINTED_PROBLEMS = 20


def register(sub) -> None:
    from ..options import HelpFormatter, add_db_option

    p = sub.add_parser("grade", help="grade a predictions file into a stored run", description=HELP,
                       formatter_class=HelpFormatter)
    p.add_argument("predictions", type=Path, metavar="PREDICTIONS.jsonl", help="one {\"id\", \"action\"} object a line")
    add_db_option(p)
    p.add_argument("--run", dest="run_name", metavar="NAME", help="name of the stored run (default: grade-<file>-<time>)")
    p.add_argument("--grader", choices=("auto", "keyword", "llm"), default="auto",
                   help="grader for message tasks (default: auto = llm when a key is configured, else keyword)")
    p.add_argument("--out", metavar="RESULTS.jsonl", help="write the result lines here ('-' for stdout)")
    p.add_argument("--concurrency", type=int, default=8, metavar="N", help="parallel LLM grading requests (default 8)")
    p.add_argument("--base-url", metavar="URL", help="OpenAI-compatible endpoint for the LLM grader")
    p.add_argument("--model", metavar="M", help="LLM grader model (default $NEMO_GRADER_MODEL or gpt-5-mini)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes for keyword grading (default: one per core for files over 4 MB; 0 = none)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="per LLM request (default 60)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..options import check_output_path, check_workers, resolve_db
    from ...base.errors import InputFileError
    from ...runs.grade_file import grade_file
    from ...grading.grade import resolve_grader
    from ...grading.endpoint import EndpointConfig
    from ...grading.llm_grader import LLMGrader
    from ...runs.run import replace_unfinished_run, summarise_run, unique_run_name
    from ...data.store import Store

    path: Path = args.predictions
    if not path.is_file():
        raise InputFileError(f"{path}: no such file", "give a predictions .jsonl file")
    if args.concurrency < 1:
        raise InputFileError("--concurrency must be at least 1", "for example --concurrency 8")
    check_workers(args.workers, zero="grade in this process")
    check_output_path(args.out, "--out")
    config = EndpointConfig.for_grader(model=args.model, base_url=args.base_url, timeout=args.timeout)
    chosen = resolve_grader(args.grader, config)  # a clear error before anything is read or written
    store = Store.open(resolve_db(args.db))
    out = None
    try:
        llm = LLMGrader(config, store) if chosen == "llm" else None
        if chosen != "llm":
            from ...data.grading_view import missing_views

            missing = missing_views(store)
            if missing:
                print(f"note: {missing:,} conversations have no grading view (a database from an older version): "
                      f"they are graded from the whole conversation, which is slower; "
                      f"`python -m nemo_core upgrade --db {store.path}` writes them once", file=sys.stderr)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        name = args.run_name or unique_run_name(store, f"grade-{path.stem}-{stamp}")
        replaced = replace_unfinished_run(store, name, kind="grade", source_file=str(path))
        if replaced is not None:
            print(f"note: run {name!r} did not finish ({replaced:,} predictions): grading {path} again into it, "
                  f"from the first line", file=sys.stderr)
        if args.out == "-":
            out = sys.stdout.buffer
        elif args.out:
            out = open(args.out, "wb")
        to_stdout = args.out == "-"
        try:
            result = grade_file(store, path, run_name=name, grader=chosen, llm=llm, out=out,
                                concurrency=args.concurrency, progress=not args.quiet, workers=args.workers)
        except KeyboardInterrupt:
            kept = store.scalar("SELECT n_predictions FROM runs WHERE name = ?", (name,)) or 0
            print(f"interrupted: run {name!r} keeps the {kept:,} predictions stored before the stop and is marked "
                  f"interrupted; to grade the whole file, run the same command again with --run {name} (it starts "
                  f"again from the first line; LLM grades already made come from the cache)", file=sys.stderr)
            return 130
        if out is not None:
            out.flush()
        summary = summarise_run(store, result.run_id)
    finally:
        if out is not None and out is not sys.stdout.buffer:
            out.close()
        store.close()
    report = sys.stderr if to_stdout else sys.stdout
    model = f" ({result.grader_model})" if result.grader_model else ""
    print(f"run {result.run_name!r} (id {result.run_id}) in {store.path}: grader {result.grader}{model}", file=report)
    rate = result.n_lines / result.seconds if result.seconds else 0
    print(f"lines: {result.n_lines:,}  graded: {result.n_graded:,}  could not be graded: {result.n_not_graded:,} "
          f"({result.n_ungraded:,} ungradeable references, {result.n_problems:,} problem lines)  "
          f"time: {result.seconds:.1f} s ({rate:,.0f} lines/s)", file=report)
    if result.problems:
        print("problems:", file=sys.stderr)
        for p in result.problems[:MAX_PRINTED_PROBLEMS]:
            print(f"  line {p['line']}: {p['problem']}", file=sys.stderr)
        if result.n_problems > MAX_PRINTED_PROBLEMS:
            print(f"  ... and {result.n_problems - MAX_PRINTED_PROBLEMS:,} more (stored with the run)", file=sys.stderr)
    print(summary.to_text(), file=report)
    if args.out and not to_stdout:
        print(f"results: {args.out}", file=report)
    if result.n_graded == 0:
        print("error: nothing could be graded (fix: check the ids exist in this --db and the lines are "
              "{\"id\": ..., \"action\": {...}})", file=sys.stderr)
        return 1
    return 0
