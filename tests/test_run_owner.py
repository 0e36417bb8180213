"""The one owner of a run's life (`nemo_core.runs.owner`): created, stored in batches, finished however the work
ends, classified and summarised when it finishes; continued by another process only when its owner is gone."""

from __future__ import annotations

import os

import pytest

from nemo_core.grading.grade import grade_action, load_target
from nemo_core.runs.owner import RunOutcome, RunOwner
from nemo_core.runs.run import RunError, get_run, prediction_row
from nemo_core.runs.taxonomy import classification_fields, classify, taxonomy_is_current


@pytest.fixture
def graded(demo_store):
    """Five graded predictions: (row without run id, taxonomy fields)."""
    ids = [r["id"] for r in demo_store.query("SELECT id FROM decision_points WHERE action_type = 'message' "
                                             "AND flag_ungradeable = 0 ORDER BY id LIMIT 5")]
    out = []
    for dp_id in ids:
        target = load_target(demo_store, dp_id)
        b = grade_action(demo_store, target, {"type": "message", "content": "hello there"}, grader="keyword")
        row = prediction_row(0, dp_id, b, action={"type": "message", "content": "hello there"},
                             split=target.split, action_type=target.action_type)[1:]
        out.append((row, classification_fields(classify(b.to_json()), None)))
    return out


def stored(store, run_id: int) -> int:
    return store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", (run_id,))


def test_a_run_is_stored_in_batches_then_finished_classified_and_summarised(demo_store, graded):
    run = RunOwner.create(demo_store, "owned", kind="grade", grader="keyword", rule_version="x",
                          classify_as_stored=True, commit_rows=2)
    with run.lifetime(lambda: RunOutcome(n_lines=5, model="m-1")):
        for i, (row, tax) in enumerate(graded):
            run.add(row, tax)
            assert stored(demo_store, run.run_id) == (i + 1) // 2 * 2  # a commit every second prediction
    r = get_run(demo_store, run.run_id)
    assert (r.status, r.n_lines, r.n_predictions, r.model) == ("completed", 5, 5, "m-1")
    assert taxonomy_is_current(demo_store, run.run_id)  # the rows stored as graded, indexed at the end
    assert demo_store.scalar("SELECT count(*) FROM run_summary_cache WHERE run_id = ?", (run.run_id,)) == 1


@pytest.mark.parametrize("error, status", [(KeyboardInterrupt, "interrupted"), (ValueError, "failed")])
def test_a_run_stopped_by_an_error_keeps_what_it_stored_and_says_how_it_ended(demo_store, graded, error, status):
    run = RunOwner.create(demo_store, f"stopped-{status}", kind="grade", grader="keyword", rule_version="x")
    with pytest.raises(error):
        with run.lifetime():
            run.add(*graded[0])
            run.add(*graded[1])
            raise error()
    r = get_run(demo_store, run.run_id)
    assert (r.status, r.n_predictions) == (status, 2)  # the batch in hand was stored, then the run finished


def test_a_failure_of_the_last_commit_fails_the_run_and_is_raised(demo_store, graded, monkeypatch):
    import nemo_core.runs.owner as owner

    run = RunOwner.create(demo_store, "full-disk", kind="grade", grader="keyword", rule_version="x")
    monkeypatch.setattr(owner, "insert_numbered_predictions", lambda conn, rows: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(OSError, match="full"):
        with run.lifetime():
            run.add(*graded[0])
    assert get_run(demo_store, run.run_id).status == "failed"


def test_a_resumed_run_is_claimed_and_only_what_must_be_asked_again_is_dropped(demo_store, graded):
    run = RunOwner.create(demo_store, "resumable", kind="run-model", grader="keyword", rule_version="x")
    with run.lifetime():
        run.add(graded[0][0][:6] + ('{"error_kind": "timeout"}',) + graded[0][0][7:])  # the `extra` column
        run.add(*graded[1])
    ids = {graded[0][0][0], graded[1][0][0]}
    again, kept = RunOwner.resume(demo_store, run.run_id, "resumable", n_lines=9,
                                  redo=lambda extra: bool(extra) and "timeout" in extra)
    assert kept == ids - {graded[0][0][0]} and stored(demo_store, run.run_id) == 1
    r = get_run(demo_store, run.run_id)
    assert (r.status, r.n_lines, r.settings["process"]["pid"]) == ("running", 9, os.getpid())
    with pytest.raises(RunError, match="being run right now"):  # a second resume while this process runs it
        RunOwner.resume(demo_store, run.run_id, "resumable", n_lines=9, redo=lambda extra: False)
    with again.lifetime():
        pass
    assert get_run(demo_store, run.run_id).status == "completed"
