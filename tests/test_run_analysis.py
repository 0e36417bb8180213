"""Run aggregations on two small runs whose every number is worked out by hand below.

Run A (5 predictions)                          Run B (5 predictions)
  c1 tool_calling  call   1.00 correct           c1 0.50   -> A wins  (+0.5)
  c2 tool_calling  call   0.50 hallucinated      c2 1.00   -> A loses (-0.5)
  c3 tool_calling  call   0.75 argument errors   c3 0.75   -> tie
  m1 tool_calling  msg    0.20 low message       m1 0.20   -> tie
  m2 interactive   msg    0.80 correct           (B has m3 instead of m2: not shared)

mean A = 3.25 / 5 = 0.65; tool_calling (1 + .5 + .75 + .2) / 4 = 0.6125; interactive 0.8;
function_call 2.25 / 3 = 0.75; message 1.0 / 2 = 0.5.
"""

from __future__ import annotations

import pytest

from nemo_core.grading.grade import Breakdown
from nemo_core.grading.reward import KeyResult
from nemo_core.runs.analysis import (FailureFilter, compare_runs, count_failures, confusion, failures, prediction_for,
                                     report, reward_histogram, run_summary, runs_table, runs_with_prediction,
                                     taxonomy_counts, tool_names)
from nemo_core.runs.run import create_run, insert_predictions, prediction_row
from nemo_core.runs.owner import finish_run
from nemo_core.runs.taxonomy import taxonomy_table


def call(reward, name, expected_name="find_slots", keys=()):
    name_match = int(name == expected_name)
    arg_match = (reward - 0.5 * name_match) / 0.5
    return Breakdown.graded_call(reward=reward, name_match=name_match, arg_match=arg_match, reason="r", keys=list(keys),
                                 expected_name=expected_name, submitted_name=name)


def message(reward):
    return Breakdown.graded_by_keyword(score=reward, reason="kw")


@pytest.fixture
def ids(demo_store):
    def pick(split, action_type, n):
        return [r["id"] for r in demo_store.query(
            "SELECT id FROM decision_points WHERE split = ? AND action_type = ? AND ungradeable_reason IS NULL "
            "ORDER BY id LIMIT ?", (split, action_type, n))]
    c = pick("tool_calling", "function_call", 3)
    m = pick("tool_calling", "message", 2)
    ia = pick("interactive_agent", "message", 1)
    return {"c1": c[0], "c2": c[1], "c3": c[2], "m1": m[0], "m3": m[1], "m2": ia[0]}


def make_run(store, name, items):
    run_id = create_run(store, name, kind="grade", grader="keyword", rule_version="test")
    rows = []
    for dp_id, breakdown in items:
        split, action_type = dp_id.split("/")[0], breakdown.expected_type
        rows.append(prediction_row(run_id, dp_id, breakdown, split=split, action_type=action_type,
                                   action={"type": breakdown.submitted_type}))
    insert_predictions(store, rows)
    finish_run(store, run_id)
    return run_id


@pytest.fixture
def runs(demo_store, ids):
    arg_keys = [KeyResult("a", "match", 1, 1), KeyResult("b", "missing", 2, None), KeyResult("c", "extra", None, 3),
                KeyResult("d", "mismatch", "x", "y")]
    a = make_run(demo_store, "A", [
        (ids["c1"], call(1.0, "find_slots")),
        (ids["c2"], call(0.5, "made_up_tool")),
        (ids["c3"], call(0.75, "find_slots", keys=arg_keys)),
        (ids["m1"], message(0.2)),
        (ids["m2"], message(0.8)),
    ])
    b = make_run(demo_store, "B", [
        (ids["c1"], call(0.5, "made_up_tool")),
        (ids["c2"], call(1.0, "find_slots")),
        (ids["c3"], call(0.75, "find_slots", keys=arg_keys)),
        (ids["m1"], message(0.2)),
        (ids["m3"], message(0.9)),
    ])
    return a, b


def test_summary_means_by_split_and_type(demo_store, runs):
    s = run_summary(demo_store, "A")
    assert s.n == 5
    assert s.overall["mean"] == pytest.approx(0.65)
    assert s.overall["ci_low"] <= 0.65 <= s.overall["ci_high"]
    assert s.by_split["tool_calling"]["mean"] == pytest.approx(0.6125)
    assert s.by_split["interactive_agent"]["mean"] == pytest.approx(0.8)
    assert s.by_action_type["function_call"]["mean"] == pytest.approx(0.75)
    assert s.by_action_type["message"]["mean"] == pytest.approx(0.5)
    # the cached summary is the same
    assert run_summary(demo_store, "A").to_json() == s.to_json()


def test_taxonomy_counts(demo_store, runs):
    counts = taxonomy_counts(demo_store, runs[0])
    assert counts["correct"] == 2 and counts["hallucinated_tool"] == 1 and counts["argument_errors"] == 1
    assert counts["low_message_score"] == 1 and sum(counts.values()) == 5
    assert counts["wrong_tool"] == 0


def test_histogram_and_confusion(demo_store, runs):
    hist = reward_histogram(demo_store, runs[0])
    assert [h["n"] for h in hist] == [0, 0, 1, 0, 0, 1, 0, 1, 1, 1]
    assert hist[9] == {"low": 0.9, "high": 1.0, "n": 1}
    assert confusion(demo_store, runs[0]) == [
        {"expected_tool": "find_slots", "predicted_tool": "made_up_tool", "category": "hallucinated_tool", "n": 1}]
    full = confusion(demo_store, runs[0], errors_only=False)
    assert {(r["expected_tool"], r["predicted_tool"]): r["n"] for r in full} == {
        ("find_slots", "find_slots"): 2, ("find_slots", "made_up_tool"): 1}
    assert tool_names(demo_store, runs[0]) == ["find_slots"]


def test_failure_list_filters_and_paging(demo_store, runs, ids):
    page = failures(demo_store, runs[0])
    assert page.total == 3 == count_failures(demo_store, runs[0])
    assert count_failures(demo_store, runs[0], FailureFilter(split="tool_calling", reward_max=0.6)) == 2
    assert [r["dp_id"] for r in page.rows] == [ids["m1"], ids["c2"], ids["c3"]]  # lowest reward first
    page = failures(demo_store, runs[0], FailureFilter(split="tool_calling", reward_max=0.6))
    assert [r["dp_id"] for r in page.rows] == [ids["m1"], ids["c2"]]
    page = failures(demo_store, runs[0], FailureFilter(categories=["argument_errors"]))
    assert [(r["dp_id"], r["n_missing"], r["n_extra"], r["n_wrong_value"]) for r in page.rows] == [(ids["c3"], 1, 1, 1)]
    page = failures(demo_store, runs[0], FailureFilter(expected_tool="find_slots", reward_min=0.6))
    assert [r["dp_id"] for r in page.rows] == [ids["c3"]]
    page = failures(demo_store, runs[0], FailureFilter(categories=["correct"]), offset=1, limit=1)
    assert page.total == 2 and [r["dp_id"] for r in page.rows] == [ids["c1"]]  # 0.8 first, then 1.0
    page = failures(demo_store, runs[0], FailureFilter(categories=["correct"]), sort="-reward", limit=1)
    assert [r["dp_id"] for r in page.rows] == [ids["c1"]]


def test_failure_filter_sql_uses_parameters():
    where, params = FailureFilter(categories=["wrong_tool", "bogus"], split="x'; DROP", reward_min=0.1).where()
    assert where == "t.category IN (?) AND t.split = ? AND t.reward >= ?"
    assert params == ["wrong_tool", "x'; DROP", 0.1]


def test_compare_runs(demo_store, runs, ids):
    c = compare_runs(demo_store, "A", "B")
    assert (c.n_shared, c.n_only_a, c.n_only_b) == (4, 1, 1)
    assert (c.wins, c.losses, c.ties) == (1, 1, 2)
    assert c.mean_difference["mean"] == pytest.approx(0.0)
    assert c.mean_difference["ci_low"] < 0 < c.mean_difference["ci_high"]
    assert c.mean_a == pytest.approx((1 + 0.5 + 0.75 + 0.2) / 4) and c.mean_b == pytest.approx(c.mean_a)
    assert {r["dp_id"] for r in c.biggest} == {ids["c1"], ids["c2"]}
    assert all(abs(r["difference"]) == pytest.approx(0.5) for r in c.biggest)
    only_one = compare_runs(demo_store, "A", "B", top=1)  # equal |difference|: the first decision point by id
    assert [r["dp_id"] for r in only_one.biggest] == [min(ids["c1"], ids["c2"])]
    reverse = compare_runs(demo_store, "B", "A")
    assert (reverse.wins, reverse.losses) == (1, 1)


def test_compare_counts_a_consistent_winner(demo_store, ids):
    make_run(demo_store, "good", [(ids[k], message(0.9)) for k in ("m1", "m2", "m3")])
    make_run(demo_store, "bad", [(ids[k], message(0.1)) for k in ("m1", "m2", "m3")])
    c = compare_runs(demo_store, "good", "bad")
    assert (c.wins, c.losses, c.ties) == (3, 0, 0)
    assert c.mean_difference["mean"] == pytest.approx(0.8)
    assert c.mean_difference["ci_low"] == pytest.approx(0.8)  # every pair differs by exactly 0.8


def test_runs_table_report_and_lookups(demo_store, runs, ids):
    table = runs_table(demo_store)
    assert [r["run"] for r in table] == ["B", "A"]
    a = table[1]
    assert a["n"] == 5 and a["mean_reward"] == pytest.approx(0.65)
    assert a["split:tool_calling"] == pytest.approx(0.6125)
    rep = report(demo_store, "A")
    assert {"run", "n", "mean_reward", "by_split", "by_action_type", "taxonomy"} <= set(rep)
    assert rep["argument_errors"] == {"missing_key": 1, "extra_key": 1, "wrong_value": 1, "wrong_type": 0}
    p = prediction_for(demo_store, "A", ids["c2"])
    assert p["taxonomy"]["category"] == "hallucinated_tool" and p["breakdown"]["submitted_name"] == "made_up_tool"
    assert prediction_for(demo_store, "A", ids["m3"]) is None
    assert runs_with_prediction(demo_store, ids["c1"]) == ["B", "A"]
    assert runs_with_prediction(demo_store, ids["m2"]) == ["A"]


def test_delete_run_clears_every_derived_row(demo_store, runs):
    from nemo_core.runs.analysis import delete_run_with_analysis

    run_summary(demo_store, "A")
    cache = demo_store.scalar("PRAGMA cache_size")
    delete_run_with_analysis(demo_store, runs[0])
    assert demo_store.scalar("PRAGMA cache_size") == cache
    for table in ("predictions", "taxonomy_state", "run_summary_cache"):
        assert demo_store.scalar(f"SELECT count(*) FROM {table} WHERE run_id = ?", (runs[0],)) == 0
    assert not demo_store.scalar("SELECT 1 FROM sqlite_schema WHERE name = ?", (taxonomy_table(runs[0]),))
    assert [r["run"] for r in runs_table(demo_store)] == ["B"]


def test_a_run_still_being_written_is_not_classified_until_asked(demo_store, ids):
    from nemo_core.runs.run import get_run
    from nemo_core.runs.analysis import awaiting_taxonomy
    from nemo_core.runs.taxonomy import ensure_taxonomy

    run_id = create_run(demo_store, "live", kind="run-model", grader="keyword", rule_version="test")
    insert_predictions(demo_store, [prediction_row(run_id, ids["m1"], message(0.3), split="tool_calling",
                                                   action_type="message")])
    assert awaiting_taxonomy(demo_store, get_run(demo_store, run_id))
    row = runs_table(demo_store)[0]
    assert (row["run"], row["status"], row["n"], row["mean_reward"]) == ("live", "running", 1, None)
    assert not demo_store.scalar("SELECT 1 FROM taxonomy_state WHERE run_id = ?", (run_id,))
    ensure_taxonomy(demo_store, run_id)
    assert not awaiting_taxonomy(demo_store, get_run(demo_store, run_id))
    assert runs_table(demo_store)[0]["mean_reward"] == pytest.approx(0.3)
    insert_predictions(demo_store, [prediction_row(run_id, ids["m2"], message(0.9), split="interactive_agent",
                                                   action_type="message")])
    assert awaiting_taxonomy(demo_store, get_run(demo_store, run_id))  # grew since: stale again
    finish_run(demo_store, run_id)
    assert not awaiting_taxonomy(demo_store, get_run(demo_store, run_id))
    assert runs_table(demo_store)[0]["mean_reward"] == pytest.approx(0.6)
