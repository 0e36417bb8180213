"""Campaigns on the demo database: seeded sampling, stratification, overlap and shared items, answering,
skipping, timing, progress, release of stale items, export and re-grading as a run."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import pytest

from nemo_core.people import campaigns as C
from nemo_core.grading.actions import ActionError
from nemo_core.people.baseline import campaign_results, export_rows, save_as_run, to_csv, to_jsonl
from nemo_core.data.filters import DecisionPointFilter
from nemo_core.runs.run import get_run

CALL = {"type": "function_call", "name": "nothing_like_this", "arguments": {"a": 1}}
MESSAGE = {"type": "message", "content": "Sure, I can help with that."}


def live_per_item(store, cid) -> Counter:
    return Counter(r["item_id"] for r in store.query(
        "SELECT item_id FROM campaign_answers WHERE campaign_id = ? AND status IN ('assigned', 'answered')", (cid,)))


# ---- sampling -------------------------------------------------------------------------------------------
def test_allocate_is_proportional_and_exact():
    assert C.allocate({"a": 50, "b": 30, "c": 20}, 10) == {"a": 5, "b": 3, "c": 2}
    # remainders 0.5 / 0.3 / 0.2 -> the extra draw goes to the largest remainder
    assert C.allocate({"a": 55, "b": 33, "c": 12}, 10) == {"a": 6, "b": 3, "c": 1}
    assert sum(C.allocate({"a": 7, "b": 1, "c": 1}, 5).values()) == 5
    assert C.allocate({"a": 2, "b": 1}, 99) == {"a": 2, "b": 1}  # never beyond a stratum
    assert C.allocate({"a": 0, "b": 0}, 5) == {"a": 0, "b": 0}


def test_sample_is_reproducible_with_a_seed(demo_store):
    flt = DecisionPointFilter()
    first = C.draw_sample(demo_store, flt, 30, seed=11, stratify=True, shared_share=0.2)
    again = C.draw_sample(demo_store, flt, 30, seed=11, stratify=True, shared_share=0.2)
    other = C.draw_sample(demo_store, flt, 30, seed=12, stratify=True, shared_share=0.2)
    assert first.ids == again.ids and first.shared == again.shared
    assert first.ids != other.ids
    assert len(set(first.ids)) == 30 and first.population == 180
    assert len(first.shared) == 6 and first.shared == set(first.ids[:6])
    # a campaign stores the same sample in the same order
    camp = C.create_campaign(demo_store, "c1", sample_size=30, seed=11, stratify=True, shared_share=0.2)
    stored = C.items(demo_store, camp.id)
    assert [r["dp_id"] for r in stored] == first.ids
    assert {r["dp_id"] for r in stored if r["shared"]} == first.shared


@pytest.mark.parametrize("query", [
    {}, {"exclude_flags": "ungradeable"}, {"split": "tool_calling", "exclude_flags": "parallel,ungradeable"},
    {"action_type": "function_call", "flags": "parallel"}, {"text": "balance", "exclude_flags": "empty_expected"},
])
def test_pool_is_exactly_what_store_ids_returns(demo_store, query):
    flt = DecisionPointFilter.from_query(query)
    rowids = demo_store.rowids(flt)
    ids = [demo_store.scalar("SELECT id FROM decision_points WHERE rowid = ?", (r,)) for r in rowids]
    assert ids == demo_store.ids(flt) and ids
    assert demo_store.ids_of_rowids(rowids[::-1]) == ids[::-1]  # in the order given


def test_stratified_sample_is_proportional(demo_store):
    counts = demo_store.counts()  # tool_calling 55 fc / 57 msg, interactive_agent 26 fc / 42 msg (180)
    sample = C.draw_sample(demo_store, DecisionPointFilter(), 90, seed=1, stratify=True)
    drawn = Counter(sample.strata.values())
    for split, by_type in counts.items():
        for action_type, n in by_type.items():
            key = C.stratum_of(split, action_type)
            assert abs(drawn[key] - 90 * n / 180) < 1, key
            assert sample.allocation[key] == {"population": n, "drawn": drawn[key]}
    # every id really is in its stratum
    for dp_id, key in sample.strata.items():
        row = demo_store.decision_point_row(dp_id)
        assert key == C.stratum_of(row["split"], row["action_type"])


def test_sample_respects_the_selection(demo_store):
    flt = DecisionPointFilter(split="interactive_agent", action_type="function_call")
    sample = C.draw_sample(demo_store, flt, 500, seed=5, stratify=True)
    assert sample.population == 26 and len(sample.ids) == 26  # all of them when fewer match
    assert set(sample.strata.values()) == {"interactive_agent × function_call"}
    camp = C.create_campaign(demo_store, "ia", selection=flt.to_query(), sample_size=10, seed=5)
    assert camp.filter == flt and camp.n_items == 10 and camp.n_population == 26
    with pytest.raises(C.CampaignError):
        C.create_campaign(demo_store, "ia", sample_size=10, seed=5)  # name taken
    with pytest.raises(C.CampaignError):
        C.create_campaign(demo_store, "none", selection={"tool": "no_such_tool"}, sample_size=3)


@pytest.mark.parametrize("query", [
    {}, {"exclude_flags": "ungradeable"}, {"split": "interactive_agent", "action_type": "message"},
    {"action_type": "function_call", "min_tools": "3", "exclude_flags": "ungradeable"}, {"tool": "no_such_tool"},
])
def test_selection_sizes_are_the_population_a_campaign_draws_from(demo_store, query):
    """Issue 19: the Campaigns page shows how many decision points match before Create; that figure is the
    population the campaign is then drawn from, stratum by stratum."""
    flt = DecisionPointFilter.from_query(query)
    sizes = C.selection_sizes(demo_store, flt)
    sample = C.draw_sample(demo_store, flt, 5, seed=3, stratify=True)
    assert sizes == {k: v["population"] for k, v in sample.allocation.items()}
    assert sum(sizes.values()) == sample.population == demo_store.count(flt)
    if sample.population:
        camp = C.create_campaign(demo_store, "sizes", selection=flt, sample_size=5, seed=3)
        assert camp.n_population == sum(sizes.values())


# ---- handing out ----------------------------------------------------------------------------------------
def test_overlap_and_shared_items_are_respected(demo_store):
    camp = C.create_campaign(demo_store, "ov", sample_size=12, seed=2, overlap=2, shared_share=0.25)
    shared = {r["id"] for r in C.items(demo_store, camp.id) if r["shared"]}
    assert len(shared) == 3
    people = ["ann", "bob", "cy", "dee"]
    handed: dict[str, list[str]] = {p: [] for p in people}
    active = True
    while active:
        active = False
        for who in people:
            a = C.next_item(demo_store, camp.id, who)
            if a is None:
                continue
            active = True
            handed[who].append(a.dp_id)
            C.submit_answer(demo_store, a.id, who, MESSAGE)
    per_item = live_per_item(demo_store, camp.id)
    for item_id, n in per_item.items():
        assert n == (4 if item_id in shared else 2), item_id
    assert len(per_item) == 12  # every item fully covered
    shared_ids = {r["dp_id"] for r in C.items(demo_store, camp.id) if r["shared"]}
    for who in people:
        assert shared_ids <= set(handed[who])  # every annotator gets every shared item
        assert handed[who][:3] == [r["dp_id"] for r in C.items(demo_store, camp.id) if r["shared"]]  # first
        assert len(handed[who]) == len(set(handed[who]))  # never the same item twice
    prog = C.progress(demo_store, camp.id)
    assert prog.answers == 9 * 2 + 3 * 4 == prog.target_answers and prog.fraction == 1.0
    assert all(p.remaining == 0 and p.done == len(handed[p.annotator]) for p in prog.annotators)


def test_open_item_is_returned_again_and_skip_frees_the_slot(demo_store):
    camp = C.create_campaign(demo_store, "sk", sample_size=2, seed=4, overlap=1)
    first = C.next_item(demo_store, camp.id, "ann", now=1000.0)
    assert C.next_item(demo_store, camp.id, " ann ", now=1005.0).id == first.id  # a rerun: same item
    second_person = C.next_item(demo_store, camp.id, "bob")
    assert second_person.dp_id != first.dp_id
    assert C.next_item(demo_store, camp.id, "cy") is None  # both items taken (overlap 1)
    with pytest.raises(C.CampaignError):
        C.skip_item(demo_store, first.id, "ann", "  ")  # a reason is required
    skipped = C.skip_item(demo_store, first.id, "ann", "needs domain knowledge", now=1012.5)
    assert skipped.status == "skipped" and skipped.seconds == pytest.approx(12.5)
    again = C.next_item(demo_store, camp.id, "cy")
    assert again.dp_id == first.dp_id  # the skipped slot went to someone else
    assert C.next_item(demo_store, camp.id, "ann") is None  # ann never gets it back
    with pytest.raises(C.AlreadySubmitted):
        C.submit_answer(demo_store, first.id, "ann", MESSAGE)
    with pytest.raises(C.CampaignError):
        C.submit_answer(demo_store, again.id, "ann", MESSAGE)  # not ann's


def test_submit_grades_times_and_stores(demo_store):
    camp = C.create_campaign(demo_store, "sub", selection={"action_type": "function_call", "exclude_flags":
                             "ungradeable,parallel"}, sample_size=3, seed=9, reveal_after_submit=True)
    a = C.next_item(demo_store, camp.id, "ann", now=2000.0)
    dp = demo_store.get(a.dp_id)
    call = dp.expected_calls[0]
    done = C.submit_answer(demo_store, a.id, "ann", {"type": "function_call", "name": call.name,
                                                      "arguments": call.arguments},
                           note="easy", confidence=5, now=2042.0)
    assert done.status == "answered" and done.reward == 1.0 and done.seconds == pytest.approx(42.0)
    assert done.breakdown["reason"] == "exact_match" and done.note == "easy" and done.confidence == 5
    b = C.next_item(demo_store, camp.id, "ann")
    with pytest.raises(ActionError):
        C.submit_answer(demo_store, b.id, "ann", {"type": "nonsense"})
    assert C.get_assignment(demo_store, b.id).status == "assigned"  # a rejected action changes nothing
    with pytest.raises(C.CampaignError):
        C.submit_answer(demo_store, b.id, "ann", MESSAGE, confidence=9)
    wrong = C.submit_answer(demo_store, b.id, "ann", MESSAGE)
    assert wrong.reward == 0.0 and wrong.breakdown["reason"] == "wrong_action_type"


def test_release_stale_and_late_submission(demo_store):
    camp = C.create_campaign(demo_store, "st", sample_size=1, seed=1, overlap=1)
    a = C.next_item(demo_store, camp.id, "ann", now=0.0)
    assert C.release_stale(demo_store, camp.id, 60, now=30 * 60) == 0
    assert C.release_stale(demo_store, camp.id, 60, now=61 * 60) == 1
    # released but nobody took it: ann's late answer is still stored
    late = C.submit_answer(demo_store, a.id, "ann", MESSAGE, now=62 * 60)
    assert late.status == "answered"
    camp2 = C.create_campaign(demo_store, "st2", sample_size=1, seed=1, overlap=1)
    a2 = C.next_item(demo_store, camp2.id, "ann", now=0.0)
    C.release_stale(demo_store, camp2.id, 1, now=3600)
    b2 = C.next_item(demo_store, camp2.id, "bob")
    assert b2.dp_id == a2.dp_id
    with pytest.raises(C.CampaignError, match="handed to someone else"):
        C.submit_answer(demo_store, a2.id, "ann", MESSAGE)
    assert max(live_per_item(demo_store, camp2.id).values()) == 1


def test_closed_campaign_hands_out_nothing(demo_store):
    camp = C.create_campaign(demo_store, "cl", sample_size=3, seed=1)
    C.set_status(demo_store, camp.id, "closed")
    assert C.next_item(demo_store, camp.id, "ann") is None
    assert C.list_campaigns(demo_store, status="open") == []


def test_names_and_passphrase():
    assert C.clean_annotator("  Ann   Lee ") == "Ann Lee"
    for bad in ("", "   ", "x" * 81):
        with pytest.raises(C.CampaignError):
            C.clean_annotator(bad)
    assert C.passphrase_ok(None, "") and C.passphrase_ok("", "anything")
    assert C.passphrase_ok("s3cret", "s3cret") and not C.passphrase_ok("s3cret", "s3cre")
    assert not C.passphrase_ok("s3cret", None)


# ---- results and export -----------------------------------------------------------------------------------
def test_export_and_regrade_as_a_run(demo_store, tmp_path):
    camp = C.create_campaign(demo_store, "ex", sample_size=6, seed=3, overlap=2, stratify=True)
    for who in ("ann", "bob"):
        for i in range(6):
            a = C.next_item(demo_store, camp.id, who)
            if i == 2:
                C.skip_item(demo_store, a.id, who, "unclear")
            else:
                C.submit_answer(demo_store, a.id, who, MESSAGE if i % 2 else CALL, note=f"n{i}", confidence=3)
    rows = export_rows(demo_store, camp.id)
    assert len(rows) == 12 and Counter(r["status"] for r in rows) == {"answered": 10, "skipped": 2}
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(parsed) == 12 and parsed[0]["campaign"] == "ex"
    assert {"id", "annotator", "action", "breakdown", "seconds", "note", "confidence"} <= set(parsed[0])
    # issue 19: seconds in tenths (a raw timer difference printed 17.412691354751587)
    assert all(r["seconds"] is None or r["seconds"] == round(r["seconds"], 1) for r in rows)
    assert all(len(p["seconds"].partition(".")[2]) <= 1 for p in parsed)
    lines = [json.loads(x) for x in to_jsonl(rows).splitlines()]
    assert len(lines) == 10 and all({"id", "action", "annotator"} <= set(x) for x in lines)
    ann = [x for x in lines if x["annotator"] == "ann"]
    result = save_as_run(demo_store, camp.id, "ann", tmp_path)
    assert result.n_problems == 0 and result.n_graded + result.n_ungraded == len(ann)
    run = get_run(demo_store, result.run_id)
    assert run.kind == "human"
    regraded = {r["dp_id"]: r["reward"] for r in demo_store.query(
        "SELECT dp_id, reward FROM predictions WHERE run_id = ?", (result.run_id,))}
    assert regraded == {x["id"]: x["reward"] for x in ann}
    res = campaign_results(demo_store, camp.id)
    assert res.n_answers == 10 and res.n_skips == 2 and set(res.by_annotator) == {"ann", "bob"}


def test_allocate_ties_go_to_the_stratum_listed_first():
    # quotas 1.5 / 1.5 / 0: an exact tie of remainders, broken by order (floats could break it either way)
    assert C.allocate({"a": 1, "b": 1, "c": 0}, 1) == {"a": 1, "b": 0, "c": 0}
    assert C.allocate({"b": 3, "a": 3}, 3) == {"b": 2, "a": 1}


def test_compare_with_a_model_run(demo_store, tmp_path):
    from nemo_core.people.baseline import compare_with_run
    from nemo_core.runs.grade_file import grade_file

    camp = C.create_campaign(demo_store, "vs", selection={"action_type": "function_call",
                             "exclude_flags": "ungradeable,parallel"}, sample_size=4, seed=2, overlap=2)
    perfect = {}
    for who in ("ann", "bob"):
        for _ in range(4):
            a = C.next_item(demo_store, camp.id, who)
            call = demo_store.get(a.dp_id).expected_calls[0]
            exact = {"type": "function_call", "name": call.name, "arguments": call.arguments}
            # ann is always right, bob always calls the wrong tool with the right arguments (0.5)
            C.submit_answer(demo_store, a.id, who, exact if who == "ann" else {**exact, "name": "zzz"})
            perfect[a.dp_id] = exact
    # the model: right on 3 items, a message (0) on the last; one campaign item it never saw is not paired
    ids = sorted(perfect)
    lines = [{"id": i, "action": perfect[i]} for i in ids[:2]] + [{"id": ids[2], "action": {"type": "message",
                                                                                              "content": "x"}}]
    path = tmp_path / "model.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    grade_file(demo_store, path, run_name="model-a", grader="keyword")
    cmp = compare_with_run(demo_store, camp.id, "model-a")
    assert cmp.n_items == 4 and cmp.n_paired == 3
    assert cmp.human.mean == pytest.approx(0.75)  # every item: (1 + 0.5) / 2
    assert cmp.model.mean == pytest.approx(2 / 3)
    assert cmp.difference.mean == pytest.approx(2 / 3 - 0.75)
    assert cmp.difference.low <= cmp.difference.mean <= cmp.difference.high
