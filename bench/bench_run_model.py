"""Benchmark `run-model`: decision points per second against a local OpenAI-compatible server.

Prints figures; it is not a test. The fake server (`tests/fake_openai.py`) runs in its own process and
waits `--delay` seconds before each reply (a stand-in for model latency); `run-model` runs in-process on a
copy of the demo database (or `--db`) at several --concurrency values, keyword grader, and the figures are
wall-clock decision points per second and the runner's own overhead per answer (delay 0).

    python bench/bench_run_model.py                 # demo database, 120 decision points
    python bench/bench_run_model.py --db big.db --limit 500
"""

from __future__ import annotations

import argparse
import os
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
    url = proc.stdout.readline().strip()
    return proc, url


def main() -> None:
    from nemo_core.cli.main import main as cli
    from nemo_core.base.config import DEMO_DB
    from nemo_core.data.demo import ensure_demo_db

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, help="database to copy (default: the demo database)")
    parser.add_argument("--limit", type=int, default=120)
    parser.add_argument("--delay", type=float, default=0.2, help="simulated model latency, seconds")
    args = parser.parse_args()
    source = args.db or ensure_demo_db(DEMO_DB)
    os.environ.pop("OPENAI_API_KEY", None)  # keyword grader: the figures are the runner's, not a grader's
    with tempfile.TemporaryDirectory() as tmp:
        print(f"database: {source}  decision points: {args.limit}  cores: {os.cpu_count()}")
        for delay, levels in ((0.0, (1, 8)), (args.delay, (1, 4, 16))):
            proc, url = start_server(delay)
            try:
                for concurrency in levels:
                    db = Path(tmp) / f"bench-{delay}-{concurrency}.db"
                    shutil.copy(source, db)
                    started = time.perf_counter()
                    code = cli(["run-model", "--model", "bench", "--base-url", url, "--db", str(db), "--quiet",
                                "--limit", str(args.limit), "--concurrency", str(concurrency), "--run", "bench"])
                    seconds = time.perf_counter() - started
                    assert code == 0
                    print(f"FIGURE server delay {delay:.2f} s, concurrency {concurrency:>2}: "
                          f"{args.limit / seconds:7.1f} decision points/s ({seconds * 1000 / args.limit:6.1f} ms each, "
                          f"wall clock)", flush=True)
            finally:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
