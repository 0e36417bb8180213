"""Runs page, failure list and compare at scale: a run of 1.2 M predictions, timed, figures printed.

    .venv/bin/python bench/bench_runs.py [--source /work/bench-data/full.db] [--work DIR] [--n 1200000]
                                         [--second-run] [--apptest] [--keep]
    .venv/bin/python bench/bench_runs.py --reuse --work DIR [--apptest]   # time again on a kept database

Database: when `--source` (default `/work/bench-data/full.db`) exists it is copied (SQLite backup API, a
consistent snapshot) into `--work` and one prediction is generated for each of its decision points (up to
`--n`); otherwise a database of its own is generated with `--n` synthetic predictions whose ids are not in
any conversation (printed as "GENERATED DB": then every call of another tool counts as hallucinated,
there being no tool list to look in).

Predictions are generated, not graded (grading 1.2 M turns is `bench_grade.py`'s business): breakdowns in
the stored JSON form with a realistic mix of categories (exact calls, argument errors, wrong and made-up
tools, invalid JSON, wrong action types, message scores, runner errors), inserted with `insert_predictions`;
then `finish_run` computes and stores the taxonomy (timed). Each query the pages make is then timed cold
(first call after opening the database) and warm (median of 5). Target: runs page and failure list <= 1.5 s.
`--apptest` also times the page scripts themselves through Streamlit's AppTest (cold = empty caches).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nemo_core.runs import analysis as ra  # noqa: E402
from nemo_core.grading.grade import RULE_VERSION  # noqa: E402
from nemo_core.runs.run import create_run, get_run, insert_predictions
from nemo_core.runs.owner import finish_run  # noqa: E402
from nemo_core.data.store import Store  # noqa: E402
from nemo_core.runs.taxonomy import ensure_taxonomy, taxonomy_table  # noqa: E402

DEFAULT_SOURCE = Path("/work/bench-data/full.db")
TARGET = 1.5


def copy_db(source: Path, dest: Path) -> float:
    t = time.perf_counter()
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(str(dest))
    with dst:
        src.backup(dst, pages=65536)
    src.close()
    dst.close()
    return time.perf_counter() - t


def _key(name: str, status: str, e, s) -> dict:
    return {"key": name, "status": status, "expected": e, "submitted": s, "hint": None}


def breakdown_for(rng: random.Random, action_type: str, expected_tool: str | None, other_tool: str) -> tuple:
    """(reward, action_type_match, name_match, arg_match, reason, submitted_type, breakdown dict or None, error)."""
    r = rng.random()
    if r < 0.04:
        err = "request timed out after 60 s" if rng.random() < 0.6 else "APIStatusError: 503 from the server"
        return None, None, None, None, None, None, None, err
    base = {"grader_model": None, "rule_version": RULE_VERSION, "matched_call": 0, "notes": [],
            "expected_type": action_type, "schema_valid": None, "schema_errors": [], "keyword": None,
            "llm_score": None, "llm_reason": None, "llm_error": None, "llm_cached": None}
    if action_type == "function_call":
        exp = expected_tool or "tool"
        if r < 0.12:
            b = {**base, "reward": 0.0, "action_type_match": 0, "name_match": 0, "arg_match": 0.0, "grader": "rule",
                 "reason": "wrong_action_type", "keys": [], "submitted_type": "message", "expected_name": exp,
                 "submitted_name": None}
            return 0.0, 0, 0, 0.0, "wrong_action_type", "message", b, None
        keys = [_key("a", "match", 1, 1), _key("b", "match", "x", "x")]
        name, reason, invalid = exp, "exact_match", False
        if r < 0.60:
            pass
        elif r < 0.75:
            keys = [_key("a", "match", 1, 1), rng.choice([_key("b", "mismatch", "x", "y"), _key("b", "mismatch", 5, "5"),
                                                         _key("b", "missing", "x", None)]), _key("c", "extra", None, 2)]
            reason = "argument_mismatch: 1 of 3 keys match"
        elif r < 0.85:
            name, reason = other_tool, "wrong_name"
        elif r < 0.92:
            name, reason = f"made_up_{rng.randrange(50)}", "wrong_name"
        else:
            keys, reason, invalid = [_key("a", "missing", 1, None), _key("b", "missing", "x", None)], "invalid_arguments", True
        name_match = int(name == exp)
        matched = sum(k["status"] == "match" for k in keys)
        arg_match = 0.0 if invalid else matched / len(keys)
        reward = 0.5 * name_match + 0.5 * arg_match
        b = {**base, "reward": reward, "action_type_match": 1, "name_match": name_match, "arg_match": arg_match,
             "grader": "function_call", "reason": reason, "keys": keys, "submitted_type": "function_call",
             "expected_name": exp, "submitted_name": name}
        return reward, 1, name_match, arg_match, reason, "function_call", b, None
    if r < 0.10:
        b = {**base, "reward": 0.0, "action_type_match": 0, "name_match": None, "arg_match": None, "grader": "rule",
             "reason": "wrong_action_type", "keys": [], "submitted_type": "function_call", "expected_name": None,
             "submitted_name": other_tool}
        return 0.0, 0, None, None, "wrong_action_type", "function_call", b, None
    reward = round(rng.betavariate(2, 2) * 40) / 40
    b = {**base, "reward": reward, "action_type_match": 1, "name_match": None, "arg_match": None, "grader": "keyword",
         "reason": f"keyword F1 {reward:.3f}", "keys": [], "submitted_type": "message", "expected_name": None,
         "submitted_name": None}
    return reward, 1, None, None, b["reason"], "message", b, None


def generate_run(store: Store, name: str, targets: list[tuple], seed: int) -> tuple[int, float, float]:
    """Insert one prediction per target; returns (run id, seconds to insert, seconds of finish_run + taxonomy)."""
    rng = random.Random(seed)
    tools = [t[3] for t in targets[:50_000] if t[3]] or ["some_tool"]
    run_id = create_run(store, name, kind="run-model", grader="keyword", rule_version=RULE_VERSION, model="bench-model")
    t = time.perf_counter()
    batch = []
    for dp_id, split, action_type, expected_tool in targets:
        reward, atm, nm, am, reason, sub_type, b, err = breakdown_for(rng, action_type, expected_tool, rng.choice(tools))
        action = None if b is None else orjson.dumps({"type": sub_type}).decode()
        batch.append((run_id, dp_id, None, split, action_type, sub_type, action, None, reward, atm, nm, am,
                      None if b is None else b["grader"], None, reason, None if b is None else orjson.dumps(b).decode(),
                      err, round(rng.uniform(200, 4000), 1)))
        if len(batch) >= 50_000:
            insert_predictions(store, batch)
            batch = []
    insert_predictions(store, batch)
    inserted = time.perf_counter() - t
    t = time.perf_counter()
    finish_run(store, run_id)  # computes and stores the taxonomy (issue 7 hook)
    return run_id, inserted, time.perf_counter() - t


def timed(fn, repeat: int = 5) -> tuple[float, float]:
    t = time.perf_counter()
    fn()
    cold = time.perf_counter() - t
    warm = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t)
    return cold, statistics.median(warm)


def report_line(label: str, cold: float, warm: float) -> None:
    flag = "ok" if max(cold, warm) <= TARGET else "OVER TARGET"
    print(f"  {label:<58} cold {cold:7.3f} s   warm {warm:7.3f} s   {flag}")


def apptest_times(db: Path, run_name: str, other: str | None) -> None:
    """Each page script through AppTest: "cold" with Streamlit's caches emptied (a fresh server's first visit,
    the libraries already imported by one warm-up render of another page), "warm" the median of 3 more.
    AppTest's scan of every installed package for custom components (about 1 s, not the app's doing) is
    switched off, as in bench_pages.py."""
    import logging
    import os

    import streamlit as st
    from streamlit.components.v2 import component_manager
    from streamlit.testing.v1 import AppTest

    logging.disable(logging.WARNING)
    component_manager.BidiComponentManager.discover_and_register_components = lambda *a, **k: None
    os.environ["NEMO_DB"] = str(db)

    def render(page: str, query: dict[str, str], state: dict | None = None) -> tuple[float, Any]:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
        for k, v in query.items():
            at.query_params[k] = v
        for k, v in (state or {}).items():
            at.session_state[k] = v
        t = time.perf_counter()
        at.switch_page(page).run()
        return time.perf_counter() - t, at

    render("app_pages/overview.py", {})  # imports plotly, pandas, the pages' modules: server start-up, not a visit
    cases = [("runs page", "app_pages/runs.py", {"run": run_name}, None),
             ("failures page (defaults)", "app_pages/failures.py", {"run": run_name}, None),
             ("failures page (2 categories, reward 0.25-0.75)", "app_pages/failures.py", {"run": run_name},
              {"failures_categories": ["argument_errors", "wrong_tool"], "failures_reward": (0.25, 0.75)})]
    if other:
        cases.append(("compare page", "app_pages/compare.py", {"a": run_name, "b": other}, None))
    for label, page, query, state in cases:
        times = []
        for i in range(4):
            if i == 0:
                st.cache_data.clear()
            seconds, at = render(page, query, state)
            times.append(seconds)
            if at.exception:
                print(f"  {label}: exception {at.exception[0].value}")
                break
        report_line(f"AppTest {label}", times[0], statistics.median(times[1:]) if len(times) > 1 else times[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--work", type=Path, default=None, help="folder for the copy (default: a temporary folder)")
    ap.add_argument("--n", type=int, default=1_200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--second-run", action="store_true", help="a second run over the same decision points (compare)")
    ap.add_argument("--apptest", action="store_true", help="also time the page scripts through AppTest")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--reuse", action="store_true",
                    help="time the queries again on the database a --keep run left in --work (no generation)")
    args = ap.parse_args()
    if args.reuse:
        if args.work is None or not (args.work / "runs-bench.db").exists():
            ap.error("--reuse needs --work pointing at a folder kept by an earlier --keep run")
        db = args.work / "runs-bench.db"
        store = Store.open(db)
        run_id = store.scalar("SELECT id FROM runs WHERE name = 'bench-a'")
        other = "bench-b" if store.scalar("SELECT 1 FROM runs WHERE name = 'bench-b'") else None
        print(f"REUSED: {db} ({db.stat().st_size / 1e9:.2f} GB), run bench-a with "
              f"{store.scalar('SELECT count(*) FROM predictions WHERE run_id = ?', (run_id,)):,} predictions")
        for rid in [r["id"] for r in store.query("SELECT id FROM runs ORDER BY id")]:
            done = ensure_taxonomy(store, rid)  # a taxonomy stored under an older TAXONOMY_VERSION is redone
            if done is not None:
                print(f"  run {rid}: taxonomy recomputed (stored under an older version) in {done.seconds:.1f} s "
                      f"({done.n / max(done.seconds, 1e-9):,.0f} predictions/s)")
        store.close()
        measure(db, run_id, other, args.apptest)
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-runs-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "runs-bench.db"
    if db.exists():
        db.unlink()
    try:
        if args.source.exists():
            print(f"REAL DB: copy of {args.source} ({args.source.stat().st_size / 1e9:.2f} GB)")
            print(f"  copied in {copy_db(args.source, db):.1f} s")
            store = Store.open(db)
            targets = [tuple(r) for r in store.conn.execute(
                "SELECT id, split, action_type, expected_tool FROM decision_points ORDER BY rowid LIMIT ?", (args.n,))]
        else:
            print(f"GENERATED DB: {args.source} not found; {args.n:,} synthetic predictions on ids with no "
                  "conversation behind them")
            store = Store.open(db)
            rng = random.Random(args.seed)
            targets = []
            for i in range(args.n):
                split = "tool_calling" if rng.random() < 0.94 else "interactive_agent"
                kind = "function_call" if rng.random() < 0.5 else "message"
                targets.append((f"{split}/gen-{i:07d}/2", split, kind,
                                f"tool_{rng.randrange(2000)}" if kind == "function_call" else None))
        print(f"predictions per run: {len(targets):,}")
        run_id, ins, fin = generate_run(store, "bench-a", targets, args.seed)
        print(f"run bench-a: inserted in {ins:.1f} s; finish_run + taxonomy in {fin:.1f} s "
              f"({len(targets) / max(fin, 1e-9):,.0f} predictions/s)")
        other = None
        if args.second_run:
            other_id, ins, fin = generate_run(store, "bench-b", targets, args.seed + 1)
            print(f"run bench-b: inserted in {ins:.1f} s; finish_run + taxonomy in {fin:.1f} s")
            other = "bench-b"
        store.close()
        print(f"database size: {db.stat().st_size / 1e9:.2f} GB")
        measure(db, run_id, other, args.apptest)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept: {db}")
    return 0


def measure(db: Path, run_id: int, other: str | None, apptest: bool) -> None:
    """Time what the pages ask of the core (and, with `apptest`, the page scripts) on a prepared database."""
    # the first query on a freshly opened database is the cold one
    store = Store.open(db)
    tool = store.scalar(f"SELECT expected_tool FROM {taxonomy_table(run_id)} WHERE expected_tool IS NOT NULL "
                        "AND category = 'argument_errors' LIMIT 1")
    print("runs page (what the page calls; run-level aggregates are stored when the run finishes):")
    t = time.perf_counter()
    ra.run_details(store, run_id, use_cache=False)
    print(f"  {'run aggregates computed from scratch (done once, at finish_run)':<58} {time.perf_counter() - t:7.3f} s")
    cold, warm = timed(lambda: (ra.runs_table(store), ra.run_details(store, run_id)))
    report_line("RUNS PAGE: runs table + this run's stored aggregates", cold, warm)
    print("  for reference, each aggregate recomputed without the stored copy:")
    parts = {
        "taxonomy counts": lambda: ra.taxonomy_counts(store, run_id),
        "sub-kinds": lambda: ra.sub_kind_counts(store, run_id),
        "argument error totals": lambda: ra.argument_error_totals(store, run_id),
        "confusion (top 20 wrong / made-up tools)": lambda: ra.confusion(store, run_id, top=20),
        "reward histogram": lambda: ra.reward_histogram(store, run_id),
        "tool names": lambda: ra.tool_names(store, run_id),
    }
    for label, fn in parts.items():
        cold, warm = timed(fn, repeat=2)
        report_line("  " + label, cold, warm)
    print("failure list (core queries, count + one page of 50):")
    fl = {
        "every failure, page 1": (ra.FailureFilter(), 0),
        "every failure, page 2,000 (offset 99,950)": (ra.FailureFilter(), 99_950),
        "category argument_errors": (ra.FailureFilter(["argument_errors"]), 0),
        "category + split interactive_agent": (ra.FailureFilter(["wrong_action_type"], "interactive_agent"), 0),
        f"expected tool {tool!r}": (ra.FailureFilter(expected_tool=tool), 0),
        "reward range 0.25-0.75": (ra.FailureFilter(reward_min=0.25, reward_max=0.75), 0),
        "all filters together": (ra.FailureFilter(["argument_errors"], "tool_calling", tool, None, 0.5, 0.9), 0),
    }
    for label, spec in fl.items():
        flt, offset = spec
        cold, warm = timed(lambda: ra.failures(store, run_id, flt, offset=offset, limit=50))
        report_line(label, cold, warm)
    if other:
        print("compare (not in the 1.5 s target; cached per runs signature on the page):")
        cold, warm = timed(lambda: ra.compare_runs(store, "bench-a", other), repeat=2)
        report_line("compare two runs of this size", cold, warm)
    store.close()
    if apptest:
        print("page scripts through AppTest (cold = Streamlit caches emptied):")
        apptest_times(db, "bench-a", other)
    if other:
        store = Store.open(db)
        n = store.scalar("SELECT count(*) FROM predictions WHERE run_id = (SELECT id FROM runs WHERE name = ?)", (other,))
        t = time.perf_counter()
        ra.delete_run_with_analysis(store, get_run(store, other).id)
        print(f"delete run {other} ({n:,} predictions, its taxonomy and stored aggregates): "
              f"{time.perf_counter() - t:.1f} s")
        store.close()


if __name__ == "__main__":
    raise SystemExit(main())
