"""Reading one raw row (records.py): every shape SPEC §1 lists, on hand-made rows in tests/data/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemo_core.base.errors import BadRow
from nemo_core.data.records import (SUBMIT_MESSAGE_TOOL, content_text, link_tool_results, normalise_tools,
                                    parse_arguments, parse_tool_calls, validate_row)

DATA = Path(__file__).resolve().parent / "data"


def rows(name: str) -> dict[str, dict]:
    out = {}
    with open(DATA / name, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            out[row["uuid"]] = row
    return out


TC = rows("tool_calling_shapes.jsonl")
IA = rows("interactive_agent_shapes.jsonl")


# ---- arguments -------------------------------------------------------------------------------------
def test_arguments_object_is_taken_as_is():
    assert parse_arguments({"city": "Oslo"}) == ({"city": "Oslo"}, None)


def test_arguments_json_string_of_object_is_parsed():
    assert parse_arguments('{"email": "a@b.example", "n": 2}') == ({"email": "a@b.example", "n": 2}, None)


@pytest.mark.parametrize(
    "raw, words",
    [
        ([2, 3, 4], "array"),
        ('["a"]', "array"),
        ('{"email": ', "not valid JSON"),
        (None, "null"),
        (7, "number"),
        ('"just a string"', "string"),
    ],
)
def test_arguments_that_are_not_an_object_are_refused_with_a_reason(raw, words):
    parsed, error = parse_arguments(raw)
    assert parsed is None
    assert words in error


def test_list_arguments_keep_their_raw_form_and_are_flagged_by_error():
    msg = TC["tc-args-list"]["messages"][2]
    (call,) = parse_tool_calls(msg["tool_calls"])
    assert call.name == "add_numbers"
    assert call.arguments is None
    assert call.arguments_raw == [2, 3, 4]
    assert call.error and "array" in call.error
    assert call.as_expected() == {"name": "add_numbers", "arguments": [2, 3, 4]}


def test_string_arguments_in_tool_calling_rows_are_parsed_too():
    msg = TC["tc-args-list"]["messages"][4]
    (call,) = parse_tool_calls(msg["tool_calls"])
    assert call.arguments == {"numbers": [1, 2]} and call.error is None
    assert call.as_expected() == {"name": "add_numbers", "arguments": {"numbers": [1, 2]}}


def test_parallel_calls_keep_their_order_and_ignore_index():
    calls = parse_tool_calls(TC["tc-parallel"]["messages"][2]["tool_calls"])
    assert [(c.position, c.name, c.arguments) for c in calls] == [
        (0, "get_weather", {"city": "Oslo"}),
        (1, "get_weather", {"city": "Bergen"}),
        (2, "get_time", {"tz": "Europe/Oslo"}),
    ]


def test_openai_call_ids_are_read():
    calls = parse_tool_calls(IA["ia-ids-out-of-order"]["messages"][2]["tool_calls"])
    assert [c.call_id for c in calls] == ["call_a", "call_b"]


@pytest.mark.parametrize("raw", [None, []])
def test_tool_calls_null_or_empty_means_no_call(raw):
    assert parse_tool_calls(raw) == []


def test_a_call_that_is_not_an_object_or_has_no_name_is_kept_with_an_error():
    calls = parse_tool_calls(["oops", {"type": "function", "function": {"arguments": "{}"}}])
    assert [c.name for c in calls] == [None, None]
    assert all(c.error for c in calls)


# ---- tool replies ----------------------------------------------------------------------------------
def test_tool_replies_without_ids_answer_calls_by_position_and_calls_can_stay_unanswered():
    links = link_tool_results(TC["tc-parallel"]["messages"])
    # messages 3 and 4 answer calls 0 and 1 of message 2; call 2 gets no reply
    assert links == [None, None, None, (2, 0), (2, 1), None, None, None]


def test_an_orphan_reply_stays_unlinked():
    links = link_tool_results(TC["tc-content-shapes"]["messages"])
    assert links[3] == (2, 0)
    assert links[5] == (4, 0)
    assert links[6] is None  # a second reply with no call left to answer


def test_replies_are_linked_by_id_before_position():
    links = link_tool_results(IA["ia-ids-out-of-order"]["messages"])
    assert links[3] == (2, 1)  # call_b answered first
    assert links[4] == (2, 0)


def test_a_tool_call_id_that_names_no_call_falls_back_to_position():
    links = link_tool_results(IA["ia-ids"]["messages"])
    assert links[3] == (2, 0)  # by id
    assert links[5] == (4, 0)  # "call_WRONG": by position


def test_a_reply_after_a_user_message_answers_nothing():
    msgs = [
        {"role": "system", "content": ""},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},
        {"role": "user", "content": "never mind"},
        {"role": "tool", "content": "late"},
    ]
    assert link_tool_results(msgs) == [None, None, None, None]


# ---- content ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, text",
    [
        ("plain", "plain"),
        (None, ""),
        ({"city": "Oslo", "temp_c": 4}, {"city": "Oslo", "temp_c": 4}),
        ([{"city": "Bergen"}, {"temp_c": 7}], [{"city": "Bergen"}, {"temp_c": 7}]),
        (True, True),
        (9, 9),
        ({"note": "naïve"}, {"note": "naïve"}),
    ],
)
def test_non_string_content_is_shown_as_json(value, text):
    out = content_text(value)
    assert isinstance(out, str)
    if isinstance(text, str):
        assert out == text
    else:
        assert json.loads(out) == text  # kept as JSON, nothing lost
    assert "\\u" not in out  # readable, not ASCII-escaped


def test_openai_text_parts_are_joined():
    assert content_text([{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}]) == "Hello world"


def test_a_tool_reply_that_is_a_list_of_objects_with_text_stays_json():
    # a tool's JSON reply is data, not OpenAI content parts: showing only the texts would hide fields
    value = [{"id": 1, "text": "first"}, {"id": 2, "text": "second"}]
    assert json.loads(content_text(value)) == value


# ---- tool definitions --------------------------------------------------------------------------------
def test_empty_tools_offer_only_submit_message():
    ts = normalise_tools([])
    assert ts.task_tools == [] and ts.offered() == [SUBMIT_MESSAGE_TOOL]
    assert normalise_tools(None).offered() == [SUBMIT_MESSAGE_TOOL]


def test_submit_message_is_a_required_string_message():
    fn = SUBMIT_MESSAGE_TOOL["function"]
    assert fn["name"] == "submit_message"
    assert fn["parameters"]["properties"]["message"]["type"] == "string"
    assert fn["parameters"]["required"] == ["message"]


def test_duplicate_names_offer_the_first_definition_and_are_reported():
    ts = normalise_tools(TC["tc-duplicate-tools"]["tools"])
    assert ts.names == ["lookup_book", "other"]
    assert ts.schema_of("lookup_book")["required"] == ["isbn"]  # the first definition
    assert ts.duplicate_names == ["lookup_book", "other"]
    assert ts.conflicting_names == ["lookup_book"]  # "other" repeats an identical definition
    assert [t["function"]["name"] for t in ts.offered()] == ["lookup_book", "other", "submit_message"]


def test_odd_definitions_are_normalised_or_reported():
    ts = normalise_tools(TC["tc-odd-tools"]["tools"])
    assert ts.names == ["get_time", "no_params", "no_properties", "empty_properties", "root_string"]
    # required at function level moves into the parameters
    assert ts.schema_of("get_time") == {"type": "object", "properties": {"timezone": {"type": "string"}},
                                        "required": ["timezone"]}
    assert ts.schema_of("no_params") == {"type": "object", "properties": {}}
    assert ts.schema_of("no_properties") == {"type": "object"}
    assert ts.schema_of("empty_properties") == {"type": "object", "properties": {}}
    assert ts.schema_of("root_string") == {"type": "object", "properties": {}}
    odd = " | ".join(ts.odd)
    assert "'required' moved" in odd
    assert "root type 'string'" in odd
    assert "tool 5 has no name" in odd
    assert "tool 6 is a JSON number" in odd
    assert "tool 7 is a JSON string" in odd
    for tool in ts.offered():
        assert tool["type"] == "function"
        assert tool["function"]["parameters"]["type"] == "object"
        assert isinstance(tool["function"]["description"], str)


def test_parameters_without_a_root_type_become_objects_and_keep_their_properties():
    ts = normalise_tools(IA["ia-ids"]["tools"])
    schema = ts.schema_of("book")
    assert schema["type"] == "object"
    assert schema["properties"]["cabin"] == {"enum": ["economy", "business"]}
    assert schema["properties"]["legs"] == {"type": "array"}
    # the raw row is never changed by normalising
    assert "type" not in IA["ia-ids"]["tools"][1]["function"]["parameters"]


def test_a_task_tool_named_submit_message_is_reported_and_the_shared_one_offered():
    ts = normalise_tools(TC["tc-submit-clash"]["tools"])
    assert ts.name_clash is True
    assert ts.names == ["send_sms"]
    offered = ts.offered()
    assert [t["function"]["name"] for t in offered] == ["send_sms", "submit_message"]
    assert offered[-1] == SUBMIT_MESSAGE_TOOL
    assert any("submit_message" in note for note in ts.odd)


# ---- row validation ----------------------------------------------------------------------------------
def test_every_shape_fixture_row_is_valid():
    for row in [*TC.values(), *IA.values()]:
        validate_row(row)


def test_unknown_extra_top_level_keys_are_accepted():
    validate_row(TC["tc-extra-keys"])
    assert TC["tc-extra-keys"]["x_source"] == {"batch": 7, "tags": ["a", "b"]}


@pytest.mark.parametrize(
    "obj, reason",
    [
        (["not", "an", "object"], "not an object"),
        ({"messages": [{"role": "user", "content": "x"}]}, "no 'uuid'"),
        ({"uuid": "a/b", "messages": [{"role": "user"}]}, "contains '/'"),
        ({"uuid": "u"}, "no 'messages'"),
        ({"uuid": "u", "messages": "hello"}, "not an array"),
        ({"uuid": "u", "messages": []}, "'messages' is empty"),
        ({"uuid": "u", "messages": [{"role": "user"}], "tools": {"a": 1}}, "'tools' is a JSON object"),
        ({"uuid": "u", "messages": ["hi"]}, "messages[0] is a JSON string"),
        ({"uuid": "u", "messages": [{"content": "no role"}]}, "messages[0] has no 'role'"),
        ({"uuid": "u", "messages": [{"role": "system"}, {"role": "moderator"}]}, "messages[1] has unknown role 'moderator'"),
        ({"uuid": "u", "messages": [{"role": ["user"]}]}, "messages[0] has unknown role"),
        ({"uuid": "u", "messages": [{"role": {"r": 1}}]}, "messages[0] has unknown role"),
        ({"uuid": "u", "messages": [{"role": "assistant", "tool_calls": "f()"}]}, "tool_calls is a JSON string"),
    ],
)
def test_unusable_rows_raise_bad_row_with_the_reason(obj, reason):
    with pytest.raises(BadRow) as info:
        validate_row(obj)
    assert reason in str(info.value)


def test_long_digit_runs_are_found_wherever_they_are():
    from nemo_core.data.records import has_long_digit_run

    assert has_long_digit_run(b'{"n": 12345678901234567890}')
    assert has_long_digit_run(b"x" * 5000 + b"-99999999999999999999")
    assert not has_long_digit_run(b'{"n": 1234567890123456789, "t": "2025-06-07 12:00", "f": 1.5e300}')
    assert not has_long_digit_run(b"1234567890 1234567890")  # two runs of 10 are not one of 20


def test_loads_json_exact_keeps_integers_beyond_64_bits():
    from nemo_core.data.records import loads_json

    big = 123456789012345678901234567890
    assert loads_json(f'{{"n": {big}}}'.encode(), exact=True) == {"n": big}
    assert isinstance(loads_json(f'{{"n": {big}}}'.encode())["n"], float)  # the fast path does not
    assert loads_json(b'{"n": 18446744073709551615}', exact=True)["n"] == 2**64 - 1
