"""The model runner against a real OpenAI-compatible server on 127.0.0.1 (tests/fake_openai.py), with the
real `openai` client: every reply shape and every error becomes a `ModelAnswer`, never an exception."""

from __future__ import annotations

import json
import time

import pytest

from fake_openai import FakeOpenAI, Reply, fake_openai  # noqa: F401  (fixture)
from nemo_core.grading.grade import grade_action
from nemo_core.grading.endpoint import EndpointConfig
from nemo_core.runs.model_runner import ModelNotConfigured, ModelRequest, ModelRunner, select_ids
from nemo_core.grading.request import build_request
from nemo_core.data.filters import DecisionPointFilter

CALL_DP = "interactive_agent/synth-b81d1299-b213-6003-cf00484b/12"  # expects transfer_funds(...)
MESSAGE_DP_FILTER = DecisionPointFilter(split="interactive_agent", action_type="message")
EXPECTED_ARGS = {"from_account": "CHK-009", "to_account": "SAV-00A", "amount": 250, "currency": "EUR",
                 "memo": "rent buffer"}
KEY = "sk-test-secret-123"


def runner_for(server: FakeOpenAI, **kwargs) -> ModelRunner:
    kwargs.setdefault("backoff_base", 0.01)
    request = ModelRequest(include_reasoning=kwargs.pop("include_reasoning", False))
    return ModelRunner(EndpointConfig(model="fake-model", base_url=server.base_url, api_key=KEY, **kwargs), request)


@pytest.fixture
def call_dp(demo_store):
    return demo_store.get(CALL_DP)


def test_tool_call_reply_is_graded_and_the_request_is_exactly_the_built_one(fake_openai, demo_store, call_dp):
    fake_openai.script(Reply.tool_calls([("transfer_funds", EXPECTED_ARGS)]))
    answer = runner_for(fake_openai).answer(call_dp)
    assert answer.error is None and answer.action is not None
    assert answer.action.type == "function_call" and answer.action.name == "transfer_funds"
    assert answer.action.arguments == EXPECTED_ARGS
    assert answer.prompt_tokens == 100 and answer.total_tokens == answer.prompt_tokens + answer.completion_tokens
    assert answer.latency_ms is not None and answer.latency_ms > 0
    assert answer.raw_response["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "transfer_funds"
    sent = fake_openai.completion_requests[0]
    expected = build_request(call_dp)
    assert sent.body["messages"] == expected["messages"]
    assert sent.body["tools"] == expected["tools"]
    assert sent.body["tool_choice"] == "required" and sent.body["model"] == "fake-model"
    assert "submit_message" in [t["function"]["name"] for t in sent.body["tools"]]
    assert {k.lower(): v for k, v in sent.headers.items()}["authorization"] == f"Bearer {KEY}"
    assert grade_action(demo_store, call_dp, answer.action).reward == 1.0


def test_text_reply_is_a_message_action(fake_openai, call_dp):
    fake_openai.script(Reply.text("Which account should I use?"))
    answer = runner_for(fake_openai).answer(call_dp)
    assert answer.action.type == "message" and answer.action.content == "Which account should I use?"
    assert answer.error is None
    assert any("no tool call" in n for n in answer.notes)


def test_submit_message_call_is_the_message_action(fake_openai, call_dp):
    fake_openai.script(Reply.tool_calls([("submit_message", {"message": "Done."})]))
    answer = runner_for(fake_openai).answer(call_dp)
    assert answer.action.type == "message" and answer.action.content == "Done."


def test_several_tool_calls_grade_the_first_and_say_so(fake_openai, demo_store, call_dp):
    fake_openai.script(Reply.tool_calls([("transfer_funds", EXPECTED_ARGS), ("get_balance", {"account_id": "X"})]))
    answer = runner_for(fake_openai).answer(call_dp)
    assert answer.action.name == "transfer_funds" and answer.action.ignored_calls == 1
    assert any("2 tool calls" in n and "1 ignored" in n for n in answer.notes)
    breakdown = grade_action(demo_store, call_dp, answer.action)
    assert breakdown.reward == 1.0 and any("ignored" in n for n in breakdown.notes)


def test_hallucinated_tool_is_recorded_and_graded_as_a_wrong_name(fake_openai, demo_store, call_dp):
    fake_openai.script(Reply.tool_calls([("wire_money", EXPECTED_ARGS)]))
    answer = runner_for(fake_openai).answer(call_dp)
    assert answer.error_kind == "unknown_tool" and "wire_money" in answer.error
    assert answer.action is not None
    breakdown = grade_action(demo_store, call_dp, answer.action)
    assert breakdown.name_match == 0 and breakdown.reward == 0.5  # SPEC §4: the arguments still count


def test_malformed_arguments_json_is_recorded_and_graded_invalid_arguments(fake_openai, demo_store, call_dp):
    fake_openai.script(Reply.tool_calls([("transfer_funds", '{"from_account": "CHK-009", ')]))
    answer = runner_for(fake_openai).answer(call_dp)
    assert answer.error_kind == "malformed_arguments"
    breakdown = grade_action(demo_store, call_dp, answer.action)
    assert breakdown.reason == "invalid_arguments" and breakdown.reward == 0.5


def test_429_is_retried_after_backoff_then_succeeds(fake_openai, call_dp):
    fake_openai.script(Reply.error(429, "slow down", retry_after=0.2), Reply.tool_calls([("get_balance", {"account_id": "A"})]))
    started = time.perf_counter()
    answer = runner_for(fake_openai).answer(call_dp)
    assert answer.error is None and answer.action.name == "get_balance"
    assert answer.attempts == 2 and len(fake_openai.completion_requests) == 2
    assert time.perf_counter() - started >= 0.2, "retry-after was honoured"


def test_429_every_time_gives_up_as_rate_limited(fake_openai, call_dp):
    fake_openai.script(*[Reply.error(429, "slow down", retry_after=0)] * 3)
    answer = runner_for(fake_openai, max_attempts=3).answer(call_dp)
    assert answer.failed and answer.error_kind == "rate_limited" and answer.transient
    assert "429" in answer.error and len(fake_openai.completion_requests) == 3


def test_500_is_retried_then_recorded_as_server_error(fake_openai, call_dp):
    fake_openai.script(*[Reply.error(500, "boom")] * 2)
    answer = runner_for(fake_openai, max_attempts=2).answer(call_dp)
    assert answer.failed and answer.error_kind == "server_error" and "HTTP 500" in answer.error
    fake_openai.reset()
    fake_openai.script(Reply.error(503, "busy"), Reply.text("ok"))
    assert runner_for(fake_openai, max_attempts=2).answer(call_dp).action.content == "ok"


def test_context_too_long_is_not_retried(fake_openai, call_dp):
    fake_openai.script(Reply.error(400, "This model's maximum context length is 8192 tokens. However, your "
                                        "messages resulted in 9000 tokens.", code="context_length_exceeded"))
    answer = runner_for(fake_openai).answer(call_dp)
    assert answer.failed and answer.error_kind == "context_too_long"
    assert len(fake_openai.completion_requests) == 1


def test_tool_choice_refusal_is_retried_with_auto_and_remembered(fake_openai, call_dp):
    fake_openai.script(Reply.error(400, "tool_choice 'required' is not supported by this server"),
                       Reply.tool_calls([("get_balance", {"account_id": "A"})]))
    runner = runner_for(fake_openai)
    answer = runner.answer(call_dp)
    assert answer.action.name == "get_balance" and answer.tool_choice == "auto"
    assert [r.body["tool_choice"] for r in fake_openai.completion_requests] == ["required", "auto"]
    assert any("refused tool_choice" in n for n in answer.notes)
    runner.answer(call_dp)  # the next decision point goes straight to "auto"
    assert fake_openai.completion_requests[-1].body["tool_choice"] == "auto"
    assert len(fake_openai.completion_requests) == 3


def test_slow_reply_past_the_timeout_is_a_recorded_failure(fake_openai, call_dp):
    fake_openai.script(Reply.slow(3.0, Reply.text("too late")))
    started = time.perf_counter()
    answer = runner_for(fake_openai, timeout=0.5).answer(call_dp)
    assert answer.failed and answer.error_kind == "timeout" and answer.transient
    assert time.perf_counter() - started < 2.5
    assert "0.5 s" in answer.error


def test_other_errors_never_raise_and_never_echo_the_key(fake_openai, call_dp):
    fake_openai.script(Reply.error(401, f"Incorrect API key provided: {KEY}"), Reply.malformed(),
                       Reply.error(400, "bad things"))
    runner = runner_for(fake_openai)
    auth = runner.answer(call_dp)
    assert auth.error_kind == "auth" and KEY not in auth.error and "[redacted]" in auth.error
    malformed = runner.answer(call_dp)
    assert malformed.failed and malformed.error_kind == "invalid_response"
    bad = runner.answer(call_dp)
    assert bad.error_kind == "bad_request" and "bad things" in bad.error
    assert KEY not in repr(runner.config)


def test_unreachable_server_is_a_connection_failure(call_dp):
    with FakeOpenAI() as server:
        url = server.base_url
    runner = ModelRunner(EndpointConfig(model="m", base_url=url, api_key=KEY, max_attempts=2, backoff_base=0.01))
    answer = runner.answer(call_dp)
    assert answer.failed and answer.error_kind == "connection"


def test_extra_holds_no_key_and_is_json(fake_openai, call_dp):
    fake_openai.script(Reply.tool_calls([("get_balance", {"account_id": "A"})]))
    answer = runner_for(fake_openai).answer(call_dp)
    text = json.dumps(answer.extra())
    assert KEY not in text and '"raw"' in text and answer.extra()["raw"]["tool_calls"][0]["function"]["name"] == "get_balance"


def test_needs_a_key_or_a_base_url(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ModelNotConfigured):
        ModelRunner(EndpointConfig.for_model("m"))
    ModelRunner(EndpointConfig.for_model("m", base_url="http://127.0.0.1:9/v1"))  # a local server may need no key


def test_include_reasoning_is_sent_only_when_asked(fake_openai, demo_store):
    dp = next(demo_store.get(i) for i in demo_store.ids(DecisionPointFilter(split="tool_calling"))
              if any(m.get("role") == "assistant" and m.get("reasoning_content") for m in demo_store.get(i).context))
    runner_for(fake_openai).answer(dp)
    runner_for(fake_openai, include_reasoning=True).answer(dp)
    plain, with_reasoning = (r.body["messages"] for r in fake_openai.completion_requests)
    assert not any("reasoning_content" in m for m in plain)
    assert any("reasoning_content" in m for m in with_reasoning)


@pytest.mark.parametrize("seed", [0, 3, 11])
@pytest.mark.parametrize("limit", [1, 7, 40, None, 10_000])
def test_select_ids_draws_what_sampling_the_ids_themselves_would(demo_store, seed, limit):
    """The sample is drawn from rowids (cheap at scale); it must be the very sample that drawing from the
    list of ids gives, so a run sampled by an earlier version resumes over the same decision points."""
    import random

    for flt in (MESSAGE_DP_FILTER, DecisionPointFilter.from_query({"exclude_flags": "ungradeable"})):
        ids = demo_store.ids(flt)
        rng = random.Random(seed)
        if limit is not None and limit < len(ids):
            expected = rng.sample(ids, limit)
        else:
            expected = list(ids)
            rng.shuffle(expected)
        assert select_ids(demo_store, flt, limit=limit, sample_seed=seed) == expected


def test_select_ids_is_seeded(demo_store):
    a = select_ids(demo_store, MESSAGE_DP_FILTER, limit=5, sample_seed=3)
    b = select_ids(demo_store, MESSAGE_DP_FILTER, limit=5, sample_seed=3)
    c = select_ids(demo_store, MESSAGE_DP_FILTER, limit=5, sample_seed=4)
    assert a == b and a != c and len(set(a)) == 5
    assert select_ids(demo_store, MESSAGE_DP_FILTER, limit=5) == demo_store.ids(MESSAGE_DP_FILTER, limit=5)


def test_failure_texts_name_their_kind_for_the_failure_taxonomy(fake_openai, call_dp):
    from nemo_core.runs.taxonomy import runner_error_kind

    fake_openai.script(Reply.slow(2.0), Reply.error(429, "slow down", retry_after=0), Reply.error(500, "x"))
    timeout = runner_for(fake_openai, timeout=0.5).answer(call_dp)
    limited = runner_for(fake_openai, max_attempts=1).answer(call_dp)
    server = runner_for(fake_openai, max_attempts=1).answer(call_dp)
    assert timeout.error.startswith("timeout: ") and runner_error_kind(timeout.error) == "timeout"
    assert limited.error.startswith("rate limited: ") and runner_error_kind(limited.error) == "api_error"
    assert server.error.startswith("server error: ") and runner_error_kind(server.error) == "api_error"


def test_refusal_is_graded_as_the_message_and_an_empty_reply_fails(fake_openai, call_dp):
    fake_openai.script(Reply.refusal("I can't move money."), Reply("text", content=None))
    runner = runner_for(fake_openai)
    refused = runner.answer(call_dp)
    assert refused.action.type == "message" and refused.action.content == "I can't move money."
    assert any("refused" in n for n in refused.notes)
    empty = runner.answer(call_dp)
    assert empty.failed and empty.error_kind == "empty_reply" and empty.raw_response is not None


def test_submit_message_without_a_message_is_an_invalid_action(fake_openai, call_dp):
    fake_openai.script(Reply.tool_calls([("submit_message", {"text": "hi"})]))
    answer = runner_for(fake_openai).answer(call_dp)
    assert answer.failed and answer.error_kind == "invalid_action" and answer.error.startswith("invalid action: ")
