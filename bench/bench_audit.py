"""Benchmark the grader audit: LLM grading throughput against a local OpenAI-compatible server, the cost of a
cached pass, and the time of the agreement figures on a large table.

Prints figures; it is not a test. The fake server (`tests/fake_openai.py`) runs in its own process and waits
`--delay` seconds before each reply (a stand-in for the grader model's latency). Grading runs in-process on a
copy of the demo database (or `--db`), calibration set of `--limit` decision points (3 items each).

    python bench/bench_audit.py
    python bench/bench_audit.py --delay 0.5 --limit 60 --rows 200000
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def start_server(delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "fake_openai.py"), "--delay", str(delay)],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def main() -> None:
    from nemo_core.people.audit.scores import AuditRow
    from nemo_core.people.audit.agreement import agreement
    from nemo_core.people.audit.build import build_audit_set
    from nemo_core.people.audit.grading import estimate, grade_audit_set
    from nemo_core.base.config import DEMO_DB
    from nemo_core.data.demo import ensure_demo_db
    from nemo_core.grading.endpoint import EndpointConfig
    from nemo_core.grading.llm_grader import LLMGrader
    from nemo_core.data.store import Store

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, help="database to copy (default: the demo database)")
    parser.add_argument("--limit", type=int, default=40, help="decision points in the calibration set")
    parser.add_argument("--delay", type=float, default=0.2, help="simulated grader latency, seconds")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the synthetic agreement table")
    args = parser.parse_args()
    source = args.db or ensure_demo_db(DEMO_DB)
    proc, url = start_server(args.delay)
    print(f"database: {source}  decision points: {args.limit}  server delay: {args.delay:.2f} s  cores: {os.cpu_count()}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for concurrency in (1, 8, 16):
                db = Path(tmp) / f"bench-{concurrency}.db"
                shutil.copy(source, db)
                store = Store.open(db)
                try:
                    set_id = build_audit_set(store, "calibration", limit=args.limit).audit_set.id
                    grader = LLMGrader(EndpointConfig(api_key="sk-bench", base_url=url), store)
                    plan = estimate(store, set_id, grader.model)
                    started = time.perf_counter()
                    result = grade_audit_set(store, set_id, grader, concurrency=concurrency)
                    seconds = time.perf_counter() - started
                    print(f"FIGURE concurrency {concurrency:>2}: {plan.n_calls} estimated calls, {result.n_requests} "
                          f"made, {result.n_graded / seconds:6.1f} items/s ({seconds:.2f} s)")
                    if concurrency == 16:
                        twin = build_audit_set(store, "calibration", limit=args.limit, name="twin").audit_set.id
                        started = time.perf_counter()
                        again = grade_audit_set(store, twin, grader, concurrency=concurrency)
                        seconds = time.perf_counter() - started
                        print(f"FIGURE cached pass: {again.n_graded} items, {again.n_requests} requests, "
                              f"{seconds * 1000:.0f} ms")
                finally:
                    store.close()
    finally:
        proc.terminate()
        proc.wait(10)
    rng = random.Random(1)
    rows = []
    for i in range(args.rows):
        kw = rng.random()
        llm = min(10, max(0, round(10 * kw + rng.gauss(0, 2)))) / 10
        rows.append(AuditRow(i, f"s/u{i}/1", rng.choice(["tool_calling", "interactive_agent"]), "prediction", "",
                             rng.randint(1, 3000), 100, kw, llm, int(llm * 10)))
    started = time.perf_counter()
    figures = agreement(rows)
    seconds = time.perf_counter() - started
    print(f"FIGURE agreement over {args.rows:,} rows: {seconds:.2f} s (pearson {figures.pearson:.3f}, "
          f"kappa {figures.kappa:.3f}, best threshold {figures.best.threshold:.2f})")


if __name__ == "__main__":
    main()
