"""Benchmark serve-env: episodes per second and episode latency, side by side with a trivial SDK environment.

Prints figures; it is not a test. For each number of workers (1, 2) it starts `python -m nemo_core serve-env`
on `--db` and, through the same supervisor and router (`nemo_core/environment/serve.py`), a trivial SDK
environment whose one tool returns a constant reward: the SDK's own floor on this machine. A load generator
in this process then runs episodes at each concurrency (1, 32, 256) for `--seconds` after a warm-up: an
episode is what the SDK client does for one rollout, as raw HTTP (POST /create_session, POST /create with a
random task, GET /messages, GET /task_tools, POST /call with one tool call, POST /delete, POST
/delete_session), so the client's own cost (far below the SDK client's) does not hide the servers'.

Reported per configuration: episodes/s, p50 / p99 episode latency, server CPU per episode (every server
process together), client CPU per episode, and after the runs each server process's RSS (and PSS, which
counts memory shared between the forked workers once); startup time (command start to the first answered
request). With `--record`, one more run at concurrency 32 records every submission into a copy of the
database (`--copy-dir`), to show what recording costs.

    python bench/bench_env.py --db /work/bench-data/full.db --seconds 10
    python bench/bench_env.py                      # the demo database, a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
os.environ["OPENREWARD_DISABLE_UPDATE_CHECK"] = "1"

TRIVIAL_TASKS = 1_000_000  # as in env_trivial.py


# ---- the trivial environment (served by this script with --serve-trivial) ------------------------------------
def serve_trivial(port: int, workers: int) -> int:
    from nemo_core.environment.sdk import load_server_sdk, set_sdk_environment

    set_sdk_environment("warning")
    load_server_sdk()
    from env_trivial import Trivial
    from openreward.environments import Server

    from nemo_core.environment.serve import Supervisor, Worker

    started = time.perf_counter()
    supervisor = Supervisor("127.0.0.1", port, workers, lambda: Worker(Server([Trivial]).app))
    supervisor.bind()
    return supervisor.run(lambda p: print(f"serving Trivial on http://127.0.0.1:{p} ({workers} workers; "
                                          f"ready in {time.perf_counter() - started:.1f} s)", flush=True))


# ---- the load generator ------------------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    path: str  # the environment's route prefix
    tasks: dict[str, int]  # split -> task count
    call: str  # "trivial" or "nemotron"
    pids: list[int] = field(default_factory=list)  # the server's processes (for their CPU time)


@dataclass
class Result:
    episodes: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # whole episodes
    requests: list[float] = field(default_factory=list)  # every HTTP request of the measured episodes
    calls: list[float] = field(default_factory=list)  # the tool call (the graded request) alone
    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    first_error: str | None = None


def _sse_final(text: str) -> dict:
    """The JSON carried by a tool call's SSE answer (its `chunk` and `end` events' data joined)."""
    data, event = [], None
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event in ("chunk", "end"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("data:") and event == "error":
            raise RuntimeError(line)
    return json.loads("".join(data))


async def one_episode(http, base: str, target: Target, rng: random.Random, n: int, times: list[float]) -> float:
    """One episode; appends each request's duration to `times`; returns the tool call's."""
    t = time.perf_counter()

    def lap() -> None:
        nonlocal t
        now = time.perf_counter()
        times.append(now - t)
        t = now

    async with http.post(f"{base}/create_session") as r:
        text = await r.text()
        sid = next(line[5:].strip() for line in text.splitlines() if line.startswith("data:"))
    lap()
    headers = {"X-Session-ID": sid}
    split = rng.choices(list(target.tasks), weights=list(target.tasks.values()))[0]
    index = rng.randrange(target.tasks[split])
    try:
        async with http.post(f"{base}/create", json={"split": split, "index": index, "env_name": target.path.strip("/")},
                             headers=headers) as r:
            assert r.status == 200, await r.text()
        lap()
        async with http.get(f"{base}{target.path}/messages", headers=headers) as r:
            assert r.status == 200, await r.text()
            await r.read()
        lap()
        async with http.get(f"{base}{target.path}/task_tools", headers=headers) as r:
            tools = (await r.json())["tools"]
        lap()
        if target.call == "trivial":
            call = {"name": "answer", "input": {"text": "2"}}
        else:  # half the episodes call a task tool (a function call graded), half reply (a message graded)
            task_tools = [t["name"] for t in tools if t["name"] != "submit_message"]
            call = ({"name": task_tools[0], "input": {}} if task_tools and n % 2 else
                    {"name": "submit_message", "input": {"message": "I can help with that: which city do you mean?"}})
        async with http.post(f"{base}{target.path}/call", json=call, headers=headers) as r:
            result = _sse_final(await r.text())
            assert result.get("ok") and result["output"]["finished"], result
        lap()
        call_seconds = times[-1]
    finally:
        async with http.post(f"{base}/delete", headers=headers) as r:
            await r.read()
        lap()
        async with http.post(f"{base}/delete_session", headers=headers) as r:
            await r.read()
        lap()
    return call_seconds


async def load(base: str, target: Target, concurrency: int, seconds: float, warmup: float, seed: int) -> Result:
    """`concurrency` sessions at a time, each starting the next episode when one ends, for `warmup` then
    `seconds`; the figures count the episodes that *ended* within the measured seconds (under a heavy load an
    episode can take longer than the whole window), and the CPU each side used meanwhile."""
    import aiohttp

    result = Result()
    rng = random.Random(seed)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as http:
        measuring_from = time.perf_counter() + warmup
        deadline = measuring_from + seconds
        counter = iter(range(10**9))

        async def worker() -> None:
            while True:
                start = time.perf_counter()
                times: list[float] = []
                try:
                    call_seconds = await one_episode(http, base, target, rng, next(counter), times)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    if measuring_from <= time.perf_counter() <= deadline:
                        result.errors += 1
                        result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"[:300]
                    continue
                end = time.perf_counter()
                if measuring_from <= end <= deadline:
                    result.episodes += 1
                    result.latencies.append(end - start)
                    result.requests.extend(times)
                    result.calls.append(call_seconds)

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(max(0.0, measuring_from - time.perf_counter()))
        cpu0 = (time.process_time(), server_cpu(target.pids))
        await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
        result.seconds = seconds
        result.client_cpu = time.process_time() - cpu0[0]
        result.server_cpu = server_cpu(target.pids) - cpu0[1]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result


# ---- process figures -------------------------------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            children = []
        todo.extend(int(c) for c in children)
    return out


def server_cpu(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def memory(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB."""
    rss = pss = 0.0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, pss


def wait_ready(base: str, timeout: float = 60.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{base} did not answer")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, help="database to serve (default: the demo database)")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per turn")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="turns of each server per configuration (medians)")
    parser.add_argument("--levels", default="1,32,256", help="concurrencies")
    parser.add_argument("--workers", default="1,2", help="worker counts")
    parser.add_argument("--record", action="store_true", help="also measure recording (on a copy of --db)")
    parser.add_argument("--copy-dir", type=Path, default=Path("/tmp"), help="where the copy for --record goes")
    parser.add_argument("--serve-trivial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_trivial:
        sys.exit(serve_trivial(args.port, args.n))
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the servers it started

    from env_server import EnvServer

    from nemo_core.base.config import DEMO_DB
    from nemo_core.data.demo import ensure_demo_db
    from nemo_core.data.store import Store

    db = args.db or ensure_demo_db(DEMO_DB)
    with Store.open(db, readonly=True) as store:
        counts = store.task_counts()
        n_dp = store.n_decision_points()
    levels = [int(x) for x in args.levels.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]
    print(f"database: {db} ({n_dp:,} decision points; tasks {counts}); cores: {os.cpu_count()}; "
          f"load average at start: {loadavg()}", flush=True)
    table: dict[tuple[str, int, int], list[Result]] = {}
    memory_rows: list[str] = []
    startups: list[str] = []

    def started(label: str, server: EnvServer, workers: int) -> None:
        ready = wait_ready(server.base_url)
        startups.append(f"{label:<9} workers {workers}: ready line after {server.ready_seconds:.2f} s, "
                        f"first answer {server.ready_seconds + ready:.2f} s after start")

    def run(label: str, server: EnvServer, target: Target, workers: int, c: int, round_no: int) -> None:
        target.pids = descendants(server.proc.pid)
        before = loadavg()
        r = asyncio.run(load(server.base_url, target, c, args.seconds, args.warmup, seed=c * 100 + round_no))
        table.setdefault((label, workers, c), []).append(r)
        print(f"FIGURE {label:<9} workers {workers} concurrency {c:>3} round {round_no}: "
              f"{r.episodes / r.seconds:7.1f} episodes/s  episode p50 {pct(r.latencies, 0.5):7.1f} ms  "
              f"p99 {pct(r.latencies, 0.99):7.1f} ms  request p50 {pct(r.requests, 0.5):6.1f} p99 "
              f"{pct(r.requests, 0.99):6.1f} ms  tool call p50 {pct(r.calls, 0.5):6.1f} p99 {pct(r.calls, 0.99):6.1f} ms  "
              f"server CPU {1000 * r.server_cpu / max(1, r.episodes):5.2f} ms/episode  "
              f"client CPU {1000 * r.client_cpu / max(1, r.episodes):5.2f} ms/episode  errors {r.errors}"
              f"{' (' + r.first_error + ')' if r.first_error else ''}  load {before} -> {loadavg()}", flush=True)

    def memory_of(label: str, server: EnvServer, workers: int) -> None:
        for pid in descendants(server.proc.pid):
            rss, pss = memory(pid)
            kind = "supervisor" if pid == server.proc.pid else "child"
            memory_rows.append(f"{label:<9} workers {workers}: {kind} {pid}: RSS {rss:6.1f} MB, PSS {pss:6.1f} MB")

    trivial_target = Target("trivial", "/trivial", {"train": TRIVIAL_TASKS}, "trivial")
    ours_target = Target("nemotron", "/nemotron-agentic", counts, "nemotron")
    for workers in worker_counts:
        # both servers up at once, measured in turns: a change in the machine's load hits both alike
        trivial = EnvServer(None, command=[sys.executable, str(Path(__file__).resolve()), "--serve-trivial",
                                           "--n", str(workers)])
        with trivial.start():
            started("trivial", trivial, workers)
            with EnvServer(db, workers=workers) as ours:
                started("nemotron", ours, workers)
                for c in levels:
                    for round_no in range(1, args.rounds + 1):
                        run("trivial", trivial, trivial_target, workers, c, round_no)
                        run("nemotron", ours, ours_target, workers, c, round_no)
                memory_of("nemotron", ours, workers)
            memory_of("trivial", trivial, workers)
        if args.record and workers == max(worker_counts):
            copy = args.copy_dir / f"bench-env-{os.getpid()}.db"
            t = time.perf_counter()
            shutil.copy(db, copy)
            print(f"copied {db} for --record in {time.perf_counter() - t:.1f} s", flush=True)
            try:
                with EnvServer(copy, workers=workers, record="bench") as rec:
                    started("recording", rec, workers)
                    for round_no in range(1, args.rounds + 1):
                        run("recording", rec, Target("recording", "/nemotron-agentic", counts, "nemotron"), workers, 32, round_no)
                    memory_of("recording", rec, workers)
                with Store.open(copy, readonly=True) as store:
                    print(f"recorded: {store.scalar('SELECT count(*) FROM predictions'):,} predictions in "
                          f"{store.scalar('SELECT count(*) FROM runs')} round run(s)", flush=True)
            finally:
                for p in args.copy_dir.glob(copy.name + "*"):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()

    def med(results: list[Result], fn) -> float:
        return statistics.median(fn(r) for r in results)

    print(f"\nmedians of {args.rounds} rounds (episodes/s; episode p50 / p99 ms; request p50 / p99 ms; server CPU ms "
          "per episode):")
    for workers in worker_counts:
        for c in levels:
            t, o = table.get(("trivial", workers, c)), table.get(("nemotron", workers, c))
            if not t or not o:
                continue
            line = []
            for name, rs in (("trivial", t), ("nemotron", o)):
                line.append(f"{name} {med(rs, lambda r: r.episodes / r.seconds):6.1f} "
                            f"({med(rs, lambda r: pct(r.latencies, .5)):.0f} / {med(rs, lambda r: pct(r.latencies, .99)):.0f}; "
                            f"{med(rs, lambda r: pct(r.requests, .5)):.1f} / {med(rs, lambda r: pct(r.requests, .99)):.1f}; "
                            f"{med(rs, lambda r: 1000 * r.server_cpu / max(1, r.episodes)):.2f})")
            floor = med(t, lambda r: r.episodes / r.seconds)
            ratio = med(o, lambda r: r.episodes / r.seconds) / floor if floor else float("nan")
            turns = [b.episodes / a.episodes for a, b in zip(t, o) if a.episodes] or [float("nan")]
            print(f"  workers {workers} concurrency {c:>3}: {line[0]}   {line[1]}   ratio {ratio:.2f} "
                  f"(turn by turn {min(turns):.2f}-{max(turns):.2f})")
        rec = table.get(("recording", workers, 32))
        if rec:
            print(f"  workers {workers} concurrency  32, recording: "
                  f"{med(rec, lambda r: r.episodes / r.seconds):6.1f} episodes/s "
                  f"({med(rec, lambda r: pct(r.latencies, .5)):.0f} / {med(rec, lambda r: pct(r.latencies, .99)):.0f}; "
                  f"server CPU {med(rec, lambda r: 1000 * r.server_cpu / max(1, r.episodes)):.2f})")
    print("\nstartup:")
    for line in startups:
        print("  " + line)
    print("\nmemory after the runs:")
    for line in memory_rows:
        print("  " + line)
    print(f"\nload average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
