"""Browse at full scale (issue 17): count, page and the rendered Browse page for a grid of filters × sorts ×
directions × offsets, with the code before the Browse index and with today's code, side by side in one run.

    .venv/bin/python bench/bench_browse.py --before-db BEFORE.db --after-db AFTER.db [--repeat 3] [--no-apptest]
        [--before-rev REV] [--quick] [--out results.json]

Two copies of the same database (the Browse index adds a table, so the "before" side gets a pristine one).
The "before" code is `git archive REV` of this repository (default: the parent of the commit that added
the Browse index) unpacked into a temporary folder. Each side runs in a worker process of its own that
imports its own `nemo_core`; the driver sends both the same jobs, alternating which side goes first, so
the load other work puts on the machine falls on both alike (the load average is printed).

The grid: every filter the Browse page offers alone and in common pairs (split, action type, tool, flags,
number of tools, turn index, text with a rare, a common, a very common and a multi-word query) × every sort
× ascending / descending × offsets 0, 10%, 50%, 90% and the last page. Per filter: `count` (its own caches
emptied first; p50 and max of --repeat runs), then every page of the grid in turn, as the Browse page runs
them (count first, then the page); `first page cold` is a page with nothing cached at all (text filters:
no count before it). With AppTest, each cell is also rendered: the Browse page script with the cell's URL,
run once to warm up (the count is then cached, as for a user moving around), then --repeat runs timed.
Targets: page <= 50 ms, count <= 200 ms (text 300 ms), Browse page (AppTest, warm) <= 0.5 s.
Not a test: it prints figures for the README and the issue.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SORTS = ("id", "turn_index", "context_chars", "n_tools", "expected_tool")
OFFSETS = ("0", "10%", "50%", "90%", "last")
PAGE_SIZE = 50
TARGET_PAGE_MS, TARGET_COUNT_MS, TARGET_TEXT_COUNT_MS, TARGET_APP_S = 50.0, 200.0, 300.0, 0.5
SIDES = ["before", "after"]  # --after-only: today's code alone


# ---- the grid ------------------------------------------------------------------------------------------
def pick_words(db: Path) -> dict[str, str]:
    """A rare word (in ~0.02% of conversations), a common one (~50%), the most common, and a two-word query
    of common words: read from the FTS table's vocabulary."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, conversation_fts, row)")
        n = conn.execute("SELECT count(*) FROM conversations").fetchone()[0] or 1
        words = [(t, d) for t, d in conn.execute("SELECT term, doc FROM temp.vocab WHERE term GLOB '[a-z]*' "
                                                 "ORDER BY doc DESC")]
    finally:
        conn.close()

    def near(share: float) -> str:
        return min(words, key=lambda w: abs(w[1] / n - share))[0]

    common = near(0.5)
    second = next(t for t, d in words if t != common and d / n < 0.2)
    return {"rare": near(0.0002), "common": common, "very common": words[0][0], "multi-word": f"{common} {second}"}


def pick_tools(db: Path) -> tuple[str, str]:
    """The most expected tool and the least expected one."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT expected_tool, count(*) AS n FROM decision_points WHERE expected_tool IS NOT "
                            "NULL GROUP BY expected_tool ORDER BY n DESC").fetchall()
    finally:
        conn.close()
    return rows[0][0], rows[-1][0]


def filters(db: Path) -> list[tuple[str, dict[str, str]]]:
    words = pick_words(db)
    top_tool, rare_tool = pick_tools(db)
    text = {f"text {kind} '{word}'": {"text": word} for kind, word in words.items()}
    alone = {
        "everything": {},
        "split tool_calling": {"split": "tool_calling"},
        "split interactive_agent": {"split": "interactive_agent"},
        "action function_call": {"action_type": "function_call"},
        "action message": {"action_type": "message"},
        f"tool {top_tool}": {"tool": top_tool},
        f"tool {rare_tool} (rarest)": {"tool": rare_tool},
        "flag parallel": {"flags": "parallel"},
        "no flag parallel": {"exclude_flags": "parallel"},
        "flag no_task_tools": {"flags": "no_task_tools"},
        "tools >= 5": {"min_tools": "5"},
        "tools <= 3": {"max_tools": "3"},
        "turn >= 6": {"min_turn": "6"},
        "turn <= 3": {"max_turn": "3"},
        **text,
    }
    common = words["common"]
    pairs = {
        "split tool_calling + function_call": {"split": "tool_calling", "action_type": "function_call"},
        "split interactive_agent + message": {"split": "interactive_agent", "action_type": "message"},
        f"split tool_calling + tool {top_tool}": {"split": "tool_calling", "tool": top_tool},
        f"function_call + tool {top_tool}": {"action_type": "function_call", "tool": top_tool},
        "split tool_calling + no flag parallel": {"split": "tool_calling", "exclude_flags": "parallel"},
        "function_call + flag parallel": {"action_type": "function_call", "flags": "parallel"},
        "split tool_calling + tools 5-10": {"split": "tool_calling", "min_tools": "5", "max_tools": "10"},
        "message + turn >= 6": {"action_type": "message", "min_turn": "6"},
        f"split tool_calling + text '{common}'": {"split": "tool_calling", "text": common},
        f"message + text '{common}'": {"action_type": "message", "text": common},
        f"tool {top_tool} + text '{common}'": {"tool": top_tool, "text": common},
    }
    return [*alone.items(), *pairs.items()]


def offset_of(which: str, total: int) -> int:
    if which == "last":
        return max(0, (total - 1) // PAGE_SIZE * PAGE_SIZE)
    share = {"0": 0.0, "10%": 0.1, "50%": 0.5, "90%": 0.9}[which]
    return int(total * share) // PAGE_SIZE * PAGE_SIZE  # where a page of the Browse page starts


# ---- a worker: one side's code and database ----------------------------------------------------------
class Worker:
    """Runs jobs against one code tree and one database, in this process (see `serve`)."""

    def __init__(self, src: Path, db: Path):
        sys.path.insert(0, str(src))
        os.chdir(src)
        os.environ["NEMO_DB"] = str(db)
        try:
            from nemo_core.data.filters import DecisionPointFilter
            from nemo_core.data.store import Store
        except ImportError:
            from nemo_core.filters import DecisionPointFilter
            from nemo_core.store import Store
        self.src, self.Filter = src, DecisionPointFilter
        started = time.perf_counter()
        self.store = Store.open(db, create=False)
        self.opened_s = time.perf_counter() - started
        started = time.perf_counter()
        ready = getattr(self.store, "browse_index", None)
        self.has_index = ready is not None and ready() is not None
        self.index_s = time.perf_counter() - started
        self._app = None

    def forget(self) -> None:
        """Empty the Browse index's per-filter caches (none before it existed)."""
        index = getattr(self.store, "_browse", None)
        for name in ("_masks", "_orders", "_texts"):
            if index is not None:
                getattr(index, name).clear()

    def timed(self, call) -> tuple[float, Any]:
        """Wall ms of one call (and its CPU ms in `self.cpu_ms`: on a shared, overloaded machine the wall time
        mostly measures the wait for a core)."""
        started, cpu = time.perf_counter(), time.process_time()
        out = call()
        self.cpu_ms = (time.process_time() - cpu) * 1000
        return (time.perf_counter() - started) * 1000, out

    def job(self, query: dict[str, str], sorts: list[str], repeat: int, apptest: bool,
            app_repeat: int) -> dict[str, Any]:
        flt = self.Filter.from_query(query)
        counts, counts_cpu = [], []
        for _ in range(repeat):
            self.forget()
            ms, total = self.timed(lambda: self.store.count(flt))
            counts.append(ms)
            counts_cpu.append(self.cpu_ms)
        self.forget()
        cold_ms, _ = self.timed(lambda: self.store.page(flt, limit=PAGE_SIZE))
        self.forget()
        self.store.count(flt)
        cells = []
        for sort in sorts:
            for descending in (False, True):
                for which in OFFSETS:
                    offset = offset_of(which, total)
                    times, cpu, ids = [], [], None
                    for _ in range(repeat):
                        ms, rows = self.timed(lambda: self.store.page(flt, sort=sort, descending=descending,
                                                                      offset=offset, limit=PAGE_SIZE))
                        times.append(ms)
                        cpu.append(self.cpu_ms)
                        ids = [r["id"] for r in rows]
                    cell = {"sort": sort, "desc": descending, "offset": which, "page_ms": times, "page_cpu_ms": cpu,
                            "ids": ids}
                    if apptest:
                        self.app_cpu = []
                        cell["app_s"] = self.render(query, sort, descending, offset // PAGE_SIZE + 1, app_repeat)
                        cell["app_cpu_s"] = self.app_cpu
                    cells.append(cell)
        return {"total": total, "count_ms": counts, "count_cpu_ms": counts_cpu, "first_page_cold_ms": cold_ms,
                "cells": cells,
                "load": os.getloadavg()[0]}

    def render(self, query: dict[str, str], sort: str, descending: bool, page: int, repeat: int) -> list[float]:
        """The Browse page script at this URL: one warm-up run, then `repeat` timed runs (seconds)."""
        from streamlit.testing.v1 import AppTest

        url = {**query, **({"sort": sort} if sort != "id" else {}), **({"desc": "1"} if descending else {}),
               **({"page": str(page)} if page > 1 else {})}
        out = []
        for i in range(repeat + 1):
            at = AppTest.from_file(str(self.src / "app.py"), default_timeout=300)
            for k, v in url.items():
                at.query_params[k] = v
            started, cpu = time.perf_counter(), time.process_time()
            at.switch_page("app_pages/browse.py").run()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            problems = [e.value for e in at.exception] + [e.value for e in at.error] + [w.value for w in at.warning]
            if problems:
                raise RuntimeError(f"browse {url}: {problems[0]}")
            if i:
                out.append(elapsed)
                self.app_cpu.append(cpu)
        return out


def serve(src: Path, db: Path) -> None:
    """The worker's loop: one JSON job a line on stdin, one JSON answer a line on stdout."""
    logging.disable(logging.WARNING)  # AppTest outside a server warns "missing ScriptRunContext" each run
    try:
        from streamlit.components.v2 import component_manager

        component_manager.BidiComponentManager.discover_and_register_components = lambda *a, **k: None
    except ImportError:
        pass
    out = sys.stdout
    sys.stdout = sys.stderr  # anything the code prints must not mix with the answers
    worker = Worker(src, db)
    out.write(json.dumps({"opened_s": worker.opened_s, "index_s": worker.index_s, "has_index": worker.has_index,
                          "decision_points": worker.store.n_decision_points()}) + "\n")
    out.flush()
    for line in sys.stdin:
        job = json.loads(line)
        out.write(json.dumps(worker.job(job["query"], job["sorts"], job["repeat"], job["apptest"],
                                        job["app_repeat"])) + "\n")
        out.flush()


# ---- the driver ------------------------------------------------------------------------------------------
def before_tree(rev: str | None) -> tuple[str, Path]:
    """`git archive` of the code before the Browse index, unpacked into a temporary folder."""
    if rev is None:
        added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "nemo_core/browse_index.py",
                                "nemo_core/data/browse_index.py"], cwd=REPO, capture_output=True, text=True,
                               check=True).stdout.split()
        if not added:
            sys.exit("error: cannot find the commit that added the Browse index; pass --before-rev")
        rev = added[-1] + "^"
    rev = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    blob = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="bench-browse-before-"))
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(folder, filter="data")
    return rev, folder


def start(src: Path, db: Path) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(src), str(db)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=src)
    return proc, json.loads(proc.stdout.readline())


def ask(proc: subprocess.Popen, job: dict) -> dict:
    proc.stdin.write(json.dumps(job) + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"a worker stopped (exit code {proc.wait()}); see its error above")
    return json.loads(line)


def run_grid(workers: dict[str, subprocess.Popen], grid, sorts, repeat: dict[str, int], apptest: dict[str, bool],
             app_repeat: int, partial: Path | None = None) -> list[dict]:
    results = []
    for i, (name, query) in enumerate(grid):
        order = SIDES if i % 2 == 0 else SIDES[::-1]
        row = {"filter": name, "query": query}
        for side in order:
            row[side] = ask(workers[side], {"query": query, "sorts": sorts, "repeat": repeat[side],
                                            "apptest": apptest[side], "app_repeat": app_repeat})
        if partial is not None:  # a long run cut short still leaves every filter it finished
            with partial.open("a") as f:
                f.write(json.dumps(row) + "\n")
        if len(order) < 2:
            results.append(row)
            print_filter(row, any(apptest.values()))
            continue
        if row["before"]["total"] != row["after"]["total"]:
            raise RuntimeError(f"{name}: counts differ, before {row['before']['total']} after {row['after']['total']}")
        for a, b in zip(row["before"]["cells"], row["after"]["cells"]):
            if a["ids"] != b["ids"]:
                raise RuntimeError(f"{name} {a['sort']} desc={a['desc']} offset {a['offset']}: the pages differ")
        results.append(row)
        print_filter(row, apptest)
    return results


def fmt(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    return f"{statistics.median(values) * scale:.{digits}f} / {max(values) * scale:.{digits}f}"


def print_filter(row: dict, apptest: bool) -> None:
    parts = [f"{row['filter'][:46]:46} {row['after']['total']:>9,}"]
    for side in SIDES:
        r = row[side]
        pages = [ms for c in r["cells"] for ms in c["page_ms"]]
        parts.append(f"| {fmt(r['count_ms']):>15} {fmt(pages):>17}")
        if apptest:
            app = [s for c in r["cells"] for s in c.get("app_s", [])]
            parts.append(f"{fmt(app, digits=2) if app else '-':>13}")
    print(" ".join(parts) + " | " + " ".join(f"{row[side]['load']:.1f}" for side in SIDES), flush=True)


def header(apptest: bool) -> None:
    side = f"| {'count ms':>15} {'page ms':>17}" + (f" {'Browse s':>13}" if apptest else "")
    width = len(side)
    print(f"\n{'':46} {'':9} " + "".join(f"{f'| {s} (p50 / max)':{width}}" for s in SIDES) + "| load")
    print(f"{'filter':46} {'matches':>9} {side * len(SIDES)} | " + " / ".join(s[0] for s in SIDES))


def breakdown(results: list[dict], key: str, values: tuple[str, ...] | tuple[bool, ...]) -> None:
    """Page times by one dimension of the grid (offset, sort), both sides: p50 / max."""
    print(f"\npage ms by {key}: {'':14} " + " ".join(f"{f'{side} p50 / max':>20}" for side in SIDES))
    for value in values:
        row = [f"{str(value):>26}"]
        for side in SIDES:
            times = [ms for r in results for c in r[side]["cells"] if c[key] == value for ms in c["page_ms"]]
            row.append(f"{fmt(times):>20}" if times else f"{'-':>20}")
        print(" ".join(row))


def summary(results: list[dict], apptest: bool) -> dict[str, Any]:
    """The grid's figures per side: p50 and max over every cell, and the cells over target (judged by the
    cell's median run, and by its slowest run: on a loaded machine one run in many is stretched)."""
    out: dict[str, Any] = {}
    for side in SIDES:
        cells = [c for r in results for c in r[side]["cells"]]
        page_p50 = [statistics.median(c["page_ms"]) for c in cells]
        page_max = [max(c["page_ms"]) for c in cells]
        limit = {r["filter"]: TARGET_TEXT_COUNT_MS if "text" in r["query"] else TARGET_COUNT_MS for r in results}
        s = {
            "cells": len(cells),
            "page_ms_p50": statistics.median(page_p50),
            "page_ms_max": max(page_max),
            "pages_over_50ms": sum(1 for v in page_p50 if v > TARGET_PAGE_MS),
            "pages_over_50ms_slowest_run": sum(1 for v in page_max if v > TARGET_PAGE_MS),
            "count_ms_p50": statistics.median(statistics.median(r[side]["count_ms"]) for r in results),
            "count_ms_max": max(max(r[side]["count_ms"]) for r in results),
            "counts_over_target": [r["filter"] for r in results
                                   if statistics.median(r[side]["count_ms"]) > limit[r["filter"]]],
            "first_page_cold_ms_max": max(r[side]["first_page_cold_ms"] for r in results),
            "page_cpu_ms_p50": statistics.median(statistics.median(c["page_cpu_ms"]) for c in cells),
            "page_cpu_ms_max": max(max(c["page_cpu_ms"]) for c in cells),
            "count_cpu_ms_p50": statistics.median(statistics.median(r[side]["count_cpu_ms"]) for r in results),
            "count_cpu_ms_max": max(max(r[side]["count_cpu_ms"]) for r in results),
        }
        if apptest and all("app_s" in c for c in cells):
            app_p50 = [statistics.median(c["app_s"]) for c in cells]
            s.update(app_s_p50=statistics.median(app_p50), app_s_max=max(max(c["app_s"]) for c in cells),
                     app_over_target=sum(1 for v in app_p50 if v > TARGET_APP_S),
                     app_cpu_s_p50=statistics.median(statistics.median(c["app_cpu_s"]) for c in cells),
                     app_cpu_s_max=max(max(c["app_cpu_s"]) for c in cells))
        out[side] = s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-db", type=Path, help="a pristine copy of the database for the code before")
    parser.add_argument("--after-db", type=Path, help="a copy for today's code (it stores its Browse index there)")
    parser.add_argument("--before-rev", help="the code before (default: the parent of the commit that added the "
                        "Browse index)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per count and page (default 2)")
    parser.add_argument("--app-repeat", type=int, default=1, help="timed renders per cell after the warm-up one "
                        "(default 1)")
    parser.add_argument("--before-repeat", type=int, help="timed runs per count and page on the before side "
                        "(default: --repeat; its deep pages take seconds each at full scale)")
    parser.add_argument("--no-apptest", action="store_true", help="skip rendering the Browse page per cell")
    parser.add_argument("--apptest-before", action="store_true", help="render the Browse page per cell on the "
                        "before side too (default: after only; before, a deep page takes seconds per render)")
    parser.add_argument("--quick", action="store_true", help="a few filters and two sorts: a look, not the grid")
    parser.add_argument("--only", help="the filters whose name matches this regular expression")
    parser.add_argument("--sorts", help="comma-separated sorts (default: every sort)")
    parser.add_argument("--after-only", action="store_true", help="today's code alone (no before side; "
                        "--before-db is not needed)")
    parser.add_argument("--out", type=Path, help="also write every figure as JSON to this file")
    parser.add_argument("--worker", nargs=2, metavar=("SRC", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return serve(Path(args.worker[0]), Path(args.worker[1]))
    if args.after_only:
        SIDES[:] = ["after"]
        if not args.after_db:
            sys.exit("error: give --after-db")
    elif not (args.before_db and args.after_db) or args.before_db.resolve() == args.after_db.resolve():
        sys.exit("error: give --before-db and --after-db, two copies of the same database")
    rev, before_src = (None, None) if args.after_only else before_tree(args.before_rev)
    grid = filters(args.after_db if args.after_only else args.before_db)
    sorts = list(SORTS)
    if args.quick:
        grid, sorts = grid[:3] + [g for g in grid if "text" in g[1]][:2], ["id", "context_chars"]
    if args.only:
        grid = [g for g in grid if re.search(args.only, g[0])]
    if args.sorts:
        sorts = args.sorts.split(",")
    print(f"before: {rev} on {args.before_db}; after: {REPO} (working tree) on {args.after_db}")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    workers, info = {}, {}
    for side, src, db in (("before", before_src, args.before_db), ("after", REPO, args.after_db)):
        if side not in SIDES:
            continue
        workers[side], info[side] = start(src, db)
        print(f"{side}: {info[side]['decision_points']:,} decision points; opened in {info[side]['opened_s']:.2f} s"
              + (f"; Browse index ready in {info[side]['index_s']:.2f} s" if info[side]["has_index"] else ""))
    apptest = not args.no_apptest
    print(f"{len(grid)} filters × {len(sorts)} sorts × 2 directions × {len(OFFSETS)} offsets = "
          f"{len(grid) * len(sorts) * 2 * len(OFFSETS)} page cells per side, runs each: before "
          f"{args.before_repeat or args.repeat}, after {args.repeat}")
    header(apptest)
    started = time.perf_counter()
    try:
        partial = None
        if args.out:
            partial = args.out.with_suffix(".partial.jsonl")
            partial.write_text("")
        repeat = {"before": args.before_repeat or args.repeat, "after": args.repeat}
        results = run_grid(workers, grid, sorts, repeat, {"before": apptest and args.apptest_before,
                                                          "after": apptest}, args.app_repeat, partial)
    finally:
        for proc in workers.values():
            proc.stdin.close()
            proc.wait()
    totals = summary(results, apptest)
    breakdown(results, "offset", OFFSETS)
    breakdown(results, "sort", tuple(sorts))
    print(f"\nran {time.perf_counter() - started:.0f} s; load average at the end: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for side, s in totals.items():
        print(f"{side:6}: " + ", ".join(f"{k} {v if not isinstance(v, float) else round(v, 3)}" for k, v in s.items()))
    if args.out:
        args.out.write_text(json.dumps({"before_rev": rev, "info": info, "summary": totals, "results": results}))
        print(f"every figure written to {args.out}")


if __name__ == "__main__":
    main()
