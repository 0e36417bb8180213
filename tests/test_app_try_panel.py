"""The "Try" panel on the decision point page and the reward breakdown component, through AppTest.

A model's answer is asked of a real OpenAI-compatible server on 127.0.0.1 (tests/fake_openai.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_runner import run_app_page
from fake_openai import Reply, fake_openai  # noqa: F401  (fixture)
from nemo_core.people.attempts import list_attempts
from nemo_core.data.store import Store

CALL_DP = "interactive_agent/synth-b81d1299-b213-6003-cf00484b/12"  # transfer_funds, 5 arguments
MESSAGE_DP = "interactive_agent/synth-b81d1299-b213-6003-cf00484b/4"
TYPED_KEY = "sk-typed-in-the-page-9f8e7d"


@pytest.fixture
def open_dp(demo_db, monkeypatch):
    monkeypatch.setenv("NEMO_DB", str(demo_db))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    def run(dp_id: str) -> AppTest:
        return run_app_page("app_pages/decision_point.py", {"id": dp_id})

    return run


def click(at: AppTest, label: str) -> None:
    [b for b in at.button if b.label == label][0].click().run()
    assert not at.exception, [e.value for e in at.exception]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def keys_table(at: AppTest):
    frames = [d.value for d in at.dataframe if "status" in getattr(d.value, "columns", [])]
    assert frames, "no key table"
    return frames[0]


def test_human_call_is_graded_shown_and_saved(open_dp, demo_db):
    at = open_dp(CALL_DP)
    assert any(s.value == "Try an answer" for s in at.subheader)
    at.text_input(key="try::who").input("ada")
    at.selectbox(key=f"try::tool::{CALL_DP}").set_value("transfer_funds").run()
    form = f"try::form::{CALL_DP}::transfer_funds::field::"
    at.text_input(key=form + "from_account").input("CHK-009")
    at.text_input(key=form + "to_account").input("SAV-00A")
    at.number_input(key=form + "amount").set_value(250)
    at.selectbox(key=form + "currency").set_value("USD")
    click(at, "Grade this call")
    shown = metrics(at)
    assert shown["Reward"] == "0.800" and shown["Name match"] == "✅ 1" and shown["Argument match"] == "0.600"
    table = keys_table(at)
    rows = {r["key"]: r for r in table.to_dict("records")}
    assert rows["amount"]["status"] == "✅ match" and rows["amount"]["expected"] == "250"
    assert rows["currency"]["status"] == "❌ mismatch"
    assert rows["currency"]["expected"] == '"EUR"' and rows["currency"]["submitted"] == '"USD"'
    assert rows["memo"]["status"] == "➖ missing" and rows["memo"]["submitted"] == "—"
    with Store.open(demo_db) as store:
        (attempt,) = list_attempts(store, CALL_DP)
    assert attempt.who == "ada" and attempt.kind == "human" and attempt.reward == 0.8
    assert attempt.action["arguments"]["amount"] == 250
    assert any("Attempts at this decision point (1)" in m.value for m in at.markdown)
    # issue 19: the breakdown is drawn once (it was drawn again under the attempts, as 1.0 and 1.000)
    assert [m.label for m in at.metric].count("Reward") == 1
    assert any("shown above" in c.value for c in at.caption)


def test_human_message_where_a_call_is_expected_is_wrong_action_type(open_dp):
    at = open_dp(CALL_DP)
    at.radio(key=f"try::mode::{CALL_DP}").set_value("Send a message").run()
    at.text_area(key=f"try::message::{CALL_DP}").input("Sure, moving 250 EUR now.")
    click(at, "Grade this message")
    shown = metrics(at)
    assert shown["Reward"] == "0.000" and shown["Action type"] == "❌ mismatch"
    assert any("wrong_action_type" in m.value for m in at.markdown)  # inside a code span: not escaped
    # issue 19: the expected call has keys; "no argument keys on either side" was false here
    assert not any("No argument keys" in c.value for c in at.caption)


def test_human_message_shows_the_keyword_overlap(open_dp, demo_store):
    dp = demo_store.get(MESSAGE_DP)
    assert dp.action_type == "message"
    at = open_dp(MESSAGE_DP)
    at.radio(key=f"try::mode::{MESSAGE_DP}").set_value("Send a message").run()
    at.text_area(key=f"try::message::{MESSAGE_DP}").input(dp.expected_content)
    click(at, "Grade this message")
    assert metrics(at)["Reward"] == "1.000" and metrics(at)["Grader"] == "keyword"
    overlap = [d.value for d in at.dataframe if "keywords" in getattr(d.value, "columns", [])][0]
    assert overlap.iloc[0, 0] == "✅ shared" and overlap.iloc[1, 1] == "—"  # nothing only in the reference
    assert any("Keyword overlap" in m.value for m in at.markdown)


def test_model_answer_is_asked_shown_graded_saved_and_the_key_is_not_stored(open_dp, demo_db, fake_openai):
    fake_openai.script(Reply.tool_calls([("transfer_funds", {"from_account": "CHK-009", "to_account": "SAV-00A",
                                                            "amount": 250, "currency": "EUR", "memo": "rent buffer"})]))
    at = open_dp(CALL_DP)
    at.text_input(key="try::base_url").input(fake_openai.base_url)
    at.text_input(key="try::model").input("fake-model")
    at.text_input(key="try::api_key").input(TYPED_KEY)
    click(at, "Ask the model")
    (sent,) = fake_openai.completion_requests
    assert sent.body["model"] == "fake-model" and sent.body["tool_choice"] == "required"
    assert {k.lower(): v for k, v in sent.headers.items()}["authorization"] == f"Bearer {TYPED_KEY}"
    shown = metrics(at)
    assert shown["Reward"] == "1.000" and shown["Prompt tokens"] == "100" and shown["Latency"].endswith(" s")
    assert any(j.value and '"transfer_funds"' in str(j.value) for j in at.json)
    assert any(e.label == "Raw response" for e in at.expander)
    with Store.open(demo_db) as store:
        (attempt,) = list_attempts(store, CALL_DP)
        assert attempt.kind == "model" and attempt.who == "fake-model" and attempt.reward == 1.0
        assert attempt.extra["total_tokens"] == attempt.extra["prompt_tokens"] + attempt.extra["completion_tokens"]
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in Path(demo_db).parent.glob(Path(demo_db).name + "*"):
        assert TYPED_KEY.encode() not in path.read_bytes(), f"the typed key reached {path.name}"


def test_model_failure_is_shown_but_not_saved_as_an_attempt(open_dp, demo_db, fake_openai):
    """Issue 19: a call that brought back no answer was saved as an attempt (listed beside real answers)."""
    fake_openai.script(Reply.error(400, "This model's maximum context length is 10 tokens",
                                   code="context_length_exceeded"))
    at = open_dp(CALL_DP)
    at.text_input(key="try::base_url").input(fake_openai.base_url)
    click(at, "Ask the model")
    assert any("context_too_long" in e.value.replace("\\", "") for e in at.error)
    assert any("nothing was saved" in m.value for m in at.markdown)
    with Store.open(demo_db) as store:
        assert list_attempts(store, CALL_DP) == []


# ---- the breakdown component on its own ---------------------------------------------------------------------
def breakdown_app(data):
    from ui.breakdown import render_breakdown

    render_breakdown(data, key="b")


def render(data) -> AppTest:
    at = AppTest.from_function(breakdown_app, args=(data,), default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_breakdown_of_an_ungradeable_reference_says_not_graded():
    at = render({"reward": None, "action_type_match": 1, "name_match": None, "arg_match": None,
                 "grader": "function_call", "reason": "ungradeable_reference", "expected_type": "function_call",
                 "submitted_type": "function_call", "notes": ["the reference cannot be graded: arguments are a list"]})
    assert metrics(at)["Reward"] == "not graded"
    assert any("this is not a 0" in m.value for m in at.markdown)
    assert any("arguments are a list" in c.value for c in at.caption)


def test_breakdown_of_an_llm_graded_message_shows_the_model_and_reason_as_text():
    at = render({"reward": 0.7, "action_type_match": 1, "grader": "llm", "grader_model": "gpt-5-mini",
                 "reason": "llm: close enough", "expected_type": "message", "submitted_type": "message",
                 "llm_score": 7, "llm_reason": "![x](http://tracker.example/p.png) mostly right"})
    assert metrics(at)["Grader"] == "llm" and metrics(at)["Grader model"] == r"gpt\-5\-mini"  # a metric is Markdown
    assert any("7/10" in m.value for m in at.markdown)
    assert [t.value for t in at.text] == ["![x](http://tracker.example/p.png) mostly right"]  # plain text


def test_breakdown_key_table_marks_extra_and_schema_problems():
    at = render({"reward": 0.5, "action_type_match": 1, "name_match": 1, "arg_match": 0.0, "grader": "function_call",
                 "reason": "argument_mismatch: 0 of 2 keys match", "expected_type": "function_call",
                 "submitted_type": "function_call", "expected_name": "f", "submitted_name": "f",
                 "schema_valid": False, "schema_errors": ["n: 'x' is not of type 'integer'"],
                 "keys": [{"key": "n", "status": "mismatch", "expected": 5, "submitted": "5",
                           "hint": "submitted value is a string, the other a number"},
                          {"key": "zz", "status": "extra", "expected": None, "submitted": None, "hint": None}]})
    rows = keys_table(at).to_dict("records")
    assert rows[0]["expected"] == "5" and rows[0]["submitted"] == '"5"' and "string" in rows[0]["hint"]
    assert rows[1]["status"] == "➕ extra" and rows[1]["expected"] == "—" and rows[1]["submitted"] == "null"
    assert any("Not valid under the tool's JSON schema" in m.value for m in at.markdown)
    # issue 19: the hint column was cut at 1280 px; the hints are also written out in full
    hints = [c.value for c in at.caption if c.value.startswith("Hints:")]
    assert len(hints) == 1 and "submitted value is a string, the other a number" in hints[0].replace("\\", "")


def test_a_task_without_tools_offers_only_a_message(open_dp):
    at = open_dp("tool_calling/demo-no-tools/2")
    mode = at.radio(key="try::mode::tool_calling/demo-no-tools/2")
    assert mode.value == "Send a message"  # the only possible answer is the one shown first (issue 19)
    mode.set_value("Call a tool").run()
    assert any("offers no tools of its own" in i.value for i in at.info)
    at.radio(key="try::mode::tool_calling/demo-no-tools/2").set_value("Send a message").run()
    at.text_area(key="try::message::tool_calling/demo-no-tools/2").input("hello")
    click(at, "Grade this message")
    assert "Reward" in metrics(at)


def test_a_tool_without_parameters_is_called_with_empty_arguments(open_dp, demo_db):
    dp_id = "tool_calling/demo-odd-tool-definitions/2"
    at = open_dp(dp_id)
    at.selectbox(key=f"try::tool::{dp_id}").set_value("ping").run()
    assert any("takes no parameters" in c.value for c in at.caption)
    click(at, "Grade this call")
    with Store.open(demo_db) as store:
        (attempt,) = list_attempts(store, dp_id)
    assert attempt.action == {"type": "function_call", "name": "ping", "arguments": {}}
    assert attempt.breakdown["submitted_name"] == "ping"


def test_a_baseline_answers_offline_is_graded_saved_and_the_same_for_a_seed(open_dp, demo_db):
    at = open_dp(CALL_DP)
    at.radio(key="try::source").set_value("An offline baseline policy").run()
    at.selectbox(key="try::policy").set_value("keyword-router").run()
    at.number_input(key="try::policy_seed").set_value(4).run()
    assert any("keyword-router: calls the tool whose name" in c.value for c in at.caption)
    click(at, "Ask the baseline")
    click(at, "Ask the baseline")
    with Store.open(demo_db) as store:
        first, second = list_attempts(store, CALL_DP)
        from nemo_core.runs.policy_runner import PolicyRunner

        expected = PolicyRunner("keyword-router", seed=4).answer(store.get(CALL_DP)).action_json()
    assert first.kind == second.kind == "model" and first.who == "baseline:keyword-router"
    assert first.action == second.action == expected and first.reward == second.reward is not None
    assert "Reward" in metrics(at) and "Latency" not in metrics(at)  # no request, so no latency or tokens
    notes = [c.value.replace("\\", "").replace("\u2060", "") for c in at.caption]  # as a person reads them
    assert any(n.startswith("ℹ️ keyword-router: ") for n in notes), notes  # the policy's note: why this action  # the policy's note: why this action


def test_baseline_typed_as_the_model_name_runs_the_policy_not_a_request(open_dp, demo_db):
    at = open_dp(MESSAGE_DP)
    at.text_input(key="try::base_url").input("http://127.0.0.1:9/v1")
    at.text_input(key="try::model").input("baseline:always-message")
    click(at, "Ask the model")
    with Store.open(demo_db) as store:
        (attempt,) = list_attempts(store, MESSAGE_DP)
    assert attempt.who == "baseline:always-message" and attempt.action["type"] == "message"
    assert attempt.extra.get("error") is None
