"""The OpenAI request built from a decision point: valid for the API, faithful to the data."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from nemo_core.data.records import SUBMIT_MESSAGE_TOOL
from nemo_core.grading.request import (NO_RESULT_PLACEHOLDER, UNLINKED_TOOL_RESULT_PREFIX, build_request,
                                       context_to_openai, request_json)


def assert_valid_openai(messages: list[dict]) -> None:
    """The structural rules an OpenAI chat endpoint enforces on a history."""
    seen_ids: set[str] = set()
    expecting: list[str] = []
    for n, msg in enumerate(messages):
        assert msg["role"] in ("system", "user", "assistant", "tool"), msg
        if msg["role"] == "tool":
            assert msg["tool_call_id"] in expecting, f"message {n} answers no open call: {msg}"
            expecting.remove(msg["tool_call_id"])
            assert isinstance(msg["content"], str)
            continue
        assert not expecting, f"message {n} arrives before calls {expecting} were answered"
        if msg["role"] == "assistant":
            assert msg["content"] is None or isinstance(msg["content"], str)
            for call in msg.get("tool_calls") or []:
                assert call["type"] == "function"
                assert isinstance(call["function"]["name"], str) and call["function"]["name"]
                assert isinstance(call["function"]["arguments"], str)
                assert call["id"] not in seen_ids, "tool call ids must be unique"
                seen_ids.add(call["id"])
                expecting.append(call["id"])
        else:
            assert isinstance(msg["content"], str)
    assert not expecting, f"calls {expecting} are never answered"


def tc_call(name, arguments, **extra):
    return {"type": "function", "function": {"name": name, "arguments": arguments}, **extra}


def test_tool_calling_calls_get_ids_string_arguments_and_linked_replies():
    context = [
        {"role": "system", "content": ""},
        {"role": "user", "content": "Weather in Oslo and Bergen?"},
        {"role": "assistant", "content": "", "reasoning_content": "two calls", "tool_calls": [
            tc_call("get_weather", {"city": "Oslo"}, index=0), tc_call("get_weather", {"city": "Bergen"}, index=1)]},
        {"role": "tool", "content": {"temp_c": 4}},
        {"role": "tool", "content": {"temp_c": 7}},
    ]
    messages = context_to_openai(context)
    assert_valid_openai(messages)
    assert messages[0] == {"role": "system", "content": ""}
    assistant = messages[2]
    assert assistant["content"] is None
    assert "reasoning_content" not in assistant
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_2_0", "call_2_1"]
    assert assistant["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert messages[3] == {"role": "tool", "tool_call_id": "call_2_0", "content": '{"temp_c": 4}'}
    assert messages[4] == {"role": "tool", "tool_call_id": "call_2_1", "content": '{"temp_c": 7}'}


def test_recorded_ids_and_string_arguments_are_kept_even_invalid_json():
    context = [
        {"role": "system", "content": "policy"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "id": "call_abc", "function": {"name": "f", "arguments": '{"a": '}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "ok"},
        {"role": "assistant", "content": "done"},
    ]
    messages = context_to_openai(context)
    assert_valid_openai(messages)
    assert messages[2]["tool_calls"][0]["id"] == "call_abc"
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == '{"a": '
    assert messages[3] == {"role": "tool", "tool_call_id": "call_abc", "content": "ok"}
    assert messages[4] == {"role": "assistant", "content": "done"}


def test_non_string_tool_content_is_json_encoded():
    context = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [tc_call("a", {}), tc_call("b", {}), tc_call("c", {})]},
        {"role": "tool", "content": True},
        {"role": "tool", "content": [1, "x"]},
        {"role": "tool", "content": 9},
    ]
    messages = context_to_openai(context)
    assert_valid_openai(messages)
    assert [m["content"] for m in messages[2:]] == ["true", '[1, "x"]', "9"]


def test_call_without_reply_gets_a_placeholder_before_the_next_message():
    context = [
        {"role": "user", "content": "three things"},
        {"role": "assistant", "content": "", "tool_calls": [tc_call("a", {}), tc_call("b", {}), tc_call("c", {})]},
        {"role": "tool", "content": "A"},
        {"role": "tool", "content": "B"},
        {"role": "assistant", "content": "summary"},
    ]
    messages = context_to_openai(context)
    assert_valid_openai(messages)
    assert messages[4] == {"role": "tool", "tool_call_id": "call_1_2", "content": NO_RESULT_PLACEHOLDER}
    assert messages[5] == {"role": "assistant", "content": "summary"}


def test_placeholder_when_the_context_ends_on_an_unanswered_call():
    context = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "", "tool_calls": [tc_call("a", {"k": 1})]}]
    messages = context_to_openai(context)
    assert_valid_openai(messages)
    assert messages[-1]["content"] == NO_RESULT_PLACEHOLDER


def test_unlinked_tool_reply_becomes_a_user_message():
    context = [
        {"role": "user", "content": "convert"},
        {"role": "assistant", "content": "", "tool_calls": [tc_call("convert", {"amount": 100})]},
        {"role": "tool", "content": {"result": 92.4}},
        {"role": "tool", "content": {"note": "orphan"}},
    ]
    messages = context_to_openai(context)
    assert_valid_openai(messages)
    assert messages[2]["role"] == "tool"
    assert messages[3] == {"role": "user", "content": UNLINKED_TOOL_RESULT_PREFIX + '{"note": "orphan"}'}


def test_tool_reply_with_no_call_at_all_is_a_user_message():
    messages = context_to_openai([{"role": "user", "content": "x"}, {"role": "tool", "content": "stray"}])
    assert_valid_openai(messages)
    assert messages[1]["role"] == "user" and messages[1]["content"].endswith("stray")


def test_reasoning_dropped_by_default_and_kept_on_request():
    context = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "y", "reasoning_content": "because"},
        {"role": "user", "content": "z"},
    ]
    assert "reasoning_content" not in context_to_openai(context)[1]
    assert context_to_openai(context, include_reasoning=True)[1]["reasoning_content"] == "because"
    assert context[1]["reasoning_content"] == "because", "the stored context is not modified"


def test_duplicate_recorded_ids_are_made_unique():
    context = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "two"},
    ]
    messages = context_to_openai(context)
    assert_valid_openai(messages)
    assert messages[3]["tool_calls"][0]["id"] == "call_3_0"
    assert messages[4] == {"role": "tool", "tool_call_id": "call_3_0", "content": "two"}


def test_list_arguments_and_content_parts():
    context = [
        {"role": "user", "content": [{"type": "text", "text": "Sum "}, {"type": "text", "text": "these"}]},
        {"role": "assistant", "content": "", "tool_calls": [tc_call("add", [2, 3, 4])]},
        {"role": "tool", "content": 9},
    ]
    messages = context_to_openai(context)
    assert_valid_openai(messages)
    assert messages[0]["content"] == "Sum these"
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == "[2, 3, 4]"


def test_build_request_uses_the_offered_tools_including_submit_message():
    dp = SimpleNamespace(context=[{"role": "user", "content": "hi"}], tools=[SUBMIT_MESSAGE_TOOL])
    request = build_request(dp)
    assert request == {"messages": [{"role": "user", "content": "hi"}], "tools": [SUBMIT_MESSAGE_TOOL]}
    assert json.loads(request_json(dp)) == request


def test_every_demo_decision_point_gives_a_valid_request(demo_store):
    ids = demo_store.ids()
    assert len(ids) > 100
    for dp_id in ids:
        dp = demo_store.get(dp_id)
        for include_reasoning in (False, True):
            request = build_request(dp, include_reasoning=include_reasoning)
            assert_valid_openai(request["messages"])
            assert request["tools"][-1]["function"]["name"] == "submit_message"
            json.dumps(request)  # serialisable as sent


@pytest.mark.parametrize(
    "dp_id, check",
    [
        ("tool_calling/demo-parallel-calls/5", lambda m: m[-1]["content"] == NO_RESULT_PLACEHOLDER),
        ("tool_calling/demo-orphan-tool-reply/5", lambda m: m[-1]["role"] == "user"
         and m[-1]["content"].startswith(UNLINKED_TOOL_RESULT_PREFIX)),
        ("tool_calling/demo-tool-content-shapes/6", lambda m: m[3]["content"] == "true"),
    ],
)
def test_demo_quirks(demo_store, dp_id, check):
    messages = build_request(demo_store.get(dp_id))["messages"]
    assert check(messages), json.dumps(messages, indent=1)
