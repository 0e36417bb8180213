"""Benchmark `grade`: end to end with the keyword grader, and LLM-grading requests per second.

Prints figures; it is not a test. Two parts:

1. `grade` on a predictions file covering every decision point of a database, keyword grader, results
   written with --out, run stored. With `--db BIG.db` (for example a synthetic full-size database built by
   ingesting `synth.py` output) it grades that; without, it builds a small synthetic database and
   extrapolates to 1.2 M predictions — the printout says so.
   The predictions are realistic: most calls exact, some with a changed value, an extra or missing key, a
   wrong name or the wrong action type; messages are the reference, a cut or reworded reference, or
   unrelated text. `--shuffle` writes them in random order (worst case for the conversation cache).
2. `grade --grader llm` on message tasks against the fake OpenAI server (`tests/fake_openai.py`, in its own
   process) at --concurrency 1, 8 and 32: requests per second, with no server delay (client overhead) and
   with a simulated 50 ms model latency.

    python bench/bench_grade.py --db /tmp/big.db [--cli]
    python bench/bench_grade.py              # small synthetic database, extrapolated

`--cli` also runs the real command (`python -m nemo_core grade ... --out FILE`) in its own process on the
same predictions: wall time from start-up to the printed summary, and the CPU time of all its processes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nemo_core.runs.grade_file import grade_file  # noqa: E402
from nemo_core.runs.run import delete_run, get_run  # noqa: E402
from nemo_core.data.compression import decompress_json  # noqa: E402
from nemo_core.data.store import Store  # noqa: E402

FULL_SIZE = 1_200_000


def build_db(path: Path, conversations: int, seed: int = 7) -> None:
    from nemo_core.data.ingest import ingest
    from nemo_core.data.synth import interactive_agent_row, synth_uuid, tool_calling_row

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        tc, ia = Path(tmp) / "tool_calling_bench.jsonl", Path(tmp) / "interactive_agent_bench.jsonl"
        n_ia = max(1, conversations * 19 // 335)
        with tc.open("w") as f:
            for _ in range(conversations - n_ia):
                f.write(json.dumps(tool_calling_row(rng, synth_uuid(rng))) + "\n")
        with ia.open("w") as f:
            for _ in range(n_ia):
                f.write(json.dumps(interactive_agent_row(rng, synth_uuid(rng))) + "\n")
        store = Store.open(path)
        try:
            ingest(store, [tc, ia], with_fts=False)
        finally:
            store.close()


def _predict(rng: random.Random, msg: dict) -> dict:
    calls = msg.get("tool_calls") or []
    if calls:
        call = calls[0]
        fn = call.get("function") if isinstance(call.get("function"), dict) else call
        name, args = fn.get("name") or "x", fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = {}
        if not isinstance(args, dict):
            args = {}
        args = dict(args)
        r = rng.random()
        if r < 0.05:
            return {"type": "message", "content": "I can help with that."}
        if r < 0.10:
            name = name + "_v2"
        elif r < 0.25 and args:
            key = rng.choice(list(args))
            args[key] = str(args[key]) + "x"
        elif r < 0.32:
            args["note"] = "extra"
        elif r < 0.38 and args:
            args.pop(rng.choice(list(args)))
        if rng.random() < 0.3:  # half the real data has string arguments; models return strings too
            return {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}
        return {"type": "function_call", "name": name, "arguments": args}
    content = msg.get("content")
    text = content if isinstance(content, str) else json.dumps(content)
    r = rng.random()
    if r < 0.05:
        return {"type": "function_call", "name": "lookup", "arguments": {}}
    if r < 0.45:
        return {"type": "message", "content": text}
    if r < 0.75:
        words = text.split()
        return {"type": "message", "content": " ".join(words[: max(1, len(words) // 2)])}
    return {"type": "message", "content": "Thanks for reaching out, let me check the details and get back to you."}


def write_predictions(db: Path, out: Path, *, limit: int | None, shuffle: bool, seed: int = 11) -> int:
    rng = random.Random(seed)
    store = Store.open(db)
    lines: list[bytes] = []
    n = 0
    try:
        last = 0
        with out.open("wb") as f:
            while limit is None or n < limit:
                rows = store.conn.execute(
                    "SELECT id, split, uuid, body FROM conversations WHERE id > ? ORDER BY id LIMIT 2000", (last,)
                ).fetchall()
                if not rows:
                    break
                for conv_id, split, uuid, body in rows:
                    last = conv_id
                    messages = decompress_json(body)["messages"]
                    for i, msg in enumerate(messages):
                        if msg.get("role") != "assistant":
                            continue
                        line = json.dumps({"id": f"{split}/{uuid}/{i}", "action": _predict(rng, msg),
                                           "model": "bench-model", "latency_ms": rng.randint(200, 3000)}).encode() + b"\n"
                        if shuffle:
                            lines.append(line)
                        else:
                            f.write(line)
                        n += 1
                        if limit is not None and n >= limit:
                            break
                    if limit is not None and n >= limit:
                        break
            if shuffle:
                rng.shuffle(lines)
                f.writelines(lines)
    finally:
        store.close()
    return n


def bench_keyword(db: Path, work: Path, *, limit: int | None, shuffle: bool, extrapolate: bool,
                  worker_counts: tuple[int, ...] = (2,)) -> None:
    preds = work / "predictions.jsonl"
    t = time.perf_counter()
    n = write_predictions(db, preds, limit=limit, shuffle=shuffle)
    print(f"wrote {n:,} predictions ({preds.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t:.1f} s "
          f"[{'shuffled' if shuffle else 'in conversation order'}]")
    results = work / "results.jsonl"
    name = f"bench-keyword-{int(time.time())}"
    for workers in worker_counts:
        store = Store.open(db)
        load_before = os.getloadavg()
        cpu0, children0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        try:
            with results.open("wb") as out:  # what `grade --out` does, minus argument parsing and printing
                res = grade_file(store, preds, run_name=f"{name}-w{workers}", grader="keyword", out=out, workers=workers)
        finally:
            seconds = time.perf_counter() - t
            children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = time.process_time() - cpu0 + (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
            delete_run(store, get_run(store, f"{name}-w{workers}").id)  # keep the benchmark database reusable
            store.close()
        rate = n / seconds
        print(f"\n== grade, keyword grader, {workers} worker processes: {n:,} predictions end to end in {seconds:.1f} s "
              f"({rate:,.0f} predictions/s; results {results.stat().st_size / 1e6:,.0f} MB)")
        print(f"   graded {res.n_graded:,}, could not be graded {res.n_not_graded:,}; CPU time (this process + workers) "
              f"{cpu:.1f} s; load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print("   main process phases, wall: " + ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items()))
        print("   main process phases, CPU:  " + ", ".join(f"{k} {v:.1f} s" for k, v in res.cpu_timings.items()))
        if extrapolate:
            print(f"   EXTRAPOLATED (small database, linear): 1.2 M predictions would take about "
                  f"{FULL_SIZE / rate:.0f} s (target <= 60 s)")
        else:
            per_full = seconds * FULL_SIZE / n
            print(f"   target 1.2 M in <= 60 s: {'met' if per_full <= 60 else 'NOT met'} ({per_full:.0f} s per 1.2 M at this rate)")


def bench_cli(db: Path, work: Path, *, limit: int | None, shuffle: bool) -> None:
    """The real command in its own process, as a user runs it: start-up, grading, storing, the printed summary."""
    preds = work / "predictions.jsonl"
    if not preds.exists():
        n = write_predictions(db, preds, limit=limit, shuffle=shuffle)
        print(f"wrote {n:,} predictions ({preds.stat().st_size / 1e6:,.0f} MB)")
    name = f"bench-cli-{int(time.time())}"
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nemo_core", "grade", str(preds), "--db", str(db), "--run", name,
                           "--grader", "keyword", "--out", str(work / "results-cli.jsonl"), "--quiet"],
                          cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    store = Store.open(db)
    try:
        n_stored = store.scalar("SELECT n_predictions FROM runs WHERE name = ?", (name,)) or 0
        if n_stored or store.scalar("SELECT 1 FROM runs WHERE name = ?", (name,)):
            delete_run(store, get_run(store, name).id)
    finally:
        store.close()
    print(f"\n== `python -m nemo_core grade ... --grader keyword --out FILE` in its own process: exit {proc.returncode}, "
          f"{n_stored:,} predictions stored, {seconds:.1f} s wall, {cpu:.1f} s CPU (all its processes)")
    print("   " + "\n   ".join(proc.stdout.strip().splitlines()[:3]))
    if proc.returncode:
        print(proc.stderr[-2000:])


def bench_llm(db: Path, work: Path, n_requests: int) -> None:
    store = Store.open(db)
    try:
        ids = [r["id"] for r in store.query(
            "SELECT id FROM decision_points WHERE action_type = 'message' ORDER BY rowid LIMIT ?", (n_requests,))]
    finally:
        store.close()
    print(f"\n== LLM grading against the fake server (tests/fake_openai.py, own process), {len(ids)} message tasks a run")
    stamp = time.time_ns()  # candidates never seen before: the cache must not answer
    for delay in (0.0, 0.05):
        server = subprocess.Popen([sys.executable, str(REPO / "tests" / "fake_openai.py"), "--delay", str(delay)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            base_url = server.stdout.readline().strip()
            for concurrency in (1, 8, 32):
                preds = work / f"llm-{delay}-{concurrency}.jsonl"
                with preds.open("w") as f:  # a fresh candidate per run, so the cache never answers
                    for n, dp_id in enumerate(ids):
                        f.write(json.dumps({"id": dp_id, "action": {"type": "message",
                                                                    "content": f"candidate {stamp} {delay} {concurrency} {n}"}}) + "\n")
                name = f"bench-llm-{delay}-{concurrency}-{int(time.time())}"
                from nemo_core.grading.endpoint import EndpointConfig
                from nemo_core.grading.llm_grader import LLMGrader

                store = Store.open(db)
                try:
                    llm = LLMGrader(EndpointConfig(api_key="sk-bench-not-a-real-key", base_url=base_url,
                                                   model="bench-grader"), store)
                    t = time.perf_counter()
                    res = grade_file(store, preds, run_name=name, grader="llm", llm=llm, concurrency=concurrency)
                    seconds = time.perf_counter() - t
                    llm_graded = store.scalar("SELECT count(*) FROM predictions WHERE run_id = ? AND grader = 'llm'",
                                              (res.run_id,))
                    sent = llm.requests_sent
                    delete_run(store, res.run_id)
                finally:
                    store.close()
                print(f"   server delay {delay * 1000:3.0f} ms, --concurrency {concurrency:2d}: "
                      f"{sent / seconds:7.1f} requests/s ({sent} requests, {llm_graded}/{len(ids)} graded by the LLM "
                      f"in {seconds:.2f} s, load average {os.getloadavg()[0]:.1f})")
        finally:
            server.terminate()
            server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, help="a (big) database to grade against; written to, runs deleted after")
    parser.add_argument("--conversations", type=int, default=20_000, help="size of the database built without --db")
    parser.add_argument("--limit", type=int, help="grade at most this many predictions")
    parser.add_argument("--shuffle", action="store_true", help="predictions in random order")
    parser.add_argument("--llm-requests", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="worker process counts to try (0 = in-process)")
    parser.add_argument("--skip-keyword", action="store_true")
    parser.add_argument("--cli", action="store_true", help="also time the real `grade` command in its own process")
    parser.add_argument("--skip-llm", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        work = Path(tmp)
        db = args.db
        if db is None:
            db = work / "bench.db"
            t = time.perf_counter()
            build_db(db, args.conversations)
            print(f"built a synthetic database of {args.conversations:,} conversations in {time.perf_counter() - t:.0f} s")
        store = Store.open(db)
        print(f"database: {db} ({store.n_decision_points():,} decision points)")
        store.close()
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        if not args.skip_keyword:
            bench_keyword(db, work, limit=args.limit, shuffle=args.shuffle, extrapolate=args.db is None,
                          worker_counts=tuple(args.workers))
        if args.cli:
            bench_cli(db, work, limit=args.limit, shuffle=args.shuffle)
        if not args.skip_llm:
            bench_llm(db, work, args.llm_requests)


if __name__ == "__main__":
    main()
