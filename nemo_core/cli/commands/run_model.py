from __future__ import annotations

import json
from pathlib import Path
import statistics
import sys
from datetime import datetime, timezone

HELP = """Run a model over a selection of decision points, grade each answer, and store the run.

The model is asked through any OpenAI-compatible endpoint (--base-url, else $OPENAI_BASE_URL, else OpenAI;
key from $OPENAI_API_KEY; a local server may need none) with exactly the request the decision point page
shows: the context, the task's tools plus submit_message, tool_choice="required" (a server that refuses
that is asked with "auto"). Each answer is graded like `grade` grades a prediction file and stored in the
same tables (a run of kind run-model). Timeouts, rate limits, server errors, a context too long: stored as a
failed prediction with its error, and the run goes on.

Resumable: re-run with the same --run (and the same selection options) and the ids already done are
skipped; those that failed for a passing reason (timeout, 429, 5xx, connection) are asked again.

With --write-batch FILE nothing is sent: the same requests are written as OpenAI Batch API input lines
(custom_id = decision point id), split into files of at most 50,000 requests and 200 MB. Upload them to the
Batch API yourself; grade its output file with `python -m nemo_core grade OUTPUT.jsonl`.

Baselines: --model baseline:NAME runs an offline policy instead of a model (always-message, first-tool,
keyword-router, copy-last-call; see nemo_core/runs/policies.py): nothing is sent anywhere, and the same
--seed gives the same answers. Its messages are graded by keywords unless --grader llm is given.

examples:
  python -m nemo_core run-model --model baseline:keyword-router --run baseline-keyword-router
  python -m nemo_core run-model --model gpt-5-mini --split tool_calling --limit 200 --sample-seed 1 --run mini-200
  python -m nemo_core run-model --model gpt-5-mini --write-batch batch.jsonl
  python -m nemo_core run-model --model my-model --base-url http://127.0.0.1:8000/v1 --limit 50 --dry-run
"""


def register(sub) -> None:
    from ..options import HelpFormatter, add_db_option
    from ...base.config import ACTION_TYPES, SPLITS

    p = sub.add_parser("run-model", help="ask a model at many decision points, grade and store the run",
                       description=HELP, formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, metavar="M",
                   help="model name sent to the endpoint, or baseline:NAME for an offline baseline policy")
    p.add_argument("--base-url", metavar="URL", help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL, else OpenAI)")
    add_db_option(p)
    p.add_argument("--split", choices=SPLITS, help="only this split")
    p.add_argument("--action-type", choices=ACTION_TYPES, help="only decision points expecting this action type")
    p.add_argument("--limit", type=int, metavar="N", help="at most N decision points")
    p.add_argument("--sample-seed", type=int, metavar="S",
                   help="a seeded random sample (of --limit N) instead of the first ones in store order")
    p.add_argument("--concurrency", type=int, default=4, metavar="C", help="requests in flight at once (default 4)")
    p.add_argument("--run", dest="run_name", metavar="NAME",
                   help="name of the stored run; an existing run-model run of this name is resumed "
                        "(default: run-model-<model>-<time>)")
    p.add_argument("--include-reasoning", action="store_true",
                   help="send earlier assistant reasoning_content in the context (left out by default)")
    p.add_argument("--dry-run", action="store_true", help="print the first request and send nothing")
    p.add_argument("--write-batch", type=Path, metavar="FILE",
                   help="send nothing: write the requests as OpenAI Batch API input file(s) (FILE, or FILE-001, "
                        "FILE-002, ... when over 50,000 requests or 200 MB)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="per request (default 60)")
    p.add_argument("--grader", choices=("auto", "keyword", "llm"), default="auto",
                   help="grader for message tasks (default auto: llm when OPENAI_API_KEY is set, else keyword)")
    p.add_argument("--grader-model", metavar="M", help="LLM grader model (default $NEMO_GRADER_MODEL or gpt-5-mini)")
    p.add_argument("--seed", type=int, metavar="S",
                   help="seed of a baseline policy's random choices (default 0); only with --model baseline:NAME")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _check_options(args, baseline: bool) -> None:
    """The options' one-line errors, before anything is opened or sent."""
    from ...base.errors import InputFileError

    if args.concurrency < 1:
        raise InputFileError("--concurrency must be at least 1", "for example --concurrency 4")
    if args.limit is not None and args.limit < 1:
        raise InputFileError("--limit must be at least 1", "for example --limit 100")
    if baseline and args.base_url:
        raise InputFileError(f"--base-url is for a model at an endpoint; {args.model} runs here, offline",
                             "leave out --base-url")
    if baseline and args.write_batch is not None:
        raise InputFileError(f"--write-batch writes requests for a model at an endpoint; {args.model} runs here, "
                             "offline", "leave out --write-batch")
    if args.seed is not None and not baseline:
        raise InputFileError("--seed is for a baseline policy (--model baseline:NAME)", "leave out --seed")


def run(args) -> int:
    from ..options import resolve_db
    from ...data.filters import DecisionPointFilter
    from ...grading.grade import resolve_grader
    from ...grading.endpoint import EndpointConfig
    from ...grading.llm_grader import LLMGrader
    from ...runs.model_runner import ModelRequest, run_model, select_ids
    from ...runs.policies import is_baseline
    from ...runs.policy_runner import describe, runner_for
    from ...runs.run import summarise_run
    from ...data.store import Store

    baseline = is_baseline(args.model)
    _check_options(args, baseline)
    config = EndpointConfig.for_model(args.model, base_url=args.base_url, timeout=args.timeout)
    request = ModelRequest(include_reasoning=args.include_reasoning)
    if args.write_batch is not None:
        return _write_batch(args, runner_for(config, request, check=False))
    seed = args.seed if args.seed is not None else 0
    with Store.open(resolve_db(args.db)) as store:
        flt = DecisionPointFilter(split=args.split, action_type=args.action_type)
        ids = select_ids(store, flt, limit=args.limit, sample_seed=args.sample_seed)
        if not ids:
            print("error: no decision point matches this selection (fix: check --split / --action-type and "
                  "`python -m nemo_core stats`)", file=sys.stderr)
            return 1
        if args.dry_run:
            runner = runner_for(config, request, seed=seed, check=False)
            body = runner.request_body(store.get(ids[0]))
            print(f"dry run: {len(ids):,} decision points selected; the request for the first, {ids[0]}, "
                  f"is below; nothing was sent", file=sys.stderr)
            print(json.dumps(body, indent=2, ensure_ascii=False))
            return 0
        runner = runner_for(config, request, seed=seed)
        grader_config = EndpointConfig.for_grader(model=args.grader_model, timeout=args.timeout)
        # a baseline stays offline unless --grader llm is asked for: auto means keyword for it
        chosen = "keyword" if baseline and args.grader == "auto" else resolve_grader(args.grader, grader_config)
        llm = LLMGrader(grader_config, store) if chosen == "llm" else None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        name = args.run_name or f"run-model-{args.model}-{stamp}"
        settings = {"split": args.split, "action_type": args.action_type, "limit": args.limit,
                    "sample_seed": args.sample_seed, "concurrency": args.concurrency,
                    "include_reasoning": args.include_reasoning, "timeout": args.timeout, **describe(runner)}
        if baseline:
            check_same_seed(store, name, seed)
        try:
            result = run_model(store, runner, ids, run_name=name, grader=chosen, llm=llm,
                               concurrency=args.concurrency, progress=not args.quiet, settings=settings)
        except KeyboardInterrupt:
            print(f"interrupted: answers so far are stored; resume with --run {name}", file=sys.stderr)
            return 130
        summary = summarise_run(store, result.run_id)
    verb = "resumed" if result.resumed else "stored"
    print(f"run {result.run_name!r} (id {result.run_id}) {verb} in {store.path}: model {args.model}, grader {chosen}")
    print(f"selected: {result.n_selected:,}  already done: {result.n_skipped:,}  asked now: {result.n_answered:,}  "
          f"graded: {result.n_graded:,}  failed: {result.n_failed:,}  time: {result.seconds:.1f} s")
    if result.error_kinds:
        print("errors: " + ", ".join(f"{k} {v:,}" for k, v in sorted(result.error_kinds.items(), key=lambda kv: -kv[1]))
              + "  (malformed_arguments and unknown_tool are graded; the others are not)")
    if result.latencies_ms:
        lat = sorted(result.latencies_ms)
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        print(f"latency: median {statistics.median(lat):,.0f} ms, p95 {p95:,.0f} ms  tokens: "
              f"{result.prompt_tokens:,} prompt, {result.completion_tokens:,} completion")
    print(summary.to_text())
    if result.n_failed and any(k in ("timeout", "rate_limited", "server_error", "connection") for k in result.error_kinds):
        print(f"some answers failed for a passing reason: re-run with --run {result.run_name} to ask again", file=sys.stderr)
    return 0


def _write_batch(args, runner) -> int:
    """`--write-batch`: the selection's requests as Batch API input files (`batch_requests.py`)."""
    from ..options import check_output_path, progress_bar, resolve_db
    from ...data.dp_stream import Selection, count
    from ...data.filters import DecisionPointFilter
    from ...data.store import Store
    from ...runs.batch_requests import write_batch

    check_output_path(args.write_batch, "--write-batch")
    flt = DecisionPointFilter(split=args.split, action_type=args.action_type)
    sampled = args.sample_seed is not None and args.limit is not None
    selection = Selection(flt, sample=args.limit if sampled else None, seed=args.sample_seed if sampled else None)
    limit = None if sampled or args.sample_seed is not None else args.limit
    with Store.open(resolve_db(args.db), readonly=True) as store:
        total = count(store, selection) if limit is None else min(limit, count(store, selection))
        if total == 0:
            print("error: no decision point matches this selection (fix: check --split / --action-type and "
                  "`python -m nemo_core stats`)", file=sys.stderr)
            return 1
        with progress_bar(total, unit="request", desc="write batch", quiet=args.quiet) as bar:
            files = write_batch(store, runner, selection, args.write_batch, limit=limit,
                                on_progress=bar.update if bar is not None else None)
    print(f"{files.n_requests:,} requests for {args.model} written ({files.bytes / 1e6:,.1f} MB) to "
          + ", ".join(str(p) for p in files.paths))
    print("next: upload each file to the OpenAI Batch API (purpose \"batch\", endpoint /v1/chat/completions), "
          "then grade the output file: python -m nemo_core grade OUTPUT.jsonl --run NAME")
    return 0
def check_same_seed(store, name: str, seed: int) -> None:
    """A baseline run is resumed only with the seed it was started with (else its answers would mix two)."""
    from ...runs.run import RunError

    rows = store.query("SELECT settings FROM runs WHERE name = ?", (name,))
    if not rows or not rows[0]["settings"]:
        return
    stored = json.loads(rows[0]["settings"]).get("seed")
    if stored is not None and stored != seed:
        raise RunError(f"run {name!r} was made with --seed {stored}, not {seed}",
                       f"resume it with --seed {stored}, or choose another --run name")
