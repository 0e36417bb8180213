"""Many annotators at once on one database file: threads (own connections, and one shared `Store` as in the
Streamlit server) and several processes, all asking for items and submitting at the same time.

Checked: no answer is lost (every answer a worker was told was stored is in the database, with its text),
no database error, and no non-shared item ever had more live assignments than its overlap, at any moment:
a test-only trigger logs every insert that finds its item over the limit, so a transient excess that a
later skip would hide is still caught.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from nemo_core.people import campaigns as C
from nemo_core.data.store import Store

REPO = Path(__file__).resolve().parent.parent

OVERLAP_WATCH = """
CREATE TABLE IF NOT EXISTS overlap_violations (item_id INTEGER, live INTEGER);
CREATE TRIGGER IF NOT EXISTS watch_overlap AFTER INSERT ON campaign_answers
WHEN (SELECT shared FROM campaign_items WHERE id = NEW.item_id) = 0
 AND (SELECT count(*) FROM campaign_answers WHERE item_id = NEW.item_id AND status IN ('assigned', 'answered'))
     > (SELECT overlap FROM campaigns WHERE id = NEW.campaign_id)
BEGIN
  INSERT INTO overlap_violations VALUES (NEW.item_id, (SELECT count(*) FROM campaign_answers
      WHERE item_id = NEW.item_id AND status IN ('assigned', 'answered')));
END;
CREATE TRIGGER IF NOT EXISTS watch_overlap_revive AFTER UPDATE OF status ON campaign_answers
WHEN NEW.status = 'answered' AND (SELECT shared FROM campaign_items WHERE id = NEW.item_id) = 0
 AND (SELECT count(*) FROM campaign_answers WHERE item_id = NEW.item_id AND status IN ('assigned', 'answered'))
     > (SELECT overlap FROM campaigns WHERE id = NEW.campaign_id)
BEGIN
  INSERT INTO overlap_violations VALUES (NEW.item_id, -1);
END;
"""

# One annotator's loop; used by the threads here and, as source text, by the worker processes.
WORKER = '''
def annotate(store, campaign_id, who, skip_every=0, barrier=None):
    """Ask, answer (or skip), until the queue is empty. Returns what the database confirmed and any errors."""
    from nemo_core.people import campaigns as C
    done, errors, n = [], [], 0
    if barrier is not None:
        barrier.wait()
    while True:
        try:
            a = C.next_item(store, campaign_id, who)
            if a is None:
                return done, errors
            n += 1
            if skip_every and n % skip_every == 0:
                C.skip_item(store, a.id, who, f"skip {who} {n}")
                done.append([a.id, "skipped", f"skip {who} {n}"])
            else:
                text = f"answer {who} {n} to {a.dp_id}"
                C.submit_answer(store, a.id, who, {"type": "message", "content": text})
                done.append([a.id, "answered", text])
        except Exception as exc:  # noqa: BLE001 - recorded and asserted empty by the test
            errors.append(f"{type(exc).__name__}: {exc}")
            if len(errors) > 5:
                return done, errors
'''
namespace: dict = {}
exec(WORKER, namespace)
annotate = namespace["annotate"]

PROCESS_SCRIPT = WORKER + '''
import json, sys, threading
from nemo_core.data.store import Store
db, campaign_id, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
n_threads, skip_every = int(sys.argv[4]), int(sys.argv[5])
results = {}
barrier = threading.Barrier(n_threads)
def run(i):
    store = Store.open(db)
    try:
        results[f"{prefix}-{i}"] = annotate(store, campaign_id, f"{prefix}-{i}", skip_every, barrier)
    finally:
        store.close()
threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(results))
'''


def _setup(demo_db: Path, name: str, *, n: int, overlap: int, shared: float) -> int:
    store = Store.open(demo_db)
    try:
        camp = C.create_campaign(store, name, sample_size=n, seed=7, overlap=overlap, shared_share=shared)
        store.conn.executescript(OVERLAP_WATCH)
        return camp.id
    finally:
        store.close()


def _check(demo_db: Path, campaign_id: int, results: dict[str, tuple[list, list]], *, overlap: int,
           skips: bool) -> None:
    store = Store.open(demo_db)
    try:
        errors = {who: errs for who, (_, errs) in results.items() if errs}
        assert errors == {}, errors
        assert store.query("SELECT * FROM overlap_violations") == []
        rows = {r["id"]: r for r in store.query(
            "SELECT a.id, a.annotator, a.status, a.action, a.skip_reason, a.item_id, i.shared "
            "FROM campaign_answers AS a JOIN campaign_items AS i ON i.id = a.item_id WHERE a.campaign_id = ?", (campaign_id,))}
        confirmed = 0
        for who, (done, _) in results.items():
            for assignment_id, status, text in done:
                confirmed += 1
                row = rows[assignment_id]
                assert row["annotator"] == who and row["status"] == status
                if status == "answered":
                    assert json.loads(row["action"])["content"] == text  # not lost, not overwritten
                else:
                    assert row["skip_reason"] == text
        # nothing in the database that no worker was told about, nothing left open
        assert confirmed == len(rows)
        assert not [r for r in rows.values() if r["status"] == "assigned"]
        live = Counter(r["item_id"] for r in rows.values() if r["status"] == "answered")
        n_people = len(results)
        items = store.query("SELECT id, shared FROM campaign_items WHERE campaign_id = ?", (campaign_id,))
        for item in items:
            if item["shared"]:
                # every annotator got it (answered or skipped)
                got = {r["annotator"] for r in rows.values() if r["item_id"] == item["id"]}
                assert len(got) == n_people
            else:
                assert live[item["id"]] <= overlap
                if not skips:
                    assert live[item["id"]] == overlap  # filled to its overlap exactly
                else:  # an item short of its overlap was skipped by everyone who did not answer it
                    seen = {r["annotator"] for r in rows.values() if r["item_id"] == item["id"]}
                    assert live[item["id"]] == overlap or len(seen) == n_people
        per_pair = Counter((r["item_id"], r["annotator"]) for r in rows.values())
        assert max(per_pair.values()) == 1
    finally:
        store.close()


def test_many_threads_at_once(demo_db):
    cid = _setup(demo_db, "threads", n=40, overlap=2, shared=0.1)
    n_threads = 12
    barrier = threading.Barrier(n_threads)
    results: dict[str, tuple[list, list]] = {}
    shared_store = Store.open(demo_db)  # like the Streamlit server: one Store, many sessions
    own: list[Store] = []

    def run(i: int) -> None:
        if i % 3 == 0:
            store = shared_store
        else:
            store = Store.open(demo_db)
            own.append(store)
        results[f"t{i}"] = annotate(store, cid, f"t{i}", 5 if i % 2 else 0, barrier)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for s in own:
        s.close()
    shared_store.close()
    assert len(results) == n_threads
    _check(demo_db, cid, results, overlap=2, skips=True)


@pytest.mark.slow
def test_several_processes_and_threads_at_once(demo_db):
    cid = _setup(demo_db, "processes", n=40, overlap=2, shared=0.1)
    procs = [subprocess.Popen([sys.executable, "-c", PROCESS_SCRIPT, str(demo_db), str(cid), f"p{k}", "4", "0"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(3)]
    # and threads in this process at the same time
    results: dict[str, tuple[list, list]] = {}

    def run(i: int) -> None:
        store = Store.open(demo_db)
        try:
            results[f"local{i}"] = annotate(store, cid, f"local{i}")
        finally:
            store.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results.update({k: tuple(v) for k, v in json.loads(out).items()})
    for t in threads:
        t.join(120)
    assert len(results) == 16
    assert sum(len(done) for done, _ in results.values()) == 36 * 2 + 4 * 16
    _check(demo_db, cid, results, overlap=2, skips=False)
