"""Ingest benchmark: synthetic data of the real shape, at a chosen scale; prints figures.

    python bench/bench_ingest.py --conversations 335122 --out /work/bench-data   # full scale
    python bench/bench_ingest.py --conversations 20000                            # a quick look

Measures, in one run:
- the floor: the same files only parsed (each line `orjson.loads`, nothing else);
- ingest throughput (MB/s, decision points/s) and its ratio to the floor;
- peak RSS of the ingest (the main process and, separately, the largest worker);
- database size / raw size;
- Browse's index (what the ingest command builds after the ingest): its time and size;
- at the end, queries on the database built: a filtered page of 50 at a deep offset (split + action
  type + tool name), a filtered count, a text search (count + first page).
Not a test: it prints numbers for the README and the issue notes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from nemo_core.data.synth import interactive_agent_row, synth_uuid, tool_calling_row  # noqa: E402

FULL_CONVERSATIONS = 335_122
IA_SHARE = 19_028 / 335_122


def generate(out: Path, conversations: int, seed: int) -> list[Path]:
    """Write tool_calling.jsonl and interactive_agent.jsonl with the real shape (cached by size+seed)."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / f"generated-{conversations}-{seed}.json"
    tc, ia = out / "tool_calling.jsonl", out / "interactive_agent.jsonl"
    if stamp.exists() and tc.exists() and ia.exists():
        return [tc, ia]
    from tqdm import tqdm

    rng = random.Random(seed)
    n_ia = round(conversations * IA_SHARE)
    msgs = tools = calls = 0
    with open(tc, "wb") as ftc, open(ia, "wb") as fia:
        for i in tqdm(range(conversations), desc="generate", unit="conv", mininterval=2):
            if i < n_ia:
                row = interactive_agent_row(rng, synth_uuid(rng), reasoning_chars=rng.choice([1500, 2500, 4000]))
                fh = fia
            else:
                row = tool_calling_row(rng, synth_uuid(rng), reasoning_chars=rng.choice([2500, 4200, 6000]))
                fh = ftc
            msgs += len(row["messages"])
            tools += len(row["tools"])
            calls += sum(len(m.get("tool_calls") or []) for m in row["messages"])
            fh.write(orjson.dumps(row) + b"\n")
    shape = {"conversations": conversations, "messages_per_conversation": msgs / conversations,
             "tools_per_conversation": tools / conversations, "calls_per_conversation": calls / conversations}
    stamp.write_text(json.dumps(shape))
    return [tc, ia]


def parse_only(paths: list[Path]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and lines for reading + `orjson.loads` of every line."""
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    for path in paths:
        with open(path, "rb") as fh:
            for line in fh:
                orjson.loads(line)
                n += 1
    return time.perf_counter() - start, time.process_time() - cpu, n


def run_ingest(paths: list[Path], db: Path, workers: int | None, no_fts: bool) -> dict:
    """Ingest in a child process so its peak RSS is its own."""
    code = (
        "import json, resource, sys, time\n"
        "from nemo_core.data.store import Store\n"
        "from nemo_core.data.ingest import ingest\n"
        f"paths = {[str(p) for p in paths]!r}\n"
        f"store = Store.open({str(db)!r})\n"
        "t = time.perf_counter()\n"
        f"r = ingest(store, paths, workers={workers!r}, with_fts={not no_fts!r})\n"
        "secs = time.perf_counter() - t\n"
        "me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "store.conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')\n"
        "size = store.path.stat().st_size\n"
        # what the ingest command does next: Browse's index, built once and stored (browse_index.py)
        "t, c = time.perf_counter(), time.process_time()\n"
        "store.browse_index()\n"
        "index_secs, index_cpu = time.perf_counter() - t, time.process_time() - c\n"
        "store.conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')\n"
        "index_mb = (store.path.stat().st_size - size) / 1e6\n"
        "store.close()\n"
        "print(json.dumps({'seconds': secs, 'rows': r.rows_read, 'stored': r.conversations_stored,"
        " 'index_seconds': index_secs, 'index_cpu': index_cpu, 'index_mb': index_mb,"
        " 'dps': sum(sum(v.values()) for v in r.decision_points_stored.values()),"
        " 'cpu_main': me.ru_utime + me.ru_stime, 'cpu_workers': kids.ru_utime + kids.ru_stime,"
        " 'rss_main_mb': me.ru_maxrss / 1024, 'rss_worker_mb': kids.ru_maxrss / 1024}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(fn, repeat: int = 5) -> float:
    """Median wall time in ms over `repeat` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def query_figures(db: Path) -> dict:
    from nemo_core.data.filters import DecisionPointFilter
    from nemo_core.data.store import Store

    store = Store.open(db)
    total = store.n_decision_points()
    tool = store.expected_tool_counts(limit=1)[0]["tool"]
    flt = DecisionPointFilter(split="tool_calling", action_type="function_call", tool=tool)
    n = store.count(flt)
    deep = max(0, n - 100)
    text = DecisionPointFilter(text="forecast Osaka")
    figures = {
        "decision_points": total,
        "filter": f"split=tool_calling, action_type=function_call, tool={tool} ({n:,} matches)",
        "page_50_deep_offset_ms": timed(lambda: store.page(flt, offset=deep, limit=50)),
        "page_50_deep_offset_sorted_by_context_ms": timed(lambda: store.page(flt, sort="context_chars", offset=deep, limit=50)),
        "filtered_count_ms": timed(lambda: store.count(flt)),
        "unfiltered_count_ms": timed(lambda: store.count()),
        "text_search_count_ms": timed(lambda: store.count(text)),
        "text_search_page_ms": timed(lambda: store.page(text, limit=50)),
        "text_search_matches": store.count(text),
        "text_search_one_word_in_15pct_of_conversations_page_ms": timed(lambda: store.page(DecisionPointFilter(text="QX7Y2"), limit=50)),
        "get_one_ms": timed(lambda: store.get(store.page(flt, offset=deep, limit=1)[0]["id"])),
    }
    store.close()
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conversations", type=int, default=20_000, help=f"how many (full scale: {FULL_CONVERSATIONS:,})")
    ap.add_argument("--out", type=Path, default=Path("bench/out"), help="folder for the generated files and the database")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=None, help="ingest worker processes (default: one per core)")
    ap.add_argument("--no-fts", action="store_true", help="ingest without the full-text index")
    ap.add_argument("--keep-db", action="store_true", help="reuse an existing database (skip the ingest)")
    args = ap.parse_args()

    paths = generate(args.out, args.conversations, args.seed)
    raw_bytes = sum(p.stat().st_size for p in paths)
    shape = json.loads((args.out / f"generated-{args.conversations}-{args.seed}.json").read_text())
    print(f"data: {args.conversations:,} conversations, {raw_bytes / 1e9:.2f} GB raw; per conversation "
          f"{shape['messages_per_conversation']:.1f} messages, {shape['tools_per_conversation']:.1f} tools, "
          f"{shape['calls_per_conversation']:.1f} calls")
    db = args.out / "full.db"
    if not (args.keep_db and db.exists()):
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        parse_secs, parse_cpu, n = parse_only(paths)
        print(f"parse only: {parse_secs:.1f} s wall, {parse_cpu:.1f} s CPU, {raw_bytes / 1e6 / parse_secs:.0f} MB/s ({n:,} lines)")
        result = run_ingest(paths, db, args.workers, args.no_fts)
        secs = result["seconds"]
        print(f"ingest: {secs:.1f} s, {raw_bytes / 1e6 / secs:.1f} MB/s, {result['dps'] / secs:,.0f} decision points/s, "
              f"{secs / parse_secs:.1f}x parse-only time")
        cpu_main, cpu_workers = result["cpu_main"], result["cpu_workers"]
        # Wall time is at the mercy of whatever else runs on the machine; CPU time is not. On an idle
        # machine with N cores the ingest cannot take less than max(main CPU, total CPU / N).
        cores = os.cpu_count() or 1
        bound = max(cpu_main, (cpu_main + cpu_workers) / cores)
        print(f"ingest CPU: main {cpu_main:.1f} s, workers {cpu_workers:.1f} s; idle-machine estimate "
              f"{bound:.1f} s = {bound / parse_cpu:.1f}x parse-only CPU time")
        print(f"peak RSS: main {result['rss_main_mb']:.0f} MB, largest worker {result['rss_worker_mb']:.0f} MB")
        print(f"Browse index (built and stored by the ingest command after the ingest): {result['index_seconds']:.1f} s "
              f"wall, {result['index_cpu']:.1f} s CPU, +{result['index_mb']:.0f} MB; ingest + index "
              f"{(secs + result['index_seconds']) / parse_secs:.1f}x parse-only time")
    db_bytes = sum(Path(str(db) + s).stat().st_size for s in ("", "-wal") if Path(str(db) + s).exists())
    print(f"database: {db_bytes / 1e9:.2f} GB = {db_bytes / raw_bytes:.2f} x raw")
    for key, value in query_figures(db).items():
        print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"(bench ran with {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
