"""openai-ft and nemo-gym lines (training_formats.py) and OpenAI's fine-tuning format checks (ft_format_check.py)."""

from __future__ import annotations

import json

import pytest

from nemo_core.data.decision_point import DecisionPoint
from nemo_core.data.dp_stream import Selection
from nemo_core.runs.export import export
from nemo_core.grading.ft_format_check import check_line
from nemo_core.data.records import link_tool_results
from nemo_core.grading.request import NO_RESULT_PLACEHOLDER, UNLINKED_TOOL_RESULT_PREFIX
from nemo_core.data.store import Store
from nemo_core.grading.training_formats import EMPTY_TOOL_RESULT, Skipped, nemo_gym_row, openai_ft_line


@pytest.fixture(scope="module")
def store(demo_db_master):
    s = Store.open(demo_db_master, readonly=True)
    yield s
    s.close()


def dp_of(messages: list, tools: list | None = None, *, split: str = "tool_calling") -> DecisionPoint:
    """A decision point at the last message of a hand-made conversation (flags as ingest would not set them)."""
    i = len(messages) - 1
    calls = messages[i].get("tool_calls")
    row = {"id": f"{split}/u/{i}", "split": split, "conversation_uuid": "u", "turn_index": i, "assistant_turn": 0,
           "action_type": "function_call" if calls else "message", "flags": []}
    return DecisionPoint.from_raw(row, {"raw": {"uuid": "u", "messages": messages, "tools": tools or []}})


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}


# ---- openai-ft -------------------------------------------------------------------------------------------
def test_every_demo_line_passes_the_format_checks_and_every_left_out_point_is_counted(store, tmp_path):
    for submit in (False, True):
        out = tmp_path / f"ft-{submit}.jsonl"
        result = export(store, Selection(), "openai-ft", out, submit_message_tool=submit, workers=0)
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert len(lines) == result.n_written and result.n_written + sum(result.skipped.values()) == 180
        for line in lines:
            assert check_line(line) == []
        assert dict(result.skipped) == {"ungradeable": 3, "tool_name_clash": 2, "empty_expected": 1,
                                        "expected_tool_not_offered": 1}
        assert "format_check" not in result.skipped


def test_tool_calling_history_is_normalised(store):
    """demo-parallel-calls/5: empty system prompt, replies linked by position, JSON tool content, a call
    without a reply, earlier turns not trained, the text reply as the trained turn."""
    dp = store.get("tool_calling/demo-parallel-calls/5")
    line = openai_ft_line(dp)
    messages = line["messages"]
    assert messages[0]["role"] == "user"  # the empty system message is gone
    assistant = messages[1]
    assert assistant["content"] is None and assistant["weight"] == 0 and len(assistant["tool_calls"]) == 3
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert [m["tool_call_id"] for m in messages[2:5]] == ids
    assert json.loads(messages[2]["content"]) == {"city": "Oslo", "temp_c": 4}  # JSON content as a string
    assert messages[4]["content"] == NO_RESULT_PLACEHOLDER
    assert json.loads(assistant["tool_calls"][2]["function"]["arguments"]) == {"value": 30, "to": "F"}
    assert messages[-1] == {"role": "assistant", "content": dp.expected_content}
    assert [t["function"]["name"] for t in line["tools"]] == dp.toolset.task_names  # no submit_message


def test_parallel_expected_turn_keeps_every_call(store):
    dp = store.get("tool_calling/demo-parallel-calls/2")
    target = openai_ft_line(dp)["messages"][-1]
    assert "weight" not in target and target["content"] is None
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in target["tool_calls"]] == \
        [(c.name, c.arguments) for c in dp.expected_calls]
    assert len({c["id"] for c in target["tool_calls"]}) == 3


def test_list_arguments_in_the_context_are_a_json_string_and_unlinked_replies_a_user_message(store):
    line = openai_ft_line(store.get("tool_calling/demo-arguments-as-list/4"))
    call = next(m for m in line["messages"] if m.get("tool_calls"))["tool_calls"][0]
    assert isinstance(json.loads(call["function"]["arguments"]), list)
    orphan = openai_ft_line(store.get("tool_calling/demo-orphan-tool-reply/5"))
    assert any(m["role"] == "user" and m["content"].startswith(UNLINKED_TOOL_RESULT_PREFIX) for m in orphan["messages"])
    assert check_line(orphan) == [] and check_line(line) == []


def test_tools_without_properties_get_empty_properties_and_no_tools_means_no_tools_key(store):
    line = openai_ft_line(store.get("tool_calling/demo-odd-tool-definitions/2"))
    params = {t["function"]["name"]: t["function"]["parameters"] for t in line["tools"]}
    assert params["ping"] == {"type": "object", "properties": {}}
    assert params["get_time"]["required"] == ["timezone"]  # moved into the parameters, as the request offers it
    assert "tools" not in openai_ft_line(store.get("tool_calling/demo-no-tools/2"))


def test_submit_message_tool_makes_a_reply_a_call(store):
    dp = store.get("tool_calling/demo-tool-content-shapes/6")
    line = openai_ft_line(dp, submit_message_tool=True)
    call = line["messages"][-1]["tool_calls"][0]["function"]
    assert call["name"] == "submit_message" and json.loads(call["arguments"]) == {"message": dp.expected_content}
    assert line["tools"][-1]["function"]["name"] == "submit_message"
    assert check_line(line) == []


def test_empty_messages_are_dropped_or_filled():
    dp = dp_of([
        {"role": "system", "content": ""},
        {"role": "user", "content": ""},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": ""},  # an earlier empty reply
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": ""},
        {"role": "assistant", "content": "Cold."},
    ], [WEATHER])
    line = openai_ft_line(dp)
    assert [m["role"] for m in line["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert line["messages"][2]["content"] == EMPTY_TOOL_RESULT
    assert check_line(line) == []


def test_points_that_cannot_make_a_valid_line_are_skipped_with_a_reason(store):
    assert openai_ft_line(store.get("tool_calling/demo-arguments-as-list/2")) == Skipped("ungradeable")
    assert openai_ft_line(store.get("tool_calling/demo-empty-expected-message/2")) == Skipped("empty_expected")
    assert openai_ft_line(store.get("tool_calling/demo-expected-tool-not-offered/2")) == Skipped("expected_tool_not_offered")
    assert openai_ft_line(store.get("tool_calling/demo-submit-message-clash/4")) == Skipped("tool_name_clash")
    bad_name = {"type": "function", "function": {"name": "get weather!", "parameters": {"type": "object"}}}
    skipped = openai_ft_line(dp_of([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], [bad_name]))
    assert skipped == Skipped("invalid_tool_name", "get weather!")


# ---- the format checks themselves ---------------------------------------------------------------------
GOOD = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                     {"role": "assistant", "content": None, "weight": 0, "tool_calls": [
                         {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "[1]"}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "4C"},
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}],
        "tools": [WEATHER]}


def mutate(path: tuple, value=None, *, delete: bool = False) -> dict:
    line = json.loads(json.dumps(GOOD))
    target = line
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return line


@pytest.mark.parametrize("line, error", [
    ([1, 2], "data_type"),
    ({"messages": []}, "missing_messages_list"),
    (mutate(("extra",), 1), "example_unrecognized_key"),
    (mutate(("messages", 0, "role"), delete=True), "unrecognized_role"),
    (mutate(("messages", 1, "content"), delete=True), "message_missing_key"),
    (mutate(("messages", 1, "reasoning_content"), "r"), "message_unrecognized_key"),
    (mutate(("messages", 1, "role"), "function"), "unrecognized_role"),
    (mutate(("messages", 0, "content"), ""), "missing_content"),
    (mutate(("messages", 3, "content"), {"temp": 4}), "missing_content"),
    (mutate(("messages", 4, "weight"), 0), "example_missing_assistant_message"),
    (mutate(("messages", 4, "weight"), 2), "invalid_weight"),
    (mutate(("messages", 4, "tool_calls", 0, "function", "arguments"), {"city": "Oslo"}), "invalid_tool_call"),
    (mutate(("messages", 4, "tool_calls", 0, "function", "arguments"), "[1]"), "invalid_tool_call"),
    (mutate(("messages", 4, "tool_calls", 0, "function", "name"), "get.weather"), "invalid_tool_call"),
    (mutate(("messages", 4, "tool_calls", 0, "function", "name"), "other_tool"), "tool_call_not_in_tools"),
    (mutate(("messages", 3, "tool_call_id"), "c9"), "tool_call_id_unknown"),
    (mutate(("messages", 3), {"role": "user", "content": "no reply"}), "tool_call_unanswered"),
    (mutate(("tools", 0, "function", "parameters"), {"type": "string"}), "invalid_tool"),
    (mutate(("tools",), [WEATHER, WEATHER]), "duplicate_tool_name"),
])
def test_each_format_check_catches_its_error(line, error):
    assert check_line(GOOD) == []
    assert any(e.split(":")[0] == error for e in check_line(line)), check_line(line)


# ---- nemo-gym --------------------------------------------------------------------------------------------
def check_gym_row(row: dict) -> None:
    """NeMo Gym's row schema: `TaskData.expected_action` (task_data.py) and the `responses_create_params` its
    tests build (Responses API input items, flat function tools)."""
    action = row["expected_action"]
    calls = action["calls"] if action["type"] == "function_call_batch" else [action] if action["type"] == "function_call" else []
    if action["type"] == "message":
        assert set(action) == {"type", "content"} and isinstance(action["content"], str)
    else:
        assert action["type"] in ("function_call", "function_call_batch") and calls
        for call in calls:
            assert set(call) == {"type", "name", "arguments"} and call["type"] == "function_call"
            assert isinstance(json.loads(call["arguments"]), dict)
    params = row["responses_create_params"]
    assert set(params) == {"input", "tools", "parallel_tool_calls"} and params["parallel_tool_calls"] is True
    for tool in params["tools"]:
        assert set(tool) == {"type", "name", "description", "parameters", "strict"} and tool["type"] == "function"
    open_calls: set[str] = set()
    for item in params["input"]:
        if item["type"] == "message":
            assert set(item) == {"type", "role", "content"} and item["role"] in ("system", "user", "assistant")
        elif item["type"] == "function_call":
            assert set(item) == {"type", "call_id", "name", "arguments"} and isinstance(item["arguments"], str)
            open_calls.add(item["call_id"])
        else:
            assert item["type"] == "function_call_output" and set(item) == {"type", "call_id", "output"}
            assert item["call_id"] in open_calls and isinstance(item["output"], str)


def validate_gym_row(row: dict) -> None:
    """The row through pydantic models of what the server validates: `TaskData` of its `task_data.py` (restated
    here: an `expected_action` discriminated on `type`, a batch holding at least one call, extra keys allowed)
    and, for `responses_create_params`, the OpenAI SDK's own models that NeMo Gym's
    `NeMoGymResponseCreateParamsNonStreaming` builds on (input items: `EasyInputMessage`,
    `ResponseFunctionToolCall`, `FunctionCallOutput`; tools: `FunctionToolParam`; no other top-level key)."""
    from typing import Annotated, Literal, Union

    from openai.types.responses import EasyInputMessage, FunctionToolParam, ResponseFunctionToolCall
    from openai.types.responses.response_input_item import FunctionCallOutput
    from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

    class Loose(BaseModel):
        model_config = ConfigDict(extra="allow")

    class Message(Loose):
        type: Literal["message"]
        content: str

    class Call(Loose):
        type: Literal["function_call"]
        name: str
        arguments: str

    class Batch(Loose):
        type: Literal["function_call_batch"]
        calls: list[Call] = Field(min_length=1)

    class TaskData(Loose):
        expected_action: Annotated[Union[Message, Call, Batch], Field(discriminator="type")]

    class CreateParams(BaseModel):
        model_config = ConfigDict(extra="forbid")
        input: list[Union[EasyInputMessage, ResponseFunctionToolCall, FunctionCallOutput]]
        tools: list[FunctionToolParam]
        parallel_tool_calls: bool = True

    TaskData.model_validate(row)
    params = TypeAdapter(CreateParams).validate_python(row["responses_create_params"])
    by_type = {"message": EasyInputMessage, "function_call": ResponseFunctionToolCall,
               "function_call_output": FunctionCallOutput}
    for item, parsed in zip(row["responses_create_params"]["input"], params.input):
        assert isinstance(parsed, by_type[item["type"]])  # each item read as the model of its own type


def test_the_schema_validation_refuses_what_the_server_refuses():
    good = {"id": "x", "responses_create_params": {"input": [{"type": "message", "role": "user", "content": "hi"}],
            "tools": [{"type": "function", "name": "f", "description": "", "parameters": {"type": "object"},
                       "strict": False}], "parallel_tool_calls": True},
            "expected_action": {"type": "function_call", "name": "f", "arguments": "{}"}}
    validate_gym_row(good)
    for bad in (
        {**good, "expected_action": {"type": "function_call_batch", "calls": []}},
        {**good, "expected_action": {"type": "function_call", "name": "f", "arguments": {}}},
        {**good, "expected_action": {"type": "tool", "name": "f"}},
        {**good, "responses_create_params": {**good["responses_create_params"], "messages": []}},
        {**good, "responses_create_params": {**good["responses_create_params"],
                                             "input": [{"type": "message", "role": "tool", "content": "x"}]}},
        {**good, "responses_create_params": {**good["responses_create_params"],
                                             "tools": [{"type": "function", "function": {"name": "f"}}]}},
    ):
        with pytest.raises(Exception):
            validate_gym_row(bad)


def test_every_nemo_gym_row_has_the_servers_shape(store, tmp_path):
    out = tmp_path / "gym.jsonl"
    result = export(store, Selection(), "nemo-gym", out, workers=0)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == result.n_written == 174
    for row in rows:
        check_gym_row(row)
        validate_gym_row(row)
        dp = store.get(row["id"])
        if dp.action_type == "message":
            assert row["expected_action"] == {"type": "message", "content": dp.expected_content}


def test_nemo_gym_actions_and_history(store):
    parallel = nemo_gym_row(store.get("tool_calling/demo-parallel-calls/2"))["expected_action"]
    assert parallel["type"] == "function_call_batch"
    assert [json.loads(c["arguments"]) for c in parallel["calls"]] == [{"city": "Oslo"}, {"city": "Bergen"},
                                                                       {"value": 30, "to": "F"}]
    row = nemo_gym_row(store.get("tool_calling/demo-parallel-calls/5"))
    items = row["responses_create_params"]["input"]
    assert items[0] == {"type": "message", "role": "system", "content": ""}  # as the request sends it
    assert [i["type"] for i in items[2:]] == ["function_call"] * 3 + ["function_call_output"] * 3
    single = nemo_gym_row(store.get("tool_calling/demo-tool-content-shapes/4"))["expected_action"]
    assert single == {"type": "function_call", "name": "list_holidays", "arguments": '{"year":2024,"country":"FR"}'}
    empty = nemo_gym_row(store.get("tool_calling/demo-empty-expected-message/2"))["expected_action"]
    assert empty == {"type": "message", "content": ""}  # any chat message earns the reward there
    assert nemo_gym_row(store.get("tool_calling/demo-arguments-as-list/2")) == Skipped("ungradeable")


def test_links_match_the_request(store):
    """The nemo-gym history is the request's: tool replies answer the same calls (by position here)."""
    dp = store.get("tool_calling/demo-tool-content-shapes/6")
    links = link_tool_results(dp.context)
    items = nemo_gym_row(dp)["responses_create_params"]["input"]
    outputs = [i for i in items if i["type"] == "function_call_output"]
    assert len(outputs) == sum(1 for link in links if link is not None) == 2
    assert outputs[0]["output"] == "true" and json.loads(outputs[1]["output"])[0]["date"] == "2024-01-01"
