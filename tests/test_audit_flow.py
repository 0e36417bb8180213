"""The whole audit flow on the demo database, with the real `openai` client talking to a real
OpenAI-compatible server on 127.0.0.1 (tests/fake_openai.py): build, estimate, grade, stop midway,
resume without calling again, failures, agreement, human judgements."""

from __future__ import annotations

import json
import re

import pytest

from fake_openai import Reply, fake_openai  # noqa: F401  (fixture)
from nemo_core.people.audit.sets import AuditError, delete_audit_set, set_counts
from nemo_core.people.audit.agreement import agreement
from nemo_core.people.audit.scores import audit_rows, human_judgements, next_blind_item, record_human
from nemo_core.people.audit.build import build_audit_set, campaigns_available
from nemo_core.people.audit.grading import estimate, grade_audit_set
from nemo_core.runs.grade_file import grade_file
from nemo_core.grading.keyword_grader import keywords
from nemo_core.grading.endpoint import EndpointConfig
from nemo_core.grading.llm_grader import LLMGrader

FENCE = re.compile(r"<<<FENCE (\w+)\n(.*?)\nFENCE>>> \1", re.S)


def judge(request) -> Reply:
    """A deterministic 'model': 10 for the reference itself, 0 when no keyword is shared, else 5."""
    text = request.body["messages"][-1]["content"]
    parts = {label: body for label, body in FENCE.findall(text)}
    reference, candidate = parts["REFERENCE"].strip(), parts["CANDIDATE"].strip()
    if candidate == reference:
        score = 10
    elif not keywords(candidate) & keywords(reference):
        score = 0
    else:
        score = 5
    return Reply.json({"score": score, "reason": f"judged {score}"})


@pytest.fixture
def server(fake_openai):  # noqa: F811
    fake_openai.responder = judge
    return fake_openai


def grader_for(server, store, model: str = "gpt-5-mini") -> LLMGrader:
    return LLMGrader(EndpointConfig(api_key="sk-test-audit", base_url=server.base_url, model=model, backoff_base=0.01,
                                    backoff_max=0.02), store)


def test_calibration_set_has_ceiling_floor_and_half(demo_store):
    built = build_audit_set(demo_store, "calibration", limit=6, seed=3)
    assert built.n_added == built.n_items == 18
    assert built.skipped == {"empty reference": 1}
    rows = audit_rows(demo_store, built.audit_set.id)
    by_kind: dict[str, list] = {}
    for r in rows:
        by_kind.setdefault(r.kind, []).append(r)
    assert {k: len(v) for k, v in by_kind.items()} == {"reference": 6, "half_reference": 6, "other_conversation": 6}
    assert all(r.keyword == 1.0 for r in by_kind["reference"])
    references = {r.dp_id: r.candidate for r in by_kind["reference"]}
    for r in by_kind["half_reference"]:
        assert references[r.dp_id].strip().startswith(r.candidate) and len(r.candidate) < len(references[r.dp_id])
    for r in by_kind["other_conversation"]:
        assert r.source_dp_id and r.source_dp_id.split("/")[1] != r.dp_id.split("/")[1]  # another conversation
        assert r.candidate == demo_store.get(r.source_dp_id).expected_content
    # the same seed and limit give the same set; a larger limit extends it
    again = build_audit_set(demo_store, "calibration", limit=6, seed=3)
    assert again.n_added == 0 and again.n_items == 18
    more = build_audit_set(demo_store, "calibration", limit=8, seed=3)
    assert more.n_added == 6 and more.n_items == 24
    with pytest.raises(AuditError, match="another source or seed"):
        build_audit_set(demo_store, "calibration", limit=6, seed=4)


def test_estimate_grade_stop_and_resume_without_calling_again(demo_store, server, monkeypatch):
    monkeypatch.setattr("nemo_core.people.audit.sets.LOAD_CHUNK", 5)  # contexts loaded five at a time: several chunks
    audit_set = build_audit_set(demo_store, "calibration", limit=8).audit_set
    grader = grader_for(server, demo_store)
    plan = estimate(demo_store, audit_set.id, grader.model)
    assert (plan.n_items, plan.n_scored, plan.n_to_grade, plan.n_cached, plan.n_calls) == (24, 0, 24, 0, 24)

    seen: list[tuple[int, int]] = []
    first = grade_audit_set(demo_store, audit_set.id, grader, concurrency=2, on_progress=lambda d, t: seen.append((d, t)),
                            should_stop=lambda: bool(seen) and seen[-1][0] >= 5)
    assert first.stopped
    assert 5 <= first.n_graded < 24 and first.n_failed == 0
    assert seen[0] == (0, 24)
    calls_so_far = len(server.completion_requests)
    assert calls_so_far == first.n_requests == first.n_graded  # every answer that was paid for is stored
    assert set_counts(demo_store, audit_set.id)["llm_scored"] == first.n_graded

    plan = estimate(demo_store, audit_set.id, grader.model)
    assert (plan.n_scored, plan.n_to_grade, plan.n_calls) == (first.n_graded, 24 - first.n_graded, 24 - first.n_graded)

    second = grade_audit_set(demo_store, audit_set.id, grader, concurrency=4)
    assert not second.stopped and second.n_graded == 24 - first.n_graded
    assert len(server.completion_requests) == 24  # nothing asked twice
    third = grade_audit_set(demo_store, audit_set.id, grader)
    assert (third.n_graded, third.n_requests) == (0, 0)

    figures = agreement(audit_rows(demo_store, audit_set.id), threshold=0.5)
    assert figures.n == 24
    kinds = {g.group: g.agreement for g in figures.by_kind}
    assert kinds["reference"].mean_b == 1.0 and kinds["reference"].mean_a == 1.0
    assert kinds["half_reference"].mean_b == 0.5
    assert figures.pearson > 0.8 and figures.spearman > 0.8
    assert figures.best is not None and 0 < figures.best.threshold < 1


def test_cache_hits_are_free_and_counted(demo_store, server):
    first = build_audit_set(demo_store, "calibration", limit=3).audit_set
    grader = grader_for(server, demo_store)
    grade_audit_set(demo_store, first.id, grader)
    assert len(server.completion_requests) == 9
    twin = build_audit_set(demo_store, "calibration", limit=3, name="twin").audit_set  # same items, new set
    plan = estimate(demo_store, twin.id, grader.model)
    assert (plan.n_to_grade, plan.n_cached, plan.n_calls) == (9, 9, 0)
    result = grade_audit_set(demo_store, twin.id, grader)
    assert (result.n_graded, result.n_cached, result.n_requests) == (9, 9, 0)
    assert len(server.completion_requests) == 9
    # another model is another question: not a cache hit, and the set refuses to mix models
    other = grader_for(server, demo_store, model="other-model")
    assert estimate(demo_store, twin.id, other.model).n_cached == 0
    with pytest.raises(AuditError, match="was graded with gpt-5-mini"):
        grade_audit_set(demo_store, twin.id, other)


def test_a_failed_call_is_not_a_zero_and_is_retried(demo_store, server):
    audit_set = build_audit_set(demo_store, "calibration", limit=2).audit_set
    grader = grader_for(server, demo_store)
    server.script(Reply.error(400, "bad request"))  # not retried: the first item fails
    result = grade_audit_set(demo_store, audit_set.id, grader, concurrency=1)
    assert (result.n_graded, result.n_failed) == (5, 1)
    assert "HTTP 400" in result.errors[0] and "sk-test-audit" not in result.errors[0]
    rows = audit_rows(demo_store, audit_set.id)
    failed = [r for r in rows if r.llm_error]
    assert len(failed) == 1 and failed[0].llm is None
    figures = agreement(rows)
    assert (figures.n, figures.n_llm_failed) == (5, 1)
    assert estimate(demo_store, audit_set.id, grader.model).n_calls == 1
    retry = grade_audit_set(demo_store, audit_set.id, grader)
    assert (retry.n_graded, retry.n_failed) == (1, 0)
    assert agreement(audit_rows(demo_store, audit_set.id)).n == 6


def test_audit_of_a_run(demo_store, server, tmp_path, monkeypatch):
    monkeypatch.setattr("nemo_core.people.audit.sets.LOAD_CHUNK", 1)
    messages = demo_store.query("SELECT id FROM decision_points WHERE action_type = 'message' AND flag_empty_expected = 0 "
                                "ORDER BY id LIMIT 3")
    empty = demo_store.query("SELECT id FROM decision_points WHERE flag_empty_expected = 1 LIMIT 1")[0]["id"]
    ids = [m["id"] for m in messages]
    reference = demo_store.get(ids[0]).expected_content
    lines = [
        {"id": ids[0], "action": {"type": "message", "content": reference}},
        {"id": ids[1], "action": {"type": "message", "content": "zzz qqq"}},
        {"id": ids[2], "action": {"type": "function_call", "name": "lookup", "arguments": {}}},  # not a message
        {"id": empty, "action": {"type": "message", "content": "hello"}},
    ]
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    grade_file(demo_store, path, run_name="m1", grader="keyword")
    built = build_audit_set(demo_store, "run", run="m1")
    assert built.audit_set.name == "run:m1" and built.n_items == 2
    assert built.skipped == {"not a message reply (a call, or no valid action)": 1, "empty reference": 1}
    grade_audit_set(demo_store, built.audit_set.id, grader_for(server, demo_store))
    rows = {r.dp_id: r for r in audit_rows(demo_store, built.audit_set.id)}
    assert (rows[ids[0]].keyword, rows[ids[0]].llm) == (1.0, 1.0)
    assert (rows[ids[1]].keyword, rows[ids[1]].llm) == (0.0, 0.0)
    with pytest.raises(AuditError, match="no run"):
        build_audit_set(demo_store, "run", run="nope")


def test_blind_human_judgements(demo_store):
    audit_set = build_audit_set(demo_store, "calibration", limit=2).audit_set
    first = next_blind_item(demo_store, audit_set.id, "ann")
    assert first is not None and first.kind == "hidden" and first.llm is None  # nothing that gives the score away
    record_human(demo_store, first.item_id, "ann", 7)
    second = next_blind_item(demo_store, audit_set.id, "ann")
    assert second.item_id != first.item_id
    assert next_blind_item(demo_store, audit_set.id, "bob").item_id == first.item_id  # per rater
    record_human(demo_store, first.item_id, "bob", 9)
    record_human(demo_store, first.item_id, "ann", 8)  # a second judgement replaces the first
    rows = {r.item_id: r for r in audit_rows(demo_store, audit_set.id)}
    assert rows[first.item_id].human == pytest.approx(0.85) and rows[first.item_id].n_human == 2
    assert len(human_judgements(demo_store, audit_set.id)) == 2
    assert set_counts(demo_store, audit_set.id)["human_judged"] == 1
    for bad in (11, -1, 5.5, True):
        with pytest.raises(AuditError):
            record_human(demo_store, first.item_id, "ann", bad)
    with pytest.raises(AuditError, match="name"):
        record_human(demo_store, first.item_id, "  ", 5)
    figures = agreement(list(rows.values()))
    assert figures.n_human == 1 and figures.human[1].n == 1
    delete_audit_set(demo_store, audit_set.id)
    assert demo_store.scalar("SELECT count(*) FROM audit_human") == 0
    assert demo_store.scalar("SELECT count(*) FROM audit_items") == 0


def insert_campaign(store, name: str, n_items: int) -> None:
    """A campaign whose first `n_items` message decision points were answered by 'ann' and 'bob' with the same
    reply, written straight into the campaign tables (their sampling is tested in the campaign's own files)."""
    ids = [r["id"] for r in store.query(
        "SELECT id FROM decision_points WHERE action_type = 'message' AND flag_empty_expected = 0 ORDER BY id LIMIT ?",
        (n_items,))]
    now = "2026-01-01T00:00:00+00:00"
    with store.transaction() as conn:
        cid = conn.execute("INSERT INTO campaigns(name, selection, sample_size, seed, stratify, overlap, shared_share, "
                           "reveal_after_submit, n_items, n_population, created_at) VALUES (?, '{}', ?, 1, 0, 2, 0, 1, ?, ?, ?)",
                           (name, n_items, n_items, n_items, now)).lastrowid
        for pos, dp_id in enumerate(ids):
            item = conn.execute("INSERT INTO campaign_items(campaign_id, position, dp_id, split, action_type, stratum) "
                                "VALUES (?, ?, ?, ?, 'message', 'x')", (cid, pos, dp_id, dp_id.split("/")[0])).lastrowid
            for who in ("ann", "bob"):
                conn.execute("INSERT INTO campaign_answers(campaign_id, item_id, dp_id, annotator, status, action, "
                             "shown_at, shown_ts) VALUES (?, ?, ?, ?, 'answered', ?, ?, 0)",
                             (cid, item, dp_id, who, json.dumps({"type": "message", "content": "the same answer"}), now))


def test_campaign_answers_as_a_source(demo_store, server):
    from nemo_core.people import campaigns

    assert campaigns_available(demo_store) == []
    with pytest.raises(AuditError, match="no campaign"):
        build_audit_set(demo_store, "campaign", campaign="none")
    insert_campaign(demo_store, "c1", n_items=2)
    assert campaigns is not None and campaigns_available(demo_store)[0]["n"] == 4
    built = build_audit_set(demo_store, "campaign", campaign="c1", limit=1)
    assert built.audit_set.name == "campaign:c1" and built.n_items == 2  # one decision point, two people
    assert {r.kind for r in audit_rows(demo_store, built.audit_set.id)} == {"human"}
    # two people gave the same reply: one question, so one API call
    grader = grader_for(server, demo_store)
    plan = estimate(demo_store, built.audit_set.id, grader.model)
    assert (plan.n_to_grade, plan.n_cached, plan.n_calls) == (2, 1, 1)
    result = grade_audit_set(demo_store, built.audit_set.id, grader, concurrency=1)
    assert (result.n_graded, result.n_cached, result.n_requests) == (2, 1, 1)


def test_a_campaign_answer_that_is_a_call_is_left_out_and_counted(demo_store):
    """A person who answered a message item with a tool call has no reply to audit: left out, said why."""
    insert_campaign(demo_store, "c2", n_items=2)
    call = json.dumps({"type": "function_call", "name": "lookup", "arguments": {}})
    with demo_store.transaction() as conn:
        conn.execute("UPDATE campaign_answers SET action = ? WHERE annotator = 'bob' AND id = "
                     "(SELECT min(id) FROM campaign_answers WHERE annotator = 'bob')", (call,))
    built = build_audit_set(demo_store, "campaign", campaign="c2")
    assert built.skipped == {"not a message reply": 1}
    assert built.n_items == 3  # two decision points × two people, less bob's call
