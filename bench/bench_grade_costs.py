"""Where `grade` spends its CPU, per prediction: the figures behind issue 3's speed target (docs/grading.md).

`bench_grade.py` times the whole command; this script takes it apart, on real rows from the real code:

1. A grading worker's stages, one process, no pool: reading the lines and loading their decision points,
   grading, encoding the result lines and rows (microseconds a prediction, CPU).
2. Storing the same rows in a scratch database, one transaction per 100,000 as `grade` does, after a
   first run of the same size (so the shared `predictions` indexes are not empty), in variants:
   - as today: `predictions` with its two indexes, then the taxonomy rows;
   - `predictions` without the `(run_id, reward)` index;
   - a table of the run's own, appended with no index and indexed at the end (what storing predictions
     like the taxonomy, one table a run, would cost);
   - the taxonomy rows alone, and into a table indexed before the first row instead of at the end.

    python bench/bench_grade_costs.py --db /work/bench-data/v4/full.db \
        --predictions /work/bench-data/grade/predictions.jsonl --limit 300000

The predictions file is one `bench_grade.py` writes (any `grade` input works). Figures are extrapolated
linearly to 1.2 M predictions and say so. Not a test: it prints numbers for the issue notes.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nemo_core.runs.grade_file import BATCH_LINES, FileGradeResult, _worker_init, _WORKER, grade_lines, stored_row
from nemo_core.runs.owner import COMMIT_ROWS, _ACTION_TYPE, _DP_ID, _REWARD, _SPLIT
from nemo_core.runs.run import _INSERT_NUMBERED_SQL, create_run  # noqa: E402
from nemo_core.data.store import Store  # noqa: E402
from nemo_core.runs.taxonomy import (_INDEX_DDL, add_classified, start_taxonomy, taxonomy_row, taxonomy_table)  # noqa: E402

FULL_SIZE = 1_230_000
OWN_TABLE_INDEXES = ("CREATE UNIQUE INDEX {t}_dp ON {t}(dp_id)", "CREATE INDEX {t}_reward ON {t}(reward)")


def worker_stages(db: Path, lines: list[tuple[int, bytes]]) -> dict[str, float]:
    """CPU microseconds a prediction per stage of `grade_lines` as a worker runs it (results dropped per
    batch, as a worker sends them away)."""
    _worker_init(str(db), "keyword")  # what a worker process does first (it also turns the cyclic GC off)
    timings = FileGradeResult(0, "bench", "keyword", None)
    timings._cpu_mark = time.process_time()
    started = time.process_time()
    for start in range(0, len(lines), BATCH_LINES):
        grade_lines(_WORKER["store"], _WORKER["loader"], lines[start:start + BATCH_LINES], grader="keyword",
                    timings=timings)
    total = time.process_time() - started
    per = {k: v / len(lines) * 1e6 for k, v in timings.cpu_timings.items()}
    per["total"] = total / len(lines) * 1e6
    return per


def stored_rows(lines: list[tuple[int, bytes]]) -> tuple[list[tuple], list[tuple]]:
    """The `predictions` rows (without ids) and taxonomy rows `grade` stores for these lines."""
    rows, taxonomy = [], []
    for start in range(0, len(lines), BATCH_LINES):
        for res in grade_lines(_WORKER["store"], _WORKER["loader"], lines[start:start + BATCH_LINES],
                               grader="keyword"):
            if res.row is not None:
                row = stored_row(res)
                rows.append(row)
                taxonomy.append(taxonomy_row(0, row[_DP_ID], res.taxonomy, row[_SPLIT], row[_ACTION_TYPE],
                                             row[_REWARD]))
    return rows, taxonomy


def store_variant(rows: list[tuple], taxonomy: list[tuple], *, drop: tuple[str, ...] = (), predictions: bool = True,
                  own_table: bool = False, classified: bool = True, taxonomy_indexed_first: bool = False
                  ) -> tuple[float, float]:
    """CPU seconds (storing, and building indexes at the end) for the second of two same-size runs."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "scratch.db")
        store.conn.execute("PRAGMA cache_size = -262144")  # as `grade_file`
        store.conn.execute("PRAGMA wal_autocheckpoint = 16384")
        for name in drop:
            store.conn.execute(f"DROP INDEX {name}")
        cpu = 0.0
        insert = _INSERT_NUMBERED_SQL
        for attempt in range(2):
            run_id = create_run(store, f"run-{attempt}", kind="grade", grader="keyword", rule_version="bench")
            with store.transaction() as conn:
                start_taxonomy(conn, run_id)
                if taxonomy_indexed_first:
                    for ddl in _INDEX_DDL:
                        conn.execute(ddl.format(t=taxonomy_table(run_id)))
                if own_table:
                    conn.execute(f"CREATE TABLE own_{run_id} AS SELECT * FROM predictions WHERE 0")
                    insert = _INSERT_NUMBERED_SQL.replace("INTO predictions", f"INTO own_{run_id}")
            first_id = attempt * len(rows) + 1
            started = time.process_time()
            for start in range(0, len(rows), COMMIT_ROWS):
                with store.transaction() as conn:
                    if predictions:
                        conn.executemany(insert, [(first_id + start + i, run_id, *row) for i, row in
                                                  enumerate(rows[start:start + COMMIT_ROWS])])
                    if classified:
                        add_classified(conn, run_id, [(first_id + start + i, *t[1:]) for i, t in
                                                      enumerate(taxonomy[start:start + COMMIT_ROWS])])
            cpu = time.process_time() - started
        started = time.process_time()  # the indexes a run's own tables get once it is complete
        with store.transaction() as conn:
            if own_table:
                for ddl in OWN_TABLE_INDEXES:
                    conn.execute(ddl.format(t=f"own_{run_id}"))
            if classified:
                for ddl in _INDEX_DDL:
                    conn.execute(ddl.format(t=taxonomy_table(run_id)))
        indexing = time.process_time() - started
        store.close()
    return cpu, indexing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True, help="a database holding the predictions' decision points")
    parser.add_argument("--predictions", type=Path, required=True, help="a grade input file (bench_grade.py writes one)")
    parser.add_argument("--limit", type=int, default=300_000, help="predictions to use (default 300,000)")
    args = parser.parse_args()

    with args.predictions.open("rb") as fh:
        lines = [(n, raw) for n, raw in enumerate(itertools.islice(fh, args.limit), start=1) if raw.strip()]
    n = len(lines)
    scale = FULL_SIZE / n
    print(f"{n:,} predictions from {args.predictions}; figures per prediction, and x{scale:.1f} for 1.23 M "
          f"(EXTRAPOLATED linearly); machine: {os.cpu_count()} cores")

    per = worker_stages(args.db, lines)
    print("\n== one grading worker, CPU per prediction (the pool's two workers share this work)")
    for stage, us in per.items():
        print(f"   {stage:32s} {us:6.1f} us   {us * FULL_SIZE / 1e6:6.1f} s at 1.23 M")

    rows, taxonomy = stored_rows(lines)
    print(f"\n== storing {len(rows):,} rows (the main process), one transaction per {COMMIT_ROWS:,}; CPU of the "
          "second of two same-size runs")
    variants = (
        ("as today: predictions + taxonomy", {}),
        ("shared predictions table alone", dict(classified=False)),
        ("  ... without its (run, reward) index", dict(classified=False, drop=("predictions_run_reward",))),
        ("a run's own predictions table, indexed at the end", dict(classified=False, own_table=True)),
        ("taxonomy rows alone", dict(predictions=False)),
        ("  ... into a table indexed from the start", dict(predictions=False, taxonomy_indexed_first=True)),
    )
    for label, options in variants:
        cpu, indexing = store_variant(rows, taxonomy, **options)
        total = cpu + indexing
        print(f"   {label:50s} {total / len(rows) * 1e6:5.1f} us a row = {total * scale:5.1f} s at 1.23 M"
              + (f" (of which indexes at the end {indexing * scale:.1f} s)" if indexing * scale >= 0.05 else ""))


if __name__ == "__main__":
    main()
