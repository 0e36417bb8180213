"""Statistics of the human baseline on hand-checked tables: bootstrap CIs (seeded), Cohen's and Fleiss' kappa,
pairwise argument agreement, agreement and disagreement summaries over answer rows."""

from __future__ import annotations

import json

import pytest

from nemo_core.people.baseline import (agreement_of, argument_agreement, disagreements_of, expected_labels,
                                       item_means, results_from_rows, tool_label)
from nemo_core.base.metrics import cohen_kappa, fleiss_kappa, fleiss_kappa_labels, mean_ci

# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories; kappa = 0.210
# (P-bar = 0.378, P_e = 0.213).
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_textbook_example():
    assert fleiss_kappa(FLEISS_WIKIPEDIA) == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_kappa_small_table_by_hand():
    # P_i = 1, 1, 0, 1 -> P-bar = 0.75; p = (5/8, 3/8) -> P_e = 34/64; kappa = (0.75 - 34/64) / (30/64) = 7/15
    assert fleiss_kappa([[2, 0], [0, 2], [1, 1], [2, 0]]) == pytest.approx(7 / 15)
    # the same from labels, and items with one rater are left out
    assert fleiss_kappa_labels([["a", "a"], ["b", "b"], ["a", "b"], ["a", "a"], ["b"]]) == pytest.approx(7 / 15)


def test_fleiss_kappa_edges():
    assert fleiss_kappa([[1, 0], [0, 1]]) is None  # nobody has two raters
    assert fleiss_kappa([[3, 0], [2, 0]]) == 1.0  # one category only, all agree
    perfect = fleiss_kappa([[3, 0, 0], [0, 3, 0], [0, 0, 3]])
    assert perfect == pytest.approx(1.0)
    # systematic disagreement is below chance
    assert fleiss_kappa([[1, 1], [1, 1], [1, 1]]) < 0


def test_cohen_kappa_textbook_example():
    # Wikipedia, "Cohen's kappa": 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5, 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_bootstrap_ci_reproducible_with_a_seed():
    values = [0.0, 0.5, 1.0, 1.0, 0.25, 0.75, 0.0, 1.0, 0.5, 0.5, None]
    first = mean_ci(values, seed=7)
    assert first == mean_ci(values, seed=7)
    assert first.n == 10 and first.n_ungraded == 1
    assert first.mean == pytest.approx(5.5 / 10)
    assert first.low < first.mean < first.high
    # the seed matters (with many distinct values the resampled means rarely tie at the quantiles)
    spread = [i / 97 for i in range(60)]
    assert mean_ci(spread, seed=1) == mean_ci(spread, seed=1)
    assert (mean_ci(spread, seed=1).low, mean_ci(spread, seed=1).high) != (mean_ci(spread, seed=2).low,
                                                                            mean_ci(spread, seed=2).high)


def test_argument_agreement_by_hand():
    # keys x, y, z: x equal by value (1 == 1.0), y equal after trimming, z only on one side -> 2/3
    assert argument_agreement({"x": 1, "y": "a "}, {"x": 1.0, "y": "a", "z": 2}) == pytest.approx(2 / 3)
    assert argument_agreement({}, {}) == 1.0
    assert argument_agreement({"x": "1"}, {"x": 1}) == 0.0  # "1" != 1 (SPEC §4)
    assert argument_agreement("not an object", {"x": 1}) == 0.0


def _row(dp_id, who, kind, name=None, args=None, *, expected_type="function_call", expected_tools="get_weather",
         reward=1.0, seconds=10.0, split="tool_calling", status="answered"):
    action = ({"type": "message", "content": "hi"} if kind == "message"
              else {"type": "function_call", "name": name, "arguments": args or {}})
    return {"dp_id": dp_id, "annotator": who, "status": status, "submitted_type": kind,
            "submitted_name": name if kind == "function_call" else "submit_message", "action": json.dumps(action),
            "reward": reward, "seconds": seconds, "split": split, "action_type": expected_type,
            "expected_tools": expected_tools if expected_type == "function_call" else None}


def two_annotator_rows():
    return [
        # item 1: both call get_weather; args agree on 1 of 2 keys
        _row("d1", "ann", "function_call", "get_weather", {"city": "Paris", "unit": "C"}, reward=1.0, seconds=10),
        _row("d1", "bob", "function_call", "get_weather", {"city": "Paris", "unit": "F"}, reward=0.75, seconds=20),
        # item 2: a message item; both send messages
        _row("d2", "ann", "message", expected_type="message", reward=0.5, seconds=30),
        _row("d2", "bob", "message", expected_type="message", reward=0.25, seconds=40),
        # item 3: ann calls, bob sends a message; expected get_weather
        _row("d3", "ann", "function_call", "get_weather", {"city": "Rome"}, reward=0.5, seconds=50),
        _row("d3", "bob", "message", reward=0.0, seconds=60),
        # item 4: only ann (no overlap)
        _row("d4", "ann", "function_call", "search", {"q": "x"}, reward=0.0, seconds=70, split="interactive_agent"),
    ]


def test_agreement_two_annotators_uses_cohen():
    ag = agreement_of(two_annotator_rows())
    assert ag.n_items == 3 and ag.n_pairs == 3 and ag.annotators == ["ann", "bob"]
    assert ag.same_type == pytest.approx(2 / 3)
    assert ag.same_tool == pytest.approx(2 / 3)
    assert ag.kappa_method == "cohen"
    # types: ann (fc, msg, fc), bob (fc, msg, msg): p_o = 2/3, p_e = (2*1 + 1*2)/9 = 4/9 -> (2/3-4/9)/(5/9) = 0.4
    assert ag.kappa_type == pytest.approx(0.4)
    assert ag.arg_agreement == pytest.approx(0.5) and ag.n_arg_pairs == 1


def test_agreement_three_annotators_uses_fleiss():
    rows = two_annotator_rows() + [
        _row("d1", "cy", "function_call", "get_weather", {"city": "Paris", "unit": "C"}),
        _row("d2", "cy", "function_call", "get_weather", {}, expected_type="message"),
    ]
    ag = agreement_of(rows)
    assert ag.kappa_method == "fleiss" and ag.annotators == ["ann", "bob", "cy"]
    # types per item: d1 (fc, fc, fc), d2 (msg, msg, fc), d3 (fc, msg)
    expected = fleiss_kappa([[3, 0], [1, 2], [1, 1]])
    assert ag.kappa_type == pytest.approx(expected)
    # d1 now has 3 pairs of get_weather calls: (ann,bob) 1/2, (ann,cy) 1, (bob,cy) 1/2
    assert ag.n_arg_pairs == 3 and ag.arg_agreement == pytest.approx(2 / 3)


def test_no_overlap_no_agreement():
    ag = agreement_of([_row("d1", "ann", "message", expected_type="message")])
    assert ag.n_items == 0 and ag.kappa_type is None and ag.same_tool is None


def test_item_means_count_each_item_once():
    rows = [_row("d1", "a", "message", reward=1.0), _row("d1", "b", "message", reward=0.0),
            _row("d1", "c", "message", reward=1.0), _row("d2", "a", "message", reward=None)]
    means = {m["dp_id"]: m for m in item_means(rows)}
    assert means["d1"]["reward"] == pytest.approx(2 / 3) and means["d1"]["n_answers"] == 3
    assert means["d2"]["reward"] is None  # ungraded, not 0
    res = results_from_rows(rows, seed=1)
    assert res.overall.n == 1 and res.overall.n_ungraded == 1 and res.overall.mean == pytest.approx(2 / 3)
    assert res.overall.low == res.overall.high == pytest.approx(2 / 3)  # one item: nothing to resample


def test_labels():
    assert tool_label(_row("d", "a", "message")) == "submit_message"
    assert tool_label(_row("d", "a", "function_call", "f")) == "f"
    assert tool_label({**_row("d", "a", "function_call", "f"), "status": "skipped"}) is None
    assert expected_labels({"action_type": "function_call", "expected_tools": "a b"}) == ["a", "b"]
    assert expected_labels({"action_type": "message"}) == ["submit_message"]


def test_disagreements_rank_items_against_the_reference():
    rows = two_annotator_rows() + [
        # item 5: both humans agree with each other on another tool: a consensus against the reference
        _row("d5", "ann", "function_call", "other_tool", reward=0.0),
        _row("d5", "bob", "function_call", "other_tool", reward=0.0),
    ]
    found = disagreements_of(rows)
    assert [d.dp_id for d in found] == ["d5", "d4", "d3"]  # share 1 (2 answers), share 1 (1 answer), share 1/2
    assert found[0].consensus == "other_tool" and found[0].share == 1.0
    assert found[2].n_disagree == 1 and found[2].labels == {"get_weather": 1, "submit_message": 1}
    assert found[2].mean_reward == pytest.approx(0.25)


def test_results_groups_times_and_seeded_cis():
    rows = two_annotator_rows() + [{**_row("d5", "bob", "message"), "status": "skipped", "reward": None,
                                    "submitted_type": None, "seconds": 5.0}]
    res = results_from_rows(rows, seed=3)
    assert res.n_answers == 7 and res.n_skips == 1
    # items first: d1 (1 + .75)/2, d2 (.5 + .25)/2, d3 (.5 + 0)/2, d4 0 -> (.875 + .375 + .25 + 0) / 4 items
    assert res.overall.mean == pytest.approx(1.5 / 4) and res.overall.n == 4
    assert set(res.by_split) == {"tool_calling", "interactive_agent"}
    assert res.by_split["interactive_agent"].mean == 0.0 and res.by_split["interactive_agent"].n == 1
    assert res.by_split["tool_calling"].mean == pytest.approx(1.5 / 3)
    assert res.by_action_type["message"].mean == pytest.approx(0.375) and res.by_action_type["message"].n == 1
    assert res.by_annotator["ann"].mean == pytest.approx(0.5) and res.by_annotator["ann"].n == 4
    assert res.by_annotator["bob"].mean == pytest.approx(1.0 / 3)
    assert res.time_by_annotator["ann"].median == 40 and res.time_by_annotator["bob"].mean == 40
    assert res.time_overall.median == 40
    assert res.skips_by_annotator == {"bob": 1}
    again = results_from_rows(rows, seed=3)
    assert (again.overall.low, again.overall.high) == (res.overall.low, res.overall.high)
    assert {r["group"] for r in res.table()} == {"overall", "split", "action type", "annotator"}
