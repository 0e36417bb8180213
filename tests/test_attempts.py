"""Attempts (nemo_core/people/attempts.py): saved, listed newest first per decision point, failures kept."""

from __future__ import annotations

import pytest

from nemo_core.people.attempts import (AttemptError, count_attempts, delete_attempt, get_attempt, list_attempts,
                                       save_attempt)
from nemo_core.grading.grade import Breakdown, grade_action
from nemo_core.data.store import Store

CALL_DP = "interactive_agent/synth-b81d1299-b213-6003-cf00484b/12"
OTHER_DP = "interactive_agent/synth-b81d1299-b213-6003-cf00484b/2"


def test_table_exists_in_every_opened_store(empty_store):
    assert empty_store.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'attempts'") == 1


def test_save_and_list_round_trip_with_the_breakdown(demo_store):
    dp = demo_store.get(CALL_DP)
    action = {"type": "function_call", "name": "transfer_funds",
              "arguments": {"from_account": "CHK-009", "to_account": "SAV-00A", "amount": 250}}
    breakdown = grade_action(demo_store, dp, action)
    first = save_attempt(demo_store, CALL_DP, who="ada", kind="human", action=action, breakdown=breakdown)
    second = save_attempt(demo_store, CALL_DP, who="fake-model", kind="model", action=None,
                          extra={"error_kind": "timeout", "error": "no reply within 1 s"})
    save_attempt(demo_store, OTHER_DP, who="bob", kind="human", action={"type": "message", "content": "hi"})
    attempts = list_attempts(demo_store, CALL_DP)
    assert [a.id for a in attempts] == [second, first]  # newest first, only this decision point
    human = attempts[1]
    assert human.who == "ada" and human.kind == "human" and human.action == action
    assert human.reward == breakdown.reward == 0.8 and human.reason.startswith("argument_mismatch")
    assert Breakdown.from_json(human.breakdown).keys == breakdown.keys
    assert human.created_at.endswith("+00:00")
    assert human.summary().startswith("transfer_funds(")
    failed = attempts[0]
    assert failed.action is None and failed.reward is None and failed.error == "no reply within 1 s"
    assert failed.summary() == "failed: timeout"
    assert count_attempts(demo_store, CALL_DP) == 2
    assert get_attempt(demo_store, first).who == "ada"
    delete_attempt(demo_store, first)
    assert count_attempts(demo_store, CALL_DP) == 1


def test_persisted_across_reopening(demo_db):
    with Store.open(demo_db) as store:
        save_attempt(store, CALL_DP, who="ada", kind="human", action={"type": "message", "content": "x"})
    with Store.open(demo_db) as store:
        assert list_attempts(store, CALL_DP)[0].action == {"type": "message", "content": "x"}


@pytest.mark.parametrize("who, kind", [("", "human"), ("   ", "model"), ("ada", "robot")])
def test_rejects_no_who_or_unknown_kind(demo_store, who, kind):
    with pytest.raises(AttemptError):
        save_attempt(demo_store, CALL_DP, who=who, kind=kind, action=None)
    assert count_attempts(demo_store, CALL_DP) == 0


def test_message_summary_is_one_cut_line(demo_store):
    save_attempt(demo_store, CALL_DP, who="ada", kind="human", action={"type": "message", "content": "a\nb " * 60})
    summary = list_attempts(demo_store, CALL_DP)[0].summary()
    assert summary.startswith("message: a b a b") and "\n" not in summary and summary.endswith("…")
