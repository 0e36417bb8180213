"""Time each page's render on a database (timed AppTest runs: the page script as the server runs it,
without the browser's drawing time).

    .venv/bin/python bench/bench_pages.py --db /work/bench-data/full.db [--repeat 5]

For every case it prints the cold time (Streamlit caches emptied first: a fresh server's first visit)
and the median / max of `--repeat` warm runs (a user moving around, the cached aggregates reused).
The target is <= 1.5 s per page at full scale (about 1.2 M decision points).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from nemo_core.store import Store  # noqa: E402

APP = str(REPO / "app.py")


def render(page: str, query: dict[str, str]) -> float:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    start = time.perf_counter()
    at.switch_page(page).run()
    elapsed = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"{page} {query}: {at.exception[0].value}")
    if at.error:
        raise RuntimeError(f"{page} {query}: {at.error[0].value}")
    return elapsed


def cases(store: Store) -> list[tuple[str, str, dict[str, str]]]:
    n = store.scalar("SELECT max(rowid) FROM decision_points") or 1
    first = store.scalar("SELECT id FROM decision_points ORDER BY rowid LIMIT 1")
    middle = store.scalar("SELECT id FROM decision_points WHERE rowid >= ? ORDER BY rowid LIMIT 1", (n // 2,))
    longest = store.scalar("SELECT id FROM decision_points ORDER BY context_chars DESC LIMIT 1")
    most_tools = store.scalar("SELECT id FROM decision_points ORDER BY n_tools DESC LIMIT 1")
    top_tool = store.scalar("SELECT expected_tool FROM decision_points WHERE expected_tool IS NOT NULL LIMIT 1")
    total = store.n_decision_points()
    last_page = str(max(1, -(-total // 50)))
    return [
        ("overview", "pages/overview.py", {}),
        ("browse: everything, page 1", "pages/browse.py", {}),
        ("browse: everything, last page", "pages/browse.py", {"page": last_page}),
        ("browse: split + action type", "pages/browse.py", {"split": "interactive_agent", "action_type": "message"}),
        ("browse: expected tool", "pages/browse.py", {"tool": top_tool or "x"}),
        ("browse: flag parallel", "pages/browse.py", {"flags": "parallel"}),
        ("browse: tools 5-10, turn >= 6", "pages/browse.py", {"min_tools": "5", "max_tools": "10", "min_turn": "6"}),
        ("browse: sort by context desc", "pages/browse.py", {"sort": "context_chars", "desc": "1"}),
        ("browse: full-text 'weather'", "pages/browse.py", {"text": "weather"}),
        ("decision point: first", "pages/decision_point.py", {"id": first}),
        ("decision point: middle + list filter", "pages/decision_point.py",
         {"id": middle, "split": middle.split("/")[0], "sort": "context_chars"}),
        ("decision point: longest context", "pages/decision_point.py", {"id": longest}),
        ("decision point: most tools", "pages/decision_point.py", {"id": most_tools}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, type=Path, help="the workbench database to render pages on")
    parser.add_argument("--repeat", type=int, default=5, help="warm runs per case (default 5)")
    args = parser.parse_args()
    if not args.db.exists():
        sys.exit(f"error: no database at {args.db}")
    os.environ["NEMO_DB"] = str(args.db)
    logging.disable(logging.WARNING)  # AppTest outside a server warns "missing ScriptRunContext" on every run
    store = Store.open(args.db)
    total = store.n_decision_points()
    todo = cases(store)
    print(f"database: {args.db} ({total:,} decision points, {args.db.stat().st_size / 1e9:.2f} GB)")

    render("pages/decision_point.py", {})  # imports (pandas, plotly) out of the way
    print(f"{'case':44} {'cold s':>8} {'warm median s':>14} {'warm max s':>11}")
    worst = 0.0
    for name, page, query in todo:
        st.cache_data.clear()
        st.cache_resource.clear()
        cold = render(page, query)
        warm = [render(page, query) for _ in range(args.repeat)]
        worst = max(worst, statistics.median(warm))
        print(f"{name:44} {cold:8.3f} {statistics.median(warm):14.3f} {max(warm):11.3f}", flush=True)
    print(f"worst warm median: {worst:.3f} s (target <= 1.5 s)")


if __name__ == "__main__":
    main()
