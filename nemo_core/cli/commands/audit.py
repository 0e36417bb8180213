"""`audit`: how well the keyword grader agrees with the LLM grader on a run's message replies (or on the
built-in calibration candidates), as figures in the terminal. The Audit page shows the same, with charts."""

from __future__ import annotations

import json
import sys

HELP = """Grade message replies with both graders (keyword overlap and the LLM) and print how well they agree.

The audit set is the message predictions of a stored run (--run NAME), people's message answers in a human
baseline campaign (--campaign NAME), or built-in calibration candidates
that need no model (--calibration): for each message decision point, the reference itself (a ceiling), a
reply from another conversation (a floor) and the reference cut in half. --limit N takes the first N decision
points in a seeded order (a uniform sample; a larger N later extends the set).

Before any API call it prints how many calls grading will take (answers already in the LLM grader's cache are
free). LLM calls run concurrently; stop with Ctrl-C at any time: scored items are kept, and the same command
resumes where it stopped without paying for them again. An item whose LLM call failed is left unscored (never
a 0) and retried on the next run.

Key: OPENAI_API_KEY. Model: --model, else $NEMO_GRADER_MODEL, else gpt-5-mini. Endpoint: --base-url, else
$OPENAI_BASE_URL (any OpenAI-compatible server).

--json prints one object with the keys n (items scored by both graders), pearson, spearman, mae (mean
absolute difference on a 0-1 scale), kappa_at_0_5 (Cohen's kappa of pass/fail at 0.5), best_threshold
(the keyword threshold whose pass/fail agrees best with the LLM's at 0.5), and the details.

examples:
  python -m nemo_core audit --run my-model-v1 --limit 200
  python -m nemo_core audit --calibration --limit 50 --json
"""


def register(sub) -> None:
    from ..options import HelpFormatter, add_db_option

    p = sub.add_parser("audit", help="agreement of the keyword and LLM graders on message replies", description=HELP,
                       formatter_class=HelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", dest="run_name", metavar="NAME", help="audit the message predictions of this run")
    source.add_argument("--calibration", action="store_true",
                        help="audit built-in candidates (reference, another conversation's reply, half reference)")
    source.add_argument("--campaign", metavar="NAME", help="audit people's message answers in a human baseline campaign")
    add_db_option(p)
    p.add_argument("--limit", type=int, metavar="N", help="at most N decision points (seeded sample)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="seed of the sample and the floor replies (default 8)")
    p.add_argument("--set", dest="set_name", metavar="NAME", help="audit set name (default run:NAME or calibration)")
    p.add_argument("--split", choices=("tool_calling", "interactive_agent"), help="only this split")
    p.add_argument("--concurrency", type=int, default=8, metavar="N", help="parallel LLM requests (default 8)")
    p.add_argument("--base-url", metavar="URL", help="OpenAI-compatible endpoint for the LLM grader")
    p.add_argument("--model", metavar="M", help="LLM grader model (default $NEMO_GRADER_MODEL or gpt-5-mini)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="per LLM request (default 60)")
    p.add_argument("--dry-run", action="store_true", help="build the set and print the estimate; no API call")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def run(args) -> int:
    from ...people.audit.sets import DEFAULT_SEED
    from ...people.audit.agreement import agreement
    from ...people.audit.scores import audit_rows
    from ...people.audit.build import build_audit_set
    from ...people.audit.grading import estimate
    from ..options import resolve_db
    from ...base.errors import InputFileError
    from ...grading.endpoint import EndpointConfig
    from ...grading.llm_grader import LLMGrader, LLMNotConfigured
    from ...data.store import Store

    if args.limit is not None and args.limit < 1:
        raise InputFileError("--limit must be at least 1", "for example --limit 50")
    if args.concurrency < 1:
        raise InputFileError("--concurrency must be at least 1", "for example --concurrency 8")
    config = EndpointConfig.for_grader(model=args.model, base_url=args.base_url, timeout=args.timeout)
    if not config.configured and not args.dry_run:
        raise LLMNotConfigured("the audit compares the keyword grader with the LLM grader, and no OpenAI key is "
                               "configured", "set OPENAI_API_KEY (and OPENAI_BASE_URL for another endpoint), "
                               "or add --dry-run to build the set and see the estimate")
    seed = DEFAULT_SEED if args.seed is None else args.seed
    err = sys.stderr
    with Store.open(resolve_db(args.db)) as store:
        source = "calibration" if args.calibration else "campaign" if args.campaign else "run"
        built = build_audit_set(store, source, run=args.run_name, campaign=args.campaign, name=args.set_name,
                                limit=args.limit, seed=seed, split=args.split)
        audit_set = built.audit_set
        skipped = ", ".join(f"{n:,} {why}" for why, n in built.skipped.items() if n)
        print(f"audit set {audit_set.name!r} (id {audit_set.id}) in {store.path}: {built.n_items:,} items "
              f"({built.n_added:,} new)" + (f"; left out: {skipped}" if skipped else ""), file=err)
        plan = estimate(store, audit_set.id, config.model)
        print(f"estimate: {plan.to_text()}", file=err)
        if args.dry_run:
            if args.json:
                print(json.dumps({"set": audit_set.name, "estimate": plan.to_json()}, indent=2))
            return 0
        result = _grade(store, audit_set.id, LLMGrader(config, store), args, plan.n_to_grade)
        if result is None:
            return 130
        print(f"graded {result.n_graded:,} items ({result.n_cached:,} from the cache, {result.n_requests:,} API "
              f"requests) in {result.seconds:.1f} s; {result.n_failed:,} failed", file=err)
        for problem in result.errors[:5]:
            print(f"  LLM grader failed: {problem}", file=err)
        figures = agreement(audit_rows(store, audit_set.id), threshold=0.5)
    if args.json:
        print(json.dumps(_json(figures, audit_set.name, config.model), indent=2))
        return 0 if figures.n else 1
    _print_figures(figures, config.model)
    return 0 if figures.n else 1


def _grade(store, set_id: int, grader, args, n_to_grade: int):
    """The LLM grading with a progress bar; None when stopped with Ctrl-C (what was scored is kept)."""
    from ..options import progress_bar
    from ...people.audit.grading import grade_audit_set

    try:
        with progress_bar(n_to_grade, unit="item", desc="audit", quiet=args.quiet or not n_to_grade) as bar:

            def progress(done: int, total: int | None) -> None:
                if bar is not None:
                    bar.update(done - bar.n)

            return grade_audit_set(store, set_id, grader, concurrency=args.concurrency, on_progress=progress)
    except KeyboardInterrupt:  # the bar is closed by now, so the message starts a line of its own
        print("stopped: the items scored so far are kept; run the same command again to resume", file=sys.stderr)
        return None


def _json(figures, set_name: str, model: str) -> dict:
    data = figures.to_json()
    return {"n": figures.n, "pearson": figures.pearson, "spearman": figures.spearman, "mae": figures.mae,
            "kappa_at_0_5": figures.kappa,
            "best_threshold": None if figures.best is None else figures.best.threshold,
            "set": set_name, "llm_model": model, **{k: v for k, v in data.items() if k not in (
                "n", "pearson", "spearman", "mae", "kappa", "best_threshold", "threshold")}}


def _print_figures(figures, model: str) -> None:
    print(f"keyword vs LLM ({model}) on {figures.n:,} items scored by both"
          + (f" ({figures.n_llm_failed:,} LLM failures not counted)" if figures.n_llm_failed else ""))
    print(f"  pearson {_fmt(figures.pearson)}  spearman {_fmt(figures.spearman)}  mean |difference| {_fmt(figures.mae)}"
          f"  mean keyword {_fmt(figures.mean_keyword)}  mean LLM {_fmt(figures.mean_llm)}")
    c = figures.confusion
    print(f"  at 0.5: kappa {_fmt(figures.kappa)}  F1 {_fmt(figures.f1)}  (both pass {c.tp}, both fail {c.tn}, "
          f"keyword only {c.fp}, LLM only {c.fn})")
    if figures.best is not None:
        print(f"  best keyword threshold against the LLM at 0.5: {figures.best.threshold:.2f} "
              f"(kappa {_fmt(figures.best.kappa)}, F1 {_fmt(figures.best.f1)})")
    for title, groups in (("by split", figures.by_split), ("by candidate length", figures.by_length),
                          ("by kind", figures.by_kind)):
        print(f"{title}:")
        for g in groups:
            a = g.agreement
            print(f"  {g.group}: n {a.n:,}  pearson {_fmt(a.pearson)}  mae {_fmt(a.mae)}  kappa {_fmt(a.kappa)}  "
                  f"mean keyword {_fmt(a.mean_a)}  mean LLM {_fmt(a.mean_b)}")
    if figures.n_human:
        print(f"humans ({figures.n_human:,} items judged):")
        for h in figures.human:
            print(f"  human vs {h.b}: n {h.n:,}  pearson {_fmt(h.pearson)}  mae {_fmt(h.mae)}  kappa {_fmt(h.kappa)}")
