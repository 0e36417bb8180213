"""Benchmark `export`: every format from a full-scale database, beside a parse-only pass of the raw files.

Prints figures; it is not a test. For each format the export runs in its own process (its peak RSS is its
own; the worker processes' peak is reported apart) on the database opened read-only, so the database is
never modified. In the same run, a parse-only pass (read + `orjson.loads` every line of the raw JSONL, the
floor `bench_ingest.py` measures ingest against) gives the yardstick: each export's wall time is printed as
a multiple of it, which says more than seconds on a machine other jobs are loading (the load average is
printed before and after each step). The README's target is each export ≤ 1.5× the ingest time (ingest
measured 4.9× parse-only, so ≤ 7.4× parse-only), peak RSS ≤ 500 MB. The main process's RSS is also printed
after each tenth of the export: flat from the first tenth to the last is what "constant memory" means.

    python bench/bench_export.py --db /work/bench-data/full.db --raw /work/bench-data/*.jsonl [--formats parquet jsonl]
        [--workers N] [--out-dir DIR] [--keep]

Each output file is deleted after it is measured (a full JSONL export is tens of GB) unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
FORMATS = ("parquet", "jsonl", "csv", "openai-ft", "nemo-gym")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def parse_only(paths: list[Path]) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds, lines and bytes for reading + `orjson.loads` of every line."""
    start, cpu = time.perf_counter(), time.process_time()
    n = size = 0
    for path in paths:
        with open(path, "rb") as fh:
            for line in fh:
                orjson.loads(line)
                n += 1
                size += len(line)
    return time.perf_counter() - start, time.process_time() - cpu, n, size


def run_export(db: Path, fmt: str, out: Path, workers: int | None) -> dict:
    """One export in a child process: wall time, CPU of it and its workers, peak RSS of each, what it wrote."""
    code = (
        "import json, resource, time\n"
        "from nemo_core.data.store import Store\n"
        "from nemo_core.data.dp_stream import Selection, count\n"
        "def rss_mb():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS:'):\n"
        "            return int(line.split()[1]) / 1024\n"
        "    return 0.0\n"
        "from nemo_core.runs.export import export\n"
        f"store = Store.open({str(db)!r}, readonly=True)\n"
        "total = count(store, Selection())\n"
        "seen, marks = 0, []\n"
        "def progress(n):\n"
        "    global seen\n"
        "    seen += n\n"
        "    while len(marks) < 10 and seen >= total * (len(marks) + 1) / 10:\n"
        "        marks.append(rss_mb())\n"
        "t = time.perf_counter()\n"
        f"r = export(store, Selection(), {fmt!r}, {str(out)!r}, workers={workers!r}, on_progress=progress)\n"
        "secs = time.perf_counter() - t\n"
        "me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'seconds': secs, 'written': r.n_written, 'skipped': dict(r.skipped), 'bytes': r.bytes,"
        " 'selected': r.n_selected, 'cpu_main': me.ru_utime + me.ru_stime, 'cpu_workers': kids.ru_utime + kids.ru_stime,"
        " 'rss_main_mb': me.ru_maxrss / 1024, 'rss_worker_mb': kids.ru_maxrss / 1024, 'rss_by_tenth': marks}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode:
        raise SystemExit(f"export {fmt} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, required=True, help="a full-scale database (opened read-only)")
    ap.add_argument("--raw", type=Path, nargs="+", required=True, help="the raw JSONL files it was ingested from")
    ap.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    ap.add_argument("--workers", type=int, default=None, help="export workers (default: the export's own choice)")
    ap.add_argument("--out-dir", type=Path, default=None, help="where outputs go (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the output files")
    args = ap.parse_args()

    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bench-export-"))
    print(f"cores: {os.cpu_count()}  load average before: {load()}")
    wall, cpu, n_lines, n_bytes = parse_only(args.raw)
    print(f"parse only: {wall:.1f} s wall, {cpu:.1f} s CPU, {n_lines:,} lines, {n_bytes / 1e9:.2f} GB "
          f"({n_bytes / 1e6 / wall:,.0f} MB/s)  load: {load()}")
    for fmt in args.formats:
        out = out_dir / f"export.{fmt}"
        r = run_export(args.db, fmt, out, args.workers)
        print(f"{fmt}: {r['seconds']:.1f} s wall = {r['seconds'] / wall:.2f}x parse-only; "
              f"{r['selected'] / r['seconds']:,.0f} decision points/s; CPU {r['cpu_main']:.1f} s main + "
              f"{r['cpu_workers']:.1f} s workers; peak RSS {r['rss_main_mb']:.0f} MB main, {r['rss_worker_mb']:.0f} MB "
              f"per worker; {r['written']:,} written ({r['bytes'] / 1e9:.2f} GB)"
              + (f", left out {r['skipped']}" if r["skipped"] else "") + f"  load: {load()}")
        print(f"  {fmt} main RSS after each tenth of the export (MB): "
              + " ".join(f"{x:.0f}" for x in r["rss_by_tenth"]))
        if not args.keep:
            out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
