"""Answers from other harnesses (answer_formats.py): OpenAI Chat Completions and Responses, Anthropic Messages,
Gemini, OpenAI Batch lines; realistic samples in the documented shapes, parallel calls, empty content, errors and
malformed bodies; then `grade` and the upload check on a file mixing them."""

from __future__ import annotations

import json

import pytest

from nemo_core.grading.actions import ActionError
from nemo_core.grading.answer_formats import ACCEPTED_SHAPES, AnswerFailed, parse_answer, prediction_object, problem_text
from nemo_core.cli.main import main
from nemo_core.data.filters import DecisionPointFilter
from nemo_core.runs.grade_file import read_prediction_line
from nemo_core.data.store import Store
from nemo_core.runs.uploads import validate_predictions

CALL = {"type": "function_call", "name": "get_weather", "arguments": {"location": "Paris, France"}}

# OpenAI Responses API (https://platform.openai.com/docs/api-reference/responses/object)
RESPONSES_CALL = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b", "object": "response", "created_at": 1741476542,
    "status": "completed", "error": None, "incomplete_details": None, "model": "gpt-4.1-2025-04-14",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "id": "fc_12345xyz", "call_id": "call_12345xyz", "name": "get_weather",
         "arguments": "{\"location\":\"Paris, France\"}", "status": "completed"},
    ],
    "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    "usage": {"input_tokens": 291, "output_tokens": 23, "total_tokens": 314},
}
RESPONSES_PARALLEL = {**RESPONSES_CALL, "output": [
    {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
     "arguments": "{\"location\":\"Paris, France\"}", "status": "completed"},
    {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "get_weather",
     "arguments": "{\"location\":\"Bogotá, Colombia\"}", "status": "completed"}]}
RESPONSES_TEXT = {**RESPONSES_CALL, "output": [
    {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
     "content": [{"type": "output_text", "text": "It is sunny ", "annotations": []},
                 {"type": "output_text", "text": "in Paris.", "annotations": []}]}]}
RESPONSES_REFUSAL = {**RESPONSES_CALL, "output": [
    {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
     "content": [{"type": "refusal", "refusal": "I can't help with that."}]}]}
RESPONSES_FAILED = {**RESPONSES_CALL, "status": "failed", "output": [],
                    "error": {"code": "server_error", "message": "The model failed to generate a response."}}

# Anthropic Messages (https://docs.anthropic.com/en/api/messages)
ANTHROPIC_CALL = {
    "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "thinking", "thinking": "The user wants the weather.", "signature": "EqQBCgIYAhIM"},
                {"type": "text", "text": "I'll check the weather."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                 "input": {"location": "Paris, France"}}],
    "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 472, "output_tokens": 91},
}
ANTHROPIC_PARALLEL = {**ANTHROPIC_CALL, "content": [
    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris, France"}},
    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {"timezone": "Europe/Paris"}}]}
ANTHROPIC_TEXT = {**ANTHROPIC_CALL, "stop_reason": "end_turn",
                  "content": [{"type": "text", "text": "It is sunny"}, {"type": "text", "text": " in Paris."}]}
ANTHROPIC_EMPTY = {**ANTHROPIC_CALL, "stop_reason": "end_turn", "content": []}
ANTHROPIC_ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                   "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}

# Gemini generateContent (https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse)
GEMINI_CALL = {
    "candidates": [{"content": {"role": "model", "parts": [
        {"text": "Thinking about the weather.", "thought": True},
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris, France"}}, "thoughtSignature": "Cq0B"}]},
        "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 12, "totalTokenCount": 132},
    "modelVersion": "gemini-2.5-flash", "responseId": "abc",
}
GEMINI_PARALLEL = {"candidates": [{"content": {"role": "model", "parts": [
    {"functionCall": {"name": "get_weather", "args": {"location": "Paris, France"}}},
    {"functionCall": {"name": "get_weather", "args": {"location": "Lyon, France"}}}]}, "finishReason": "STOP"}]}
GEMINI_TEXT = {"candidates": [{"content": {"role": "model", "parts": [{"text": "It is sunny in Paris."}]},
                               "finishReason": "STOP"}]}
GEMINI_BLOCKED = {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                  "usageMetadata": {"promptTokenCount": 8}}
GEMINI_NO_CONTENT = {"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": []}]}

# OpenAI Chat Completions
CHAT_CALL = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-5-mini", "choices": [
    {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "refusal": None,
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris, France\"}"}}]}}]}
CHAT_REFUSAL = {**CHAT_CALL, "choices": [{"index": 0, "finish_reason": "stop", "message": {
    "role": "assistant", "content": None, "refusal": "I can't help with that."}}]}
CHAT_EMPTY = {**CHAT_CALL, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": None}}]}


@pytest.mark.parametrize("answer, action, ignored", [
    (RESPONSES_CALL, CALL, 0),
    (RESPONSES_PARALLEL, CALL, 1),
    (RESPONSES_CALL["output"], CALL, 0),  # the output list alone
    (RESPONSES_CALL["output"][1], CALL, 0),  # one function_call item
    (RESPONSES_TEXT, {"type": "message", "content": "It is sunny in Paris."}, 0),
    (RESPONSES_TEXT["output"][0], {"type": "message", "content": "It is sunny in Paris."}, 0),
    (RESPONSES_REFUSAL, {"type": "message", "content": "I can't help with that."}, 0),
    (ANTHROPIC_CALL, CALL, 0),
    (ANTHROPIC_PARALLEL, CALL, 1),
    (ANTHROPIC_TEXT, {"type": "message", "content": "It is sunny in Paris."}, 0),
    (GEMINI_CALL, CALL, 0),
    (GEMINI_PARALLEL, CALL, 1),
    (GEMINI_CALL["candidates"][0]["content"], CALL, 0),  # one candidate's content
    (GEMINI_CALL["candidates"][0]["content"]["parts"][1], CALL, 0),  # one functionCall part
    (GEMINI_TEXT, {"type": "message", "content": "It is sunny in Paris."}, 0),
    (CHAT_CALL, CALL, 0),
    (CHAT_REFUSAL, {"type": "message", "content": "I can't help with that."}, 0),
    (json.dumps(ANTHROPIC_CALL), CALL, 0),  # a JSON string of any shape
])
def test_each_shape_becomes_the_action_it_holds(answer, action, ignored):
    got = parse_answer(answer)
    assert got.to_json() == action and got.ignored_calls == ignored


def test_a_submit_message_call_is_a_reply_in_every_shape():
    anthropic = {**ANTHROPIC_CALL, "content": [{"type": "tool_use", "id": "t", "name": "submit_message",
                                                "input": {"message": "Which city?"}}]}
    gemini = {"functionCall": {"name": "submit_message", "args": {"message": "Which city?"}}}
    for answer in (anthropic, gemini):
        assert parse_answer(answer).to_json() == {"type": "message", "content": "Which city?"}


def test_gemini_call_without_args_and_malformed_arguments_are_graded_not_refused():
    assert parse_answer({"functionCall": {"name": "ping"}}).to_json() == {"type": "function_call", "name": "ping",
                                                                         "arguments": {}}
    bad = parse_answer({**ANTHROPIC_CALL, "content": [{"type": "tool_use", "id": "t", "name": "get_weather",
                                                       "input": ["Paris"]}]})
    assert bad.arguments_error is not None  # graded as invalid_arguments, as SPEC §4 says


@pytest.mark.parametrize("answer, kind", [
    (RESPONSES_FAILED, "server error"),
    ({**RESPONSES_CALL, "output": [{"type": "reasoning", "id": "rs", "summary": []}]}, "empty reply"),
    (ANTHROPIC_EMPTY, "empty reply"),
    (ANTHROPIC_ERROR, "server error"),
    ({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}, "rate limited"),
    (GEMINI_BLOCKED, "bad request"),
    (GEMINI_NO_CONTENT, "empty reply"),
    ({"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}, "rate limited"),
    (CHAT_EMPTY, "empty reply"),
    ({**CHAT_CALL, "choices": []}, "invalid response"),
    ({"status_code": 503, "request_id": "r", "body": {"error": {"message": "busy"}}}, "server error"),
])
def test_failures_say_their_kind(answer, kind):
    with pytest.raises(AnswerFailed) as exc:
        parse_answer(answer)
    assert exc.value.kind == kind and problem_text(exc.value).startswith(kind + ": ")


@pytest.mark.parametrize("answer", [
    {"foo": 1}, {"type": "teleport"}, [1, 2], 42, "not json", json.dumps("a string"),
    [{"no": "type"}], {"candidates": [{"content": {"parts": "text"}}]},
])
def test_an_answer_in_no_shape_is_an_action_error_that_lists_the_shapes(answer):
    with pytest.raises(ActionError) as exc:
        parse_answer(answer)
    assert not isinstance(exc.value, AnswerFailed)
    assert problem_text(exc.value).startswith("invalid action: ")
    if answer not in ("not json",) and not (isinstance(answer, dict) and "candidates" in answer):
        assert ACCEPTED_SHAPES in str(exc.value)


def test_our_own_shapes_keep_their_own_errors():
    with pytest.raises(ActionError, match="'name' must be a non-empty string"):
        parse_answer({"type": "function_call", "name": "", "arguments": {}})
    assert parse_answer({"type": "message", "content": [{"type": "text", "text": "hi"}]}).to_json() == \
        {"type": "message", "content": "hi"}


def test_prediction_lines_take_response_for_action_and_batch_lines_whole():
    assert prediction_object({"id": "x", "response": GEMINI_TEXT, "model": "g"}) == \
        {"id": "x", "action": GEMINI_TEXT, "model": "g"}
    line = {"id": "batch_req_1", "custom_id": "tool_calling/u/2", "error": None,
            "response": {"status_code": 200, "request_id": "r", "body": CHAT_CALL}}
    pred = read_prediction_line(json.dumps(line).encode())
    assert pred.error is None and pred.dp_id == "tool_calling/u/2"
    assert pred.extra == {"batch_request_id": "batch_req_1", "model": "gpt-5-mini"}
    assert parse_answer(pred.obj["action"]).to_json() == CALL
    responses_line = {**line, "response": {"status_code": 200, "request_id": "r", "body": RESPONSES_PARALLEL}}
    assert parse_answer(responses_line).ignored_calls == 1


def test_grade_and_the_upload_check_read_every_shape(demo_db, tmp_path, monkeypatch, capsys):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with Store.open(demo_db) as store:
        calls = [store.get(i) for i in store.ids(DecisionPointFilter(
            action_type="function_call", exclude_flags=("ungradeable", "parallel")))[:4]]
        replies = [store.get(i) for i in store.ids(DecisionPointFilter(
            action_type="message", exclude_flags=("empty_expected",)))[:3]]
    c = [(dp.id, dp.expected_calls[0].name, dp.expected_calls[0].arguments) for dp in calls]
    lines = [
        {"id": c[0][0], "action": {**RESPONSES_CALL, "output": [{"type": "function_call", "call_id": "a", "name": c[0][1],
                                                                   "arguments": json.dumps(c[0][2])}]}},
        {"id": c[1][0], "response": {**ANTHROPIC_CALL, "content": [{"type": "tool_use", "id": "t", "name": c[1][1],
                                                                    "input": c[1][2]}]}},
        {"id": c[2][0], "action": {"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": c[2][1], "args": c[2][2]}}]}}]}},
        {"id": c[3][0], "action": {"functionCall": {"name": "wrong_tool", "args": c[3][2]}}},
        {"id": replies[0].id, "action": {**ANTHROPIC_TEXT, "content": [{"type": "text", "text": replies[0].expected_content}]}},
        {"id": replies[1].id, "action": ANTHROPIC_ERROR},
        {"id": replies[2].id, "action": {"foo": "bar"}},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["grade", str(path), "--db", str(demo_db), "--run", "mixed", "--out", str(tmp_path / "r.jsonl"),
                 "--quiet"]) == 0
    results = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["reward"] for r in results] == [1.0, 1.0, 1.0, 0.5, 1.0, None, None]
    assert results[5]["error"].startswith("server error: Anthropic error (overloaded_error: Overloaded)")
    assert results[6]["error"].startswith("invalid action: ") and "Anthropic Messages response" in results[6]["error"]
    with Store.open(demo_db) as store:
        check = validate_predictions(store, path.read_bytes())
    assert check.n_good == 5 and [b["line"] for b in check.bad] == [6, 7]
    assert [b["problem"] for b in check.bad] == [r["error"] for r in results[5:]]
