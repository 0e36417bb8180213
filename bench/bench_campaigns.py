"""Benchmark human baseline campaigns: sampling at full scale, hand-out and answer latency under concurrent
annotators, and the cost of the admin views on a large campaign.

Prints figures; it is not a test. Three parts:

1. `draw_sample` on a full-size database opened read-only (`--db`, skipped when absent): stratified and
   simple, 1,000 items.
2. Annotators as threads, each with its own connection, on a copy of the demo database: every thread asks
   for an item and answers it (keyword grading included) until the campaign is full. Per-operation p50 /
   p95 latency and answers per second, at 1, 8 and 32 annotators.
3. A 20,000-item campaign on a synthetic store of 50,000 decision points with 40,000 answers inserted
   directly: the latency of `next_item` + `skip_item` late in the campaign (the hand-out query scans the
   items), `progress` and `campaign_results` (what the admin page computes).

    python bench/bench_campaigns.py --db /work/bench-data/full.db
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nemo_core.people import campaigns as C  # noqa: E402
from nemo_core.people.baseline import campaign_results  # noqa: E402
from nemo_core.data.demo import ensure_demo_db  # noqa: E402
from nemo_core.data.filters import DecisionPointFilter  # noqa: E402
from nemo_core.data.store import Store  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def part1(db: Path) -> None:
    if not db.exists():
        print(f"1. sampling: skipped ({db} not found)")
        return
    store = Store.open(db, readonly=True, create=False)
    print(f"1. sampling on {db} ({store.n_decision_points():,} decision points), read-only")
    for stratify in (True, False):
        t = time.perf_counter()
        sample = C.draw_sample(store, DecisionPointFilter(exclude_flags=("ungradeable",)), 1000, seed=1,
                               stratify=stratify, shared_share=0.1)
        print(f"   draw_sample 1,000 {'stratified' if stratify else 'simple'}: {time.perf_counter() - t:.2f} s "
              f"(population {sample.population:,})")
    t = time.perf_counter()
    C.draw_sample(store, DecisionPointFilter(split="interactive_agent", action_type="function_call"), 500, seed=1,
                  stratify=True)
    print(f"   draw_sample 500 of interactive_agent function calls: {time.perf_counter() - t:.2f} s")
    store.close()


def part2(work: Path) -> None:
    print("2. concurrent annotators (threads, own connections), demo database, keyword grading")
    master = ensure_demo_db(work / "demo-master.db")
    for n_people in (1, 8, 32):
        db = work / f"demo-{n_people}.db"
        shutil.copy(master, db)
        store = Store.open(db)
        overlap = min(n_people, 3)
        camp = C.create_campaign(store, "bench", sample_size=180, seed=1, overlap=overlap, shared_share=0.05)
        store.close()
        hand, submit, errors = [], [], []
        lock = threading.Lock()

        def run(i: int) -> None:
            s = Store.open(db)
            who = f"a{i}"
            try:
                while True:
                    t0 = time.perf_counter()
                    a = C.next_item(s, camp.id, who)
                    t1 = time.perf_counter()
                    if a is None:
                        return
                    C.submit_answer(s, a.id, who, {"type": "message", "content": f"answer {i}"})
                    t2 = time.perf_counter()
                    with lock:
                        hand.append(t1 - t0)
                        submit.append(t2 - t1)
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
            finally:
                s.close()

        t = time.perf_counter()
        threads = [threading.Thread(target=run, args=(i,)) for i in range(n_people)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        print(f"   {n_people:>2} annotators, overlap {overlap}: {len(submit):,} answers in {wall:.2f} s "
              f"({len(submit) / wall:,.0f}/s); next_item p50 {pct(hand, .5):.1f} ms p95 {pct(hand, .95):.1f} ms; "
              f"submit p50 {pct(submit, .5):.1f} ms p95 {pct(submit, .95):.1f} ms; errors {len(errors)}")


def part3(work: Path) -> None:
    print("3. a 20,000-item campaign on 50,000 synthetic decision points, 40,000 answers")
    db = work / "big.db"
    store = Store.open(db)
    rng = random.Random(1)
    rows = []
    for i in range(50_000):
        split = "tool_calling" if rng.random() < 0.94 else "interactive_agent"
        kind = "function_call" if rng.random() < 0.5 else "message"
        rows.append((1, f"{split}/u{i}/2", split, f"u{i}", 2, 1, kind, "f" if kind == "function_call" else None,
                     "f" if kind == "function_call" else None, 1, 3, 100, 10))
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO decision_points(conversation_id, id, split, conversation_uuid, turn_index, assistant_turn, "
            "action_type, expected_tool, expected_tools, n_expected_calls, n_tools, context_chars, expected_chars) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    t = time.perf_counter()
    camp = C.create_campaign(store, "big", sample_size=20_000, seed=1, stratify=True, overlap=2, shared_share=0.02)
    print(f"   create_campaign 20,000 items (stratified): {time.perf_counter() - t:.2f} s")
    items = C.items(store, camp.id)
    people = [f"p{i}" for i in range(10)]
    answers = []
    for item in items:
        who = people if item["shared"] else rng.sample(people, 2)
        for w in who:
            answers.append((camp.id, item["id"], item["dp_id"], w, "answered", '{"type": "message", "content": "x"}',
                            "message", "submit_message", rng.choice([0.0, 0.5, 1.0]), "keyword", "", 0.0,
                            rng.uniform(5, 120)))
    answers = answers[:40_000]
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO campaign_answers(campaign_id, item_id, dp_id, annotator, status, action, submitted_type, "
            "submitted_name, reward, grader, shown_at, shown_ts, seconds) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            answers)
    lat = []
    for i in range(50):
        t0 = time.perf_counter()
        a = C.next_item(store, camp.id, f"late{i % 5}")
        if a is not None:
            C.skip_item(store, a.id, f"late{i % 5}", "bench")
        lat.append(time.perf_counter() - t0)
    print(f"   next_item + skip_item late in the campaign: p50 {pct(lat, .5):.1f} ms, p95 {pct(lat, .95):.1f} ms")
    t = time.perf_counter()
    C.progress(store, camp.id)
    print(f"   progress (10+ annotators): {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    res = campaign_results(store, camp.id)
    print(f"   campaign_results ({res.n_answers:,} answers, {res.agreement.n_items:,} overlapping items): "
          f"{time.perf_counter() - t:.2f} s")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, default=Path("/work/bench-data/full.db"),
                        help="a full-size database for the sampling figures (opened read-only)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: 1,2,3")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "1" not in skip:
            part1(args.db)
        if "2" not in skip:
            part2(work)
        if "3" not in skip:
            part3(work)


if __name__ == "__main__":
    main()
