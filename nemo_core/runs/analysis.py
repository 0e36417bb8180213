"""Aggregations over stored runs for the Runs, Failures and Compare pages and the `report` command.

Everything is SQL over a run's taxonomy table (`taxonomy.taxonomy_table`: one row per prediction, with the columns people group and
filter on, and an index for each question asked here), so a run of 1.2 M predictions is summarised from
index scans and value counts, never by loading its rows into Python. Means and intervals come from
`metrics` (bootstrap on value counts); a run's summary is cached in `run_summary_cache` once computed,
keyed by the taxonomy state it was computed from, because a finished run's predictions do not change.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..base.metrics import MeanCI, mean_ci_counts
from ..data.records import loads_json
from .run import Run, count_predictions, delete_run, get_run, list_runs, mark_abandoned_runs, run_progress, summarise_run
from ..data.store import Store
from ..data.tuning import BULK_CACHE_KIB, tuned
from .taxonomy import CATEGORIES, CORRECT, FAILURE_CATEGORIES, ensure_taxonomy, taxonomy_is_current, taxonomy_table


FAILURE_SORTS = {
    "reward": "t.reward IS NULL, t.reward, t.prediction_id",
    "-reward": "t.reward IS NULL, t.reward DESC, t.prediction_id",
    "id": "t.prediction_id",
}


def _ci_json(ci: MeanCI) -> dict[str, Any]:
    return ci.to_json()


@dataclass
class RunOverview:
    """One row of the runs table: the run and its mean reward with CI overall, by split, by action type."""

    run: Run
    n: int
    overall: dict[str, Any]
    by_split: dict[str, dict[str, Any]]
    by_action_type: dict[str, dict[str, Any]]
    taxonomy: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run.name, "run_id": self.run.id, "kind": self.run.kind, "model": self.run.model,
                "n": self.n, "mean_reward": self.overall, "by_split": self.by_split,
                "by_action_type": self.by_action_type, "taxonomy": self.taxonomy}


def _state(store: Store, run_id: int) -> str:
    row = store.query("SELECT version, n_predictions, computed_at FROM taxonomy_state WHERE run_id = ?", (run_id,))
    return orjson.dumps(row[0] if row else None).decode()


def taxonomy_counts(store: Store, run_id: int) -> dict[str, int]:
    """Category -> count, every category listed (0 when absent), in `CATEGORIES` order."""
    ensure_taxonomy(store, run_id)
    found = {r["category"]: r["n"] for r in store.query(
        f"SELECT category, count(*) AS n FROM {taxonomy_table(run_id)} GROUP BY category")}
    return {c: int(found.get(c, 0)) for c in CATEGORIES}


def sub_kind_counts(store: Store, run_id: int) -> list[dict[str, Any]]:
    """(category, sub_kind, n) for the categories that have sub-kinds."""
    ensure_taxonomy(store, run_id)
    return store.query(
        f"SELECT category, sub_kind, count(*) AS n FROM {taxonomy_table(run_id)} WHERE sub_kind IS NOT NULL "
        "GROUP BY category, sub_kind ORDER BY category, n DESC")


def argument_error_totals(store: Store, run_id: int) -> dict[str, int]:
    """Total missing / extra / wrong-value / wrong-type keys over the run's `argument_errors` predictions."""
    ensure_taxonomy(store, run_id)
    row = store.query(
        "SELECT coalesce(sum(n_missing), 0) AS missing_key, coalesce(sum(n_extra), 0) AS extra_key, "
        "coalesce(sum(n_wrong_value), 0) AS wrong_value, coalesce(sum(n_wrong_type), 0) AS wrong_type "
        f"FROM {taxonomy_table(run_id)} WHERE category = 'argument_errors'")[0]
    return {k: int(v) for k, v in row.items()}


CONFUSION_CACHED = 50
TOOLS_CACHED = 500


def run_details(store: Store, run: Run | int | str, *, use_cache: bool = True) -> dict[str, Any]:
    """Everything the Runs page shows about one run, computed once and stored (`run_summary_cache`).

    Keys: n, overall, by_split, by_action_type, by_split_and_action_type (split -> action type -> mean; means
    with 95% bootstrap CIs), taxonomy (category -> count),
    sub_kinds, argument_errors, confusion (top wrong / hallucinated tool pairs), histogram, tool_names.
    The cache is keyed by the run's taxonomy state, so recomputing the taxonomy refreshes it.
    """
    if not isinstance(run, Run):
        run = get_run(store, run)
    ensure_taxonomy(store, run.id)
    state = _state(store, run.id)
    if use_cache:
        cached = store.query("SELECT state, summary FROM run_summary_cache WHERE run_id = ?", (run.id,))
        if cached and cached[0]["state"] == state:
            data = orjson.loads(cached[0]["summary"])
            if "by_split_and_action_type" in data:  # else cached by a version without it: computed again
                return data
    means = summarise_run(store, run.id)  # from the taxonomy table's covering index
    data = {
        "n": means.overall.n + means.overall.n_ungraded,
        "overall": _ci_json(means.overall),
        "by_split": {k: _ci_json(v) for k, v in means.by_split.items()},
        "by_action_type": {k: _ci_json(v) for k, v in means.by_action_type.items()},
        "by_split_and_action_type": {s: {t: _ci_json(v) for t, v in cells.items()}
                                     for s, cells in means.by_split_and_action_type.items()},
        "taxonomy": taxonomy_counts(store, run.id),
        "sub_kinds": sub_kind_counts(store, run.id),
        "argument_errors": argument_error_totals(store, run.id),
        "confusion": confusion(store, run.id, top=CONFUSION_CACHED),
        "histogram": reward_histogram(store, run.id),
        "tool_names": tool_names(store, run.id, limit=TOOLS_CACHED),
    }
    with store.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO run_summary_cache(run_id, state, summary) VALUES (?, ?, ?)",
                     (run.id, state, orjson.dumps(data).decode()))
    return data


def run_summary(store: Store, run: Run | int | str, *, use_cache: bool = True) -> RunOverview:
    """Mean reward with 95% bootstrap CI overall / by split / by action type, and the taxonomy counts."""
    if not isinstance(run, Run):
        run = get_run(store, run)
    d = run_details(store, run, use_cache=use_cache)
    return RunOverview(run, d["n"], d["overall"], d["by_split"], d["by_action_type"], d["taxonomy"])


def runs_signature(store: Store) -> tuple:
    """Changes exactly when a run is added, grows, finishes, is reclassified or deleted: the key under which
    a page may keep what it computed from the runs."""
    runs = store.query("SELECT id, name, status, n_predictions, finished_at FROM runs ORDER BY id")
    states = store.query("SELECT run_id, computed_at, n_predictions, indexed FROM taxonomy_state ORDER BY run_id")
    growing = store.query("SELECT run_id, count(*) AS n FROM predictions WHERE run_id IN "
                          "(SELECT id FROM runs WHERE status = 'running') GROUP BY run_id")
    return (tuple(tuple(r.values()) for r in runs), tuple(tuple(s.values()) for s in states),
            tuple(tuple(g.values()) for g in growing))


def awaiting_taxonomy(store: Store, run: Run) -> bool:
    """A run still being written (status `running`) whose predictions are not all classified yet.

    Its taxonomy is computed when it finishes (`owner.finish_run`); until then pages do not classify it on
    every visit (a run growing by the second would be reclassified each time), they offer to."""
    return run.status == "running" and not taxonomy_is_current(store, run.id)


def runs_table(store: Store) -> list[dict[str, Any]]:
    """Every run, newest first, flat for a table: name, kind, model, source, time, size, means with CIs.
    A run still being written and not classified yet shows its size so far and no means."""
    out = []
    for run in list_runs(store):
        if awaiting_taxonomy(store, run):
            n = count_predictions(store, run.id)
            out.append({"run": run.name, "id": run.id, "kind": run.kind, "model": run.model, "grader": run.grader,
                        "source": run.source_file, "created_at": run.created_at, "status": run.status, "n": n,
                        "n_graded": None, "mean_reward": None, "ci_low": None, "ci_high": None})
            continue
        s = run_summary(store, run)
        row: dict[str, Any] = {
            "run": run.name, "id": run.id, "kind": run.kind, "model": run.model, "grader": run.grader,
            "source": run.source_file, "created_at": run.created_at, "status": run.status, "n": s.n,
            "n_graded": s.overall["n"], "mean_reward": s.overall["mean"], "ci_low": s.overall["ci_low"],
            "ci_high": s.overall["ci_high"],
        }
        for prefix, groups in (("split", s.by_split), ("type", s.by_action_type)):
            for name, ci in groups.items():
                row[f"{prefix}:{name}"] = ci["mean"]
                row[f"{prefix}:{name}:ci"] = _fmt_ci(ci)
        out.append(row)
    return out


def _fmt_ci(ci: dict[str, Any]) -> str:
    if ci["mean"] is None:
        return "n/a"
    return f"{ci['mean']:.3f} [{ci['ci_low']:.3f}, {ci['ci_high']:.3f}] n={ci['n']:,}"


def confusion(store: Store, run_id: int, *, top: int = 20, errors_only: bool = True) -> list[dict[str, Any]]:
    """The most frequent (expected tool, predicted tool) pairs among function-call predictions.

    `errors_only` keeps the off-diagonal pairs (wrong and hallucinated tools), which is what a person
    debugging a run looks for; otherwise matching pairs are included too."""
    ensure_taxonomy(store, run_id)
    if errors_only:
        return store.query(
            f"SELECT expected_tool, predicted_tool, category, count(*) AS n FROM {taxonomy_table(run_id)} "
            "WHERE category IN ('wrong_tool', 'hallucinated_tool') "
            "GROUP BY expected_tool, predicted_tool, category ORDER BY n DESC, expected_tool, predicted_tool LIMIT ?",
            (int(top),))
    return store.query(
        f"SELECT expected_tool, predicted_tool, count(*) AS n FROM {taxonomy_table(run_id)} "
        "WHERE predicted_tool IS NOT NULL AND expected_tool IS NOT NULL "
        "GROUP BY expected_tool, predicted_tool ORDER BY n DESC, expected_tool, predicted_tool LIMIT ?",
        (int(top),))


def reward_histogram(store: Store, run_id: int, *, bins: int = 10) -> list[dict[str, Any]]:
    """Counts of graded rewards in `bins` equal bins over [0, 1] (the last includes 1.0)."""
    ensure_taxonomy(store, run_id)
    rows = store.query(
        f"SELECT min(CAST(reward * ? AS INTEGER), ? - 1) AS b, count(*) AS n FROM {taxonomy_table(run_id)} "
        "WHERE reward IS NOT NULL GROUP BY b", (bins, bins))
    found = {r["b"]: r["n"] for r in rows}
    return [{"low": i / bins, "high": (i + 1) / bins, "n": int(found.get(i, 0))} for i in range(bins)]


@dataclass
class FailureFilter:
    """What the failure list shows. Empty `categories` means every failure category (not `correct`)."""

    categories: list[str] = field(default_factory=list)
    split: str | None = None
    expected_tool: str | None = None
    predicted_tool: str | None = None
    reward_min: float | None = None
    reward_max: float | None = None

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause (over the run's taxonomy table as `t`) and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        cats = [c for c in self.categories if c in CATEGORIES] or list(FAILURE_CATEGORIES)
        clauses.append(f"t.category IN ({', '.join('?' * len(cats))})")
        params += cats
        if self.split:
            clauses.append("t.split = ?")
            params.append(self.split)
        if self.expected_tool:
            clauses.append("t.expected_tool = ?")
            params.append(self.expected_tool)
        if self.predicted_tool:
            clauses.append("t.predicted_tool = ?")
            params.append(self.predicted_tool)
        if self.reward_min is not None:
            clauses.append("t.reward >= ?")
            params.append(float(self.reward_min))
        if self.reward_max is not None:
            clauses.append("t.reward <= ?")
            params.append(float(self.reward_max))
        return " AND ".join(clauses), params


@dataclass
class FailurePage:
    rows: list[dict[str, Any]]
    total: int
    offset: int
    limit: int


def count_failures(store: Store, run_id: int, flt: FailureFilter | None = None) -> int:
    """How many of a run's predictions match `flt` (an index-only count)."""
    ensure_taxonomy(store, run_id)
    where, params = (flt or FailureFilter()).where()
    return int(store.scalar(f"SELECT count(*) FROM {taxonomy_table(run_id)} t WHERE {where}", params) or 0)


def failures(store: Store, run_id: int, flt: FailureFilter | None = None, *, offset: int = 0, limit: int = 50,
             sort: str = "reward") -> FailurePage:
    """A page of a run's predictions matching `flt`, lowest reward first, with the total count.

    Two steps: the page's prediction ids from the taxonomy table alone (the filter columns and the sort
    key are all in one index, so this never reads the table), then the 50 rows' details by primary key.
    Joining first would look up every candidate row of a 1.2 M-prediction run before sorting."""
    ensure_taxonomy(store, run_id)
    flt = flt or FailureFilter()
    where, params = flt.where()
    order = FAILURE_SORTS.get(sort, FAILURE_SORTS["reward"])
    table = taxonomy_table(run_id)
    total = store.scalar(f"SELECT count(*) FROM {table} t WHERE {where}", params)
    ids = [r["prediction_id"] for r in store.query(
        f"SELECT t.prediction_id FROM {table} t WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, int(limit), int(offset)])]
    rows: list[dict[str, Any]] = []
    if ids:
        found = {r["prediction_id"]: r for r in store.query(
            "SELECT t.prediction_id, t.dp_id, t.category, t.sub_kind, t.split, t.action_type, t.expected_tool, "
            "t.predicted_tool, t.reward, t.n_missing, t.n_extra, t.n_wrong_value, t.n_wrong_type, p.reason, p.error "
            f"FROM {table} t JOIN predictions p ON p.id = t.prediction_id "
            f"WHERE t.prediction_id IN ({', '.join('?' * len(ids))})", ids)}
        rows = [found[i] for i in ids if i in found]
    return FailurePage(rows, int(total or 0), int(offset), int(limit))


def tool_names(store: Store, run_id: int, *, limit: int = 500) -> list[str]:
    """The expected tools that occur in a run, most frequent first (for the tool filter)."""
    ensure_taxonomy(store, run_id)
    return [r["expected_tool"] for r in store.query(
        f"SELECT expected_tool, count(*) AS n FROM {taxonomy_table(run_id)} WHERE expected_tool IS NOT NULL "
        "GROUP BY expected_tool ORDER BY n DESC LIMIT ?", (int(limit),))]


def prediction_for(store: Store, run: int | str, dp_id: str) -> dict[str, Any] | None:
    """One run's prediction for one decision point, JSON decoded, with its taxonomy; None when there is none."""
    run_obj = get_run(store, run)
    rows = store.query("SELECT * FROM predictions WHERE run_id = ? AND dp_id = ?", (run_obj.id, dp_id))
    if not rows:
        return None
    row = rows[0]
    for key in ("action", "extra", "breakdown"):  # exact: an integer beyond 64 bits is read back as stored
        row[key] = loads_json(row[key], exact=True) if row[key] else None
    tax = []
    if store.scalar("SELECT 1 FROM taxonomy_state WHERE run_id = ?", (run_obj.id,)):
        tax = store.query("SELECT category, sub_kind, n_missing, n_extra, n_wrong_value, n_wrong_type "
                          f"FROM {taxonomy_table(run_obj.id)} WHERE prediction_id = ?", (row["id"],))
    row["taxonomy"] = tax[0] if tax else None
    row["run_name"] = run_obj.name
    return row


def runs_with_prediction(store: Store, dp_id: str) -> list[str]:
    """Names of the runs holding a prediction for this decision point (uses the (run_id, dp_id) index)."""
    return [r["name"] for r in store.query(
        "SELECT r.name FROM runs r WHERE EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = r.id AND p.dp_id = ?) "
        "ORDER BY r.id DESC", (dp_id,))]


# ---- comparing two runs -------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """Run A against run B on the decision points both graded: A wins when its reward is higher."""

    run_a: str
    run_b: str
    n_shared: int
    n_only_a: int
    n_only_b: int
    n_ungraded: int
    wins: int
    losses: int
    ties: int
    mean_difference: dict[str, Any]
    mean_a: float | None
    mean_b: float | None
    biggest: list[dict[str, Any]]
    # [difference A - B, number of pairs] for every distinct difference, ascending (what the Compare plot draws)
    difference_counts: list[tuple[float, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def compare_runs(store: Store, run_a: int | str, run_b: int | str, *, top: int = 50) -> Comparison:
    """Wins / losses / ties, the mean difference (A - B) with a paired bootstrap CI, and the decision points
    where the two differ most.

    The bootstrap resamples *pairs* (decision points), which is resampling the per-pair differences:
    done on their value counts by `metrics.mean_ci_counts`, so it is exact and fast at any size.
    """
    a, b = get_run(store, run_a), get_run(store, run_b)
    ensure_taxonomy(store, a.id)
    ensure_taxonomy(store, b.id)
    # One pass over the pairs, both sides read from the (run_id, dp_id, reward) index in decision point order;
    # counts and the top differences are kept in Python (a GROUP BY would sort 1.2 M rows a second time).
    diffs: Counter = Counter()
    wins = losses = ties = n_ungraded = n_shared = 0
    sum_a = sum_b = 0.0
    heap: list[tuple[float, int, str, float, float]] = []  # (|d|, -sequence, dp_id, reward a, reward b)
    with store._lock:
        cursor = store.conn.execute(
            f"SELECT pa.dp_id, pa.reward, pb.reward FROM {taxonomy_table(a.id)} pa JOIN {taxonomy_table(b.id)} pb "
            "ON pb.dp_id = pa.dp_id ORDER BY pa.dp_id")
        for seq, (dp_id, reward_a, reward_b) in enumerate(cursor):
            n_shared += 1
            if reward_a is None or reward_b is None:
                n_ungraded += 1
                continue
            d = round(reward_a - reward_b, 9)
            diffs[d] += 1
            sum_a += reward_a
            sum_b += reward_b
            if d > 0:
                wins += 1
            elif d < 0:
                losses += 1
            else:
                ties += 1
                continue
            # ties in |d| keep the earlier decision point (the heap's root is the latest of the smallest)
            item = (abs(d), -seq, dp_id, reward_a, reward_b)
            if len(heap) < top:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    n_graded = wins + losses + ties
    ci = mean_ci_counts(dict(diffs))
    n_a = store.scalar(f"SELECT count(*) FROM {taxonomy_table(a.id)}") or 0
    n_b = store.scalar(f"SELECT count(*) FROM {taxonomy_table(b.id)}") or 0
    top_pairs = [{"dp_id": dp_id, "reward_a": ra_, "reward_b": rb_, "difference": ra_ - rb_}
                 for _, _, dp_id, ra_, rb_ in sorted(heap, key=lambda h: (-h[0], h[2]))]
    biggest: list[dict[str, Any]] = []
    if top_pairs:
        ids = [r["dp_id"] for r in top_pairs]
        marks = ", ".join("?" * len(ids))
        detail = {(r["run_id"], r["dp_id"]): r for r in store.query(
            f"SELECT run_id, dp_id, split, action_type, reason FROM predictions WHERE run_id IN (?, ?) "
            f"AND dp_id IN ({marks})", (a.id, b.id, *ids))}
        for r in top_pairs:
            da, db = detail.get((a.id, r["dp_id"]), {}), detail.get((b.id, r["dp_id"]), {})
            biggest.append({"dp_id": r["dp_id"], "split": da.get("split"), "action_type": da.get("action_type"),
                            "reward_a": r["reward_a"], "reward_b": r["reward_b"], "difference": r["difference"],
                            "reason_a": da.get("reason"), "reason_b": db.get("reason")})
    return Comparison(
        a.name, b.name, n_shared, n_a - n_shared, n_b - n_shared, n_ungraded, wins, losses, ties,
        {**ci.to_json(), "n_ungraded": n_ungraded},
        sum_a / n_graded if n_graded else None, sum_b / n_graded if n_graded else None, biggest,
        sorted(diffs.items()),
    )


def delete_run_with_analysis(store: Store, run_id: int) -> None:
    """`runs.delete_run` (its predictions, its taxonomy table and, by trigger, its stored aggregates) with a
    larger page cache: deleting 1.2 M predictions touches two indexes in random order, which SQLite's
    default 2 MB cache makes about twice as slow."""
    with tuned(store, cache_kib=BULK_CACHE_KIB):
        delete_run(store, run_id)


def report(store: Store, run: int | str) -> dict[str, Any]:
    """What `report --json` prints: run, n, mean_reward, by_split, by_action_type, by_split_and_action_type
    (split -> action type -> mean with CI), taxonomy (and details),
    and the run's `status` and `progress` (`runs.RunProgress`: a run that did not complete is partial)."""
    mark_abandoned_runs(store)  # a run whose process was killed is interrupted, not running
    run_obj = run if isinstance(run, Run) else get_run(store, run)
    d = run_details(store, run_obj)
    out = RunOverview(run_obj, d["n"], d["overall"], d["by_split"], d["by_action_type"], d["taxonomy"]).to_json()
    out["by_split_and_action_type"] = d["by_split_and_action_type"]
    out["argument_errors"] = d["argument_errors"]
    out["sub_kinds"] = d["sub_kinds"]
    out["status"] = run_obj.status
    out["progress"] = run_progress(store, run_obj).to_json()
    return out


__all__ = ["CATEGORIES", "CORRECT", "Comparison", "FailureFilter", "FailurePage", "RunOverview", "compare_runs",
           "awaiting_taxonomy", "confusion", "failures", "prediction_for", "report", "reward_histogram", "run_details", "run_summary",
           "runs_table",
           "runs_with_prediction", "taxonomy_counts", "tool_names"]
