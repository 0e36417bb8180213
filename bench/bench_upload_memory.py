"""Memory of an upload on the Runs page: RSS before, at its peak and after validating and grading a big file.

The page gets the upload as a file object holding the bytes (Streamlit keeps uploads in memory), checks it
(`validate_predictions`) and, on submit, grades it (`grade_upload`). This does the same in a fresh process,
on a copy of a database, with a file of `--mb` megabytes of prediction lines for its decision points (each id
many times, as a file from another run or a repeated export would be: every line is read, parsed and checked),
and prints VmRSS before the upload arrives, with it in memory, the peak (VmHWM) and after.

    python bench/bench_upload_memory.py --db data/demo.db --mb 100

Not a test: it prints numbers for the commit message and the issue.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import shutil
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nemo_core.runs.uploads as uploads  # noqa: E402
from nemo_core.data.store import Store  # noqa: E402
from nemo_core.runs.uploads import grade_upload, validate_predictions  # noqa: E402

STREAMED = hasattr(uploads, "iter_lines")  # False on code from before uploads were streamed: run that as its page did


def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":")
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def make_upload(store: Store, megabytes: int) -> bytes:
    rows = store.query("SELECT id, action_type, expected_tool FROM decision_points ORDER BY id")
    lines = []
    for r in rows:
        if r["action_type"] == "function_call":
            action = {"type": "function_call", "name": r["expected_tool"] or "f", "arguments": {"q": "x" * 40}}
        else:
            action = {"type": "message", "content": "A reply of some length, as a model would give. " * 3}
        lines.append(json.dumps({"id": r["id"], "action": action, "model": "bench", "latency_ms": 812}).encode())
    block = b"\n".join(lines) + b"\n"
    return block * (megabytes * 1_000_000 // len(block) + 1)


def main() -> None:
    # the app's server runs threads, so `grade_file` grades in this process, as it does on the page
    threading.Thread(target=threading.Event().wait, daemon=True).start()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--predictions", type=Path, help="upload this file instead of one made up (--mb is ignored)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "upload.db"
        shutil.copy(args.db, db)
        store = Store.open(db)
        gc.collect()
        before, _ = rss_mb()
        upload = io.BytesIO(args.predictions.read_bytes() if args.predictions else make_upload(store, args.mb))
        size = len(upload.getbuffer()) / 1e6
        with_file, _ = rss_mb()
        data = upload if STREAMED else upload.getvalue()  # the page before: `uploaded.getvalue()`
        check = validate_predictions(store, data)
        after_check, _ = rss_mb()
        result, _ = grade_upload(store, data, run_name="bench-upload", filename="bench.jsonl", grader="keyword")
        del data
        del check
        gc.collect()
        after, peak = rss_mb()
        store.close()
    print(f"upload {size:.0f} MB, {result.n_lines:,} lines ({result.n_graded:,} graded, {result.n_problems:,} problems)")
    print(f"RSS before {before:.0f} MB; with the upload held {with_file:.0f} MB; after the check {after_check:.0f} MB; "
          f"peak {peak:.0f} MB; after grading {after:.0f} MB")


if __name__ == "__main__":
    main()
