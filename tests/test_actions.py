"""Every accepted action form (SPEC §3) becomes one `Action`; anything else is rejected with what was expected."""

from __future__ import annotations

import pytest

from nemo_core.grading.actions import Action, ActionError, decode_action, parse_action


@pytest.mark.parametrize(
    "raw, kind, name, arguments, content, form",
    [
        ({"type": "function_call", "name": "get_weather", "arguments": {"city": "Paris"}},
         "function_call", "get_weather", {"city": "Paris"}, None, "action"),
        ({"type": "function_call", "name": "get_weather", "arguments": '{"city": "Paris"}'},
         "function_call", "get_weather", {"city": "Paris"}, None, "action"),
        ({"type": "message", "content": "Hello"}, "message", None, None, "Hello", "action"),
        ({"type": "message", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]},
         "message", None, None, "Hello", "action"),
        ({"type": "function_call", "name": "submit_message", "arguments": {"message": "Done."}},
         "message", None, None, "Done.", "submit_message"),
        ({"type": "function_call", "name": "submit_message", "arguments": '{"message": "Done."}'},
         "message", None, None, "Done.", "submit_message"),
        ({"role": "assistant", "content": "Hi there", "tool_calls": None}, "message", None, None, "Hi there",
         "assistant_message"),
        ({"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
         "function_call", "f", {"a": 1}, None, "assistant_message"),
        ({"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "submit_message", "arguments": '{"message": "ok"}'}}]},
         "message", None, None, "ok", "submit_message"),
        ({"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}},
         "function_call", "f", {}, None, "tool_call"),
        ({"name": "f", "arguments": {"x": [1, 2]}}, "function_call", "f", {"x": [1, 2]}, None, "tool_call"),
        ('{"type": "message", "content": "as a JSON string"}', "message", None, None, "as a JSON string", "action"),
    ],
)
def test_accepted_forms(raw, kind, name, arguments, content, form):
    action = parse_action(raw)
    assert (action.type, action.name, action.arguments, action.content, action.form) == (kind, name, arguments, content, form)
    assert action.arguments_error is None


def test_assistant_message_with_several_calls_keeps_first_and_counts_the_rest():
    action = parse_action({"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"type": "function", "function": {"name": "b", "arguments": "{}"}},
        {"type": "function", "function": {"name": "c", "arguments": "{}"}},
    ]})
    assert action.name == "a" and action.ignored_calls == 2


@pytest.mark.parametrize(
    "arguments, error_part",
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "JSON array"),
        ('["a"]', "JSON array"),
        (None, "JSON null"),
        ("", "not valid JSON"),
    ],
)
def test_bad_arguments_are_graded_not_rejected(arguments, error_part):
    action = parse_action({"type": "function_call", "name": "f", "arguments": arguments})
    assert action.type == "function_call" and action.arguments is None
    assert error_part in action.arguments_error
    assert action.to_json()["arguments"] == arguments  # the raw value is kept for the breakdown


@pytest.mark.parametrize(
    "raw, message_part",
    [
        ([1, 2], "JSON array"),
        (42, "JSON number"),
        ("not json", "not JSON"),
        ({"type": "tool", "name": "x"}, "unknown action type 'tool'"),
        ({"type": "function_call", "arguments": {}}, "'name' must be a non-empty string (it is missing)"),
        ({"type": "function_call", "name": "", "arguments": {}}, "(it is empty)"),
        ({"type": "function_call", "name": 7, "arguments": {}}, "(it is a JSON number)"),
        ({"type": "function_call", "name": "f"}, "no 'arguments'"),
        ({"type": "message"}, "no 'content'"),
        ({"type": "message", "content": 5}, "'content' must be a string"),
        ({"role": "user", "content": "hi"}, "role 'user'"),
        ({"role": "assistant", "content": None}, "neither tool_calls nor content"),
        ({"role": "assistant", "tool_calls": "f()"}, "not an array"),
        ({"type": "function_call", "name": "submit_message", "arguments": {"text": "x"}}, "'message' is missing"),
        ({"type": "function_call", "name": "submit_message", "arguments": {"message": 3}}, "'message' is a JSON number"),
        ({"type": "function_call", "name": "submit_message", "arguments": "[1]"}, "submit_message needs"),
        ({"foo": 1}, "is not an action"),
    ],
)
def test_rejected_with_what_was_expected(raw, message_part):
    with pytest.raises(ActionError) as info:
        parse_action(raw)
    assert message_part in str(info.value)
    assert "function_call" in info.value.hint and "message" in info.value.hint


def test_to_json_is_canonical_and_round_trips():
    call = parse_action({"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]})
    assert call.to_json() == {"type": "function_call", "name": "f", "arguments": {"a": 1}}
    message = parse_action({"type": "function_call", "name": "submit_message", "arguments": {"message": "hi"}})
    assert message.to_json() == {"type": "message", "content": "hi"}
    for action in (call, message):
        assert parse_action(action.to_json()).to_json() == action.to_json()


def test_decode_action_is_the_shared_first_step_of_reading_an_action():
    """`decode_action` is what `parse_action` and the answer formats' `parse_answer` both start with."""
    action = Action.message("hi")
    assert decode_action(action) is action
    assert decode_action('{"type": "message", "content": "hi"}') == {"type": "message", "content": "hi"}
    assert decode_action('"just a string"') == "just a string"  # the caller says a JSON string is not an action
    shaped = {"role": "assistant"}
    assert decode_action(shaped) is shaped and decode_action([1]) == [1]
    with pytest.raises(ActionError, match="^the action is a string that is not JSON$"):
        decode_action("{not json")
