"""SPEC §4, rule by rule: one row of the table per rule, graded through the public `grade_action`."""

from __future__ import annotations

import pytest

from nemo_core.grading.grade import GradingTarget, grade_action
from nemo_core.data.records import normalise_tools, parse_tool_calls
from nemo_core.grading.reward import check_schema, tolerant_schema, values_equal


def call_target(*calls: tuple[str, object], tools: list | None = None, flags: tuple[str, ...] = ()) -> GradingTarget:
    return GradingTarget(
        id="tool_calling/test/2", split="tool_calling", action_type="function_call", flags=list(flags),
        expected_calls=parse_tool_calls([{"name": n, "arguments": a} for n, a in calls]), expected_content=None,
        toolset=normalise_tools(tools or []), context=[{"role": "user", "content": "hi"}],
    )


def message_target(text: str = "Your order ships tomorrow.") -> GradingTarget:
    return GradingTarget(id="tool_calling/test/4", split="tool_calling", action_type="message", flags=[],
                         expected_calls=[], expected_content=text, toolset=normalise_tools([]), context=[])


def fc(name: str, arguments: object) -> dict:
    return {"type": "function_call", "name": name, "arguments": arguments}


# (case id, expected calls, submitted action, reward, name_match, arg_match, reason prefix, {key: status})
CASES = [
    ("int equals float", [("f", {"n": 1})], fc("f", {"n": 1.0}), 1.0, 1, 1.0, "exact_match", {"n": "match"}),
    ("string is not number", [("f", {"n": 1})], fc("f", {"n": "1"}), 0.5, 1, 0.0, "argument_mismatch", {"n": "mismatch"}),
    ("number is not string", [("f", {"n": "5"})], fc("f", {"n": 5}), 0.5, 1, 0.0, "argument_mismatch", {"n": "mismatch"}),
    ("bool is not number", [("f", {"b": True})], fc("f", {"b": 1}), 0.5, 1, 0.0, "argument_mismatch", {"b": "mismatch"}),
    ("nested objects, any key order", [("f", {"o": {"a": 1, "b": [1, {"c": "x"}]}})],
     fc("f", {"o": {"b": [1.0, {"c": " x "}], "a": 1}}), 1.0, 1, 1.0, "exact_match", {"o": "match"}),
    ("nested object differs", [("f", {"o": {"a": 1, "b": 2}})], fc("f", {"o": {"a": 1, "b": 3}}), 0.5, 1, 0.0,
     "argument_mismatch", {"o": "mismatch"}),
    ("nested object extra key", [("f", {"o": {"a": 1}})], fc("f", {"o": {"a": 1, "z": 0}}), 0.5, 1, 0.0,
     "argument_mismatch", {"o": "mismatch"}),
    ("arrays in order", [("f", {"xs": ["a", "b", 3]})], fc("f", {"xs": ["a", "b", 3.0]}), 1.0, 1, 1.0, "exact_match",
     {"xs": "match"}),
    ("arrays out of order", [("f", {"xs": ["a", "b"]})], fc("f", {"xs": ["b", "a"]}), 0.5, 1, 0.0, "argument_mismatch",
     {"xs": "mismatch"}),
    ("arrays of different length", [("f", {"xs": [1]})], fc("f", {"xs": [1, 1]}), 0.5, 1, 0.0, "argument_mismatch",
     {"xs": "mismatch"}),
    ("null equals null", [("f", {"v": None})], fc("f", {"v": None}), 1.0, 1, 1.0, "exact_match", {"v": "match"}),
    ("null is not empty string", [("f", {"v": None})], fc("f", {"v": ""}), 0.5, 1, 0.0, "argument_mismatch",
     {"v": "mismatch"}),
    ("null is not zero", [("f", {"v": 0})], fc("f", {"v": None}), 0.5, 1, 0.0, "argument_mismatch", {"v": "mismatch"}),
    ("outer whitespace trimmed", [("f", {"city": "Paris"})], fc("f", {"city": "  Paris\n"}), 1.0, 1, 1.0,
     "exact_match", {"city": "match"}),
    ("inner whitespace counts", [("f", {"city": "New York"})], fc("f", {"city": "New  York"}), 0.5, 1, 0.0,
     "argument_mismatch", {"city": "mismatch"}),
    ("case counts", [("f", {"city": "Paris"})], fc("f", {"city": "paris"}), 0.5, 1, 0.0, "argument_mismatch",
     {"city": "mismatch"}),
    ("an extra key", [("f", {"a": 1})], fc("f", {"a": 1, "b": 2}), 0.75, 1, 0.5, "argument_mismatch",
     {"a": "match", "b": "extra"}),
    ("a missing key", [("f", {"a": 1, "b": 2})], fc("f", {"a": 1}), 0.75, 1, 0.5, "argument_mismatch",
     {"a": "match", "b": "missing"}),
    ("missing and extra and mismatch", [("f", {"a": 1, "b": 2, "c": 3})], fc("f", {"a": 1, "b": 0, "d": 4}),
     0.5 + 0.5 * 1 / 4, 1, 0.25, "argument_mismatch", {"a": "match", "b": "mismatch", "c": "missing", "d": "extra"}),
    ("both argument sets empty", [("f", {})], fc("f", {}), 1.0, 1, 1.0, "exact_match", {}),
    ("both empty, as strings", [("f", "{}")], fc("f", "{}"), 1.0, 1, 1.0, "exact_match", {}),
    ("submitted empty, expected not", [("f", {"a": 1})], fc("f", {}), 0.5, 1, 0.0, "argument_mismatch",
     {"a": "missing"}),
    ("expected as JSON string", [("f", '{"q": "x"}')], fc("f", {"q": "x"}), 1.0, 1, 1.0, "exact_match",
     {"q": "match"}),
    ("submitted as JSON string", [("f", {"q": "x"})], fc("f", '{"q": "x"}'), 1.0, 1, 1.0, "exact_match",
     {"q": "match"}),
    ("invalid JSON string", [("f", {"a": 1})], fc("f", '{"a": 1'), 0.5, 1, 0.0, "invalid_arguments",
     {"a": "missing"}),
    ("arguments as a list", [("f", {"a": 1})], fc("f", [{"a": 1}]), 0.5, 1, 0.0, "invalid_arguments",
     {"a": "missing"}),
    ("arguments a JSON string of a list", [("f", {"a": 1})], fc("f", "[1]"), 0.5, 1, 0.0, "invalid_arguments",
     {"a": "missing"}),
    ("invalid arguments and wrong name", [("f", {"a": 1})], fc("g", "nope"), 0.0, 0, 0.0, "invalid_arguments",
     {"a": "missing"}),
    ("wrong name, right arguments", [("get_weather", {"city": "Paris"})], fc("get_forecast", {"city": "Paris"}),
     0.5, 0, 1.0, "wrong_name", {"city": "match"}),
    ("name is case-sensitive", [("get_weather", {})], fc("Get_Weather", {}), 0.5, 0, 1.0, "wrong_name", {}),
    ("wrong name, wrong arguments", [("f", {"a": 1})], fc("g", {"a": 2}), 0.0, 0, 0.0, "wrong_name",
     {"a": "mismatch"}),
    ("parallel turn: matches the second call", [("f", {"a": 1}), ("g", {"b": 2})], fc("g", {"b": 2}), 1.0, 1, 1.0,
     "exact_match", {"b": "match"}),
    ("parallel turn: best partial", [("f", {"a": 1, "x": 0}), ("g", {"b": 2})], fc("f", {"a": 1}), 0.75, 1, 0.5,
     "argument_mismatch", {"a": "match", "x": "missing"}),
    ("message where a call was expected", [("f", {"a": 1})], {"type": "message", "content": "Sure"}, 0.0, 0, 0.0,
     "wrong_action_type", {}),
    ("submit_message where a call was expected", [("f", {})], fc("submit_message", {"message": "hi"}), 0.0, 0, 0.0,
     "wrong_action_type", {}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_function_call_rules(case):
    _, expected, submitted, reward, name_match, arg_match, reason, statuses = case
    b = grade_action(None, call_target(*expected), submitted, grader="keyword")
    assert b.reward == pytest.approx(reward)
    assert (b.name_match, b.arg_match) == (name_match, pytest.approx(arg_match))
    assert b.reason.startswith(reason)
    assert {k.key: k.status for k in b.keys} == statuses
    assert b.grader in ("function_call", "rule") and b.rule_version


def test_reward_is_the_card_formula_everywhere():
    for case in CASES:
        b = grade_action(None, call_target(*case[1]), case[2], grader="keyword")
        assert b.reward == pytest.approx(0.5 * b.name_match + 0.5 * b.arg_match)


def test_parallel_turn_names_the_matched_call():
    b = grade_action(None, call_target(("f", {"a": 1}), ("g", {"b": 2}), ("h", {})), fc("g", {"b": 2}))
    assert b.matched_call == 1 and b.expected_name == "g"
    assert any("expected call 2 of 3" in n for n in b.notes)


def test_ties_go_to_the_first_expected_call():
    b = grade_action(None, call_target(("f", {"a": 1}), ("f", {"a": 2})), fc("f", {"a": 3}))
    assert b.matched_call == 0 and b.reward == 0.5


def test_call_where_message_expected_is_wrong_type_and_has_no_name_match():
    b = grade_action(None, message_target(), fc("f", {}), grader="keyword")
    assert (b.reward, b.reason, b.action_type_match, b.name_match, b.arg_match) == (0.0, "wrong_action_type", 0, None, None)
    assert b.keys == []


def test_ungradeable_reference_is_none_never_zero():
    target = call_target(("f", [1, 2]), flags=("ungradeable",))
    b = grade_action(None, target, fc("f", {"a": 1}))
    assert b.reward is None and b.reason == "ungradeable_reference" and b.name_match is None
    assert b.to_json("x")["reward"] is None


def test_ungradeable_reference_is_none_even_for_the_wrong_action_type():
    target = call_target(("f", "[1]"), flags=("ungradeable",))
    b = grade_action(None, target, {"type": "message", "content": "hi"}, grader="keyword")
    assert (b.reward, b.reason, b.action_type_match) == (None, "ungradeable_reference", 0)


def test_expected_call_with_bad_arguments_is_ungradeable_even_unflagged():
    b = grade_action(None, call_target(("f", "{oops")), fc("f", {}))
    assert b.reward is None and b.reason == "ungradeable_reference"


def test_extra_tool_calls_are_ignored_and_said():
    action = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"type": "function", "function": {"name": "g", "arguments": "{}"}},
        {"type": "function", "function": {"name": "h", "arguments": "{}"}}]}
    b = grade_action(None, call_target(("f", {"a": 1})), action)
    assert b.reward == 1.0 and "2 extra tool calls ignored" in b.notes[0]


# ---- hints: shown, never scored ------------------------------------------------------------------------
def hint_of(expected_args: dict, submitted_args: dict, key: str, tools: list | None = None) -> str:
    b = grade_action(None, call_target(("f", expected_args), tools=tools), fc("f", submitted_args))
    return next(k.hint or "" for k in b.keys if k.key == key)


@pytest.mark.parametrize(
    "expected, submitted, hint_part",
    [
        ("Paris", "paris", "differs only in case"),
        ("New York", "New   York", "differs only in whitespace"),
        ("New York", "new  york", "differs only in case and whitespace"),
        (5, "5", "submitted value is a string, the other a number (same value as text: '5' vs 5)"),
        ("5", 5, "expected value is a string, the other a number"),
        (1, True, "boolean vs number"),
        (["a", "b"], ["b", "a"], "same items in a different order"),
        ({"a": 1, "b": 2}, {"a": 1, "b": 3}, "nested object differs at 'b'"),
        ([1], {"x": 1}, "expected a JSON array, got a JSON object"),
    ],
)
def test_value_hints(expected, submitted, hint_part):
    assert hint_part in hint_of({"k": expected}, {"k": submitted}, "k")


WEATHER_TOOL_QUIRKY = {  # no "type": "object", enum-only property, array without items, Python type names
    "type": "function",
    "function": {
        "name": "f",
        "parameters": {
            "properties": {
                "unit": {"enum": ["c", "f"]},
                "days": {"type": "int"},
                "tags": {"type": "array"},
                "city": {"type": "string", "required": True, "pattern": "[unclosed"},
            },
            "required": ["unit"],
        },
    },
}


def test_schema_validity_hints_with_quirky_schema():
    b = grade_action(None, call_target(("f", {"unit": "c", "days": 3, "tags": ["x"], "city": "Oslo"}), tools=[WEATHER_TOOL_QUIRKY]),
                     fc("f", {"unit": "k", "days": "3", "tags": "x", "city": "Oslo", "zip": "0150"}))
    hints = {k.key: k.hint or "" for k in b.keys}
    assert b.schema_valid is False and b.schema_errors
    assert "not valid under the tool's schema" in hints["unit"]
    assert "not valid under the tool's schema" in hints["days"] and "string, the other a number" in hints["days"]
    assert "not valid under the tool's schema" in hints["tags"]
    assert "not a parameter in the tool's schema" in hints["zip"]
    assert hints["city"] == ""  # a match on a valid value: nothing to say


def test_schema_valid_call_and_required_missing_hint():
    good = grade_action(None, call_target(("f", {"unit": "c"}), tools=[WEATHER_TOOL_QUIRKY]), fc("f", {"unit": "c", "days": 2}))
    assert good.schema_valid is True
    assert "submitted value valid under the tool's schema" in next(k.hint for k in good.keys if k.key == "days")
    missing = grade_action(None, call_target(("f", {"unit": "c"}), tools=[WEATHER_TOOL_QUIRKY]), fc("f", {}))
    assert missing.schema_valid is False and "required by the tool's schema" in missing.keys[0].hint


def test_hints_never_change_the_score():
    for tools in (None, [WEATHER_TOOL_QUIRKY]):
        b = grade_action(None, call_target(("f", {"unit": "c", "days": 3}), tools=tools), fc("f", {"unit": "C", "days": "3"}))
        assert b.reward == 0.5 and b.arg_match == 0.0


def test_unknown_tool_has_no_schema_verdict():
    b = grade_action(None, call_target(("f", {"a": 1}), tools=[WEATHER_TOOL_QUIRKY]), fc("not_offered", {"a": 1}))
    assert b.schema_valid is None and b.reward == 0.5


@pytest.mark.parametrize(
    "schema",
    [
        {},
        {"type": "object"},
        {"type": "object", "properties": {}},
        {"type": "object", "properties": "oops"},
        {"type": "object", "properties": {"a": {"type": ["int", "null"]}}, "required": "a"},
        {"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}},
        {"type": "object", "properties": {"a": {"type": "any", "items": "x", "enum": "nope", "minimum": "3"}}},
        {"type": "object", "properties": {"a": {"anyOf": [{"type": "integer"}, "bad"]}}},
    ],
)
def test_tolerant_schema_never_raises(schema):
    check = check_schema(schema, {"a": 1})
    assert check.valid is True


def test_tolerant_schema_maps_type_names():
    assert tolerant_schema({"type": "dict", "properties": {"n": {"type": "float"}}}) == {
        "type": "object", "properties": {"n": {"type": "number"}}}
    assert check_schema({"type": "object", "properties": {"n": {"type": "float"}}}, {"n": "x"}).valid is False


@pytest.mark.parametrize(
    "a, b, equal",
    [(1, 1.0, True), (0, -0.0, True), ("1", 1, False), (True, 1, False), (False, 0, False), (None, None, True),
     (None, "null", False), (" a ", "a", True), ("A", "a", False), ([1, [2]], [1.0, [2]], True), ([1, 2], [2, 1], False),
     ({"a": [1]}, {"a": [1]}, True), ({"a": 1}, {"a": 1, "b": None}, False), ({}, [], False), ("", None, False)],
)
def test_values_equal(a, b, equal):
    assert values_equal(a, b) is equal
    assert values_equal(b, a) is equal


# ---- the fast schema checker agrees with jsonschema ------------------------------------------------------
DIFF_SCHEMAS = [
    {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 10},
                                      "b": {"enum": ["x", 1, True, None]},
                                      "c": {"type": "array", "items": {"type": "string", "minLength": 2}, "maxItems": 2},
                                      "d": {"type": ["number", "null"], "exclusiveMaximum": 5},
                                      "e": {"type": "object", "properties": {"f": {"const": 1}}, "required": ["f"],
                                            "additionalProperties": False}},
     "required": ["a"], "additionalProperties": {"type": "string"}},
    {"type": "object", "properties": {"n": {"type": "number", "exclusiveMinimum": 1}, "s": {"maxLength": 3}},
     "additionalProperties": False},
]
DIFF_VALUES = [
    {}, {"a": 1}, {"a": 1.0}, {"a": 1.5}, {"a": True}, {"a": -1}, {"a": 11}, {"a": "1"},
    {"a": 1, "b": "x"}, {"a": 1, "b": 1.0}, {"a": 1, "b": False}, {"a": 1, "b": True}, {"a": 1, "b": None}, {"a": 1, "b": 0},
    {"a": 1, "c": ["ab", "cd"]}, {"a": 1, "c": ["a"]}, {"a": 1, "c": ["ab", "cd", "ef"]}, {"a": 1, "c": "ab"},
    {"a": 1, "d": None}, {"a": 1, "d": 5}, {"a": 1, "d": 4.99}, {"a": 1, "d": "4"},
    {"a": 1, "e": {"f": 1}}, {"a": 1, "e": {"f": 1.0}}, {"a": 1, "e": {"f": True}}, {"a": 1, "e": {}}, {"a": 1, "e": {"f": 1, "g": 2}},
    {"a": 1, "zz": "extra ok"}, {"a": 1, "zz": 3}, {"n": 1}, {"n": 1.01}, {"s": "abcd"}, {"s": 12345}, {"x": 1},
]


@pytest.mark.parametrize("schema_index", range(len(DIFF_SCHEMAS)))
def test_fast_checker_matches_jsonschema(schema_index):
    import jsonschema

    from nemo_core.grading.reward import _fast_errors, _fast_supported

    schema = tolerant_schema(DIFF_SCHEMAS[schema_index])
    assert _fast_supported(schema)
    validator = jsonschema.Draft7Validator(schema)
    for value in DIFF_VALUES:
        fast = _fast_errors(schema, value, ())
        slow = list(validator.iter_errors(value))
        assert bool(fast) == bool(slow), (value, fast, [e.message for e in slow])
        assert {p[:1] for p, _ in fast} == {tuple(e.absolute_path)[:1] for e in slow}, value


def test_schemas_with_other_keywords_use_jsonschema():
    check = check_schema({"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"},
                                                          "v": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}},
                         {"code": "abc", "v": "x"})
    assert check.valid is False and set(check.by_key) == {"code", "v"}


def test_breakdown_json_round_trip():
    from nemo_core.grading.grade import Breakdown

    for target, action in ((call_target(("f", {"a": 1}), ("g", {})), fc("f", {"a": "1", "b": 2})),
                           (message_target(), {"type": "message", "content": "Ships tomorrow"})):
        b = grade_action(None, target, action, grader="keyword")
        data = b.to_json("x/y/1")
        assert list(data)[:8] == ["id", "reward", "action_type_match", "name_match", "arg_match", "grader", "reason", "keys"]
        assert Breakdown.from_json(data) == b


def test_lazy_toolset_agrees_with_normalise_tools(demo_store):
    from nemo_core.grading.grade import LazyToolSet
    from nemo_core.data.compression import decompress_json

    quirky = [WEATHER_TOOL_QUIRKY, {"name": "flat", "parameters": {"type": "string"}},
              {"type": "function", "function": {"name": "flat", "parameters": {"properties": {"a": {}}}}},
              {"type": "function", "function": {"name": "req", "required": ["a"], "parameters": {"properties": {}}}},
              {"type": "function", "function": {"name": "submit_message", "parameters": {}}}, "junk", {"name": ""}]
    tool_lists = [quirky] + [decompress_json(b).get("tools") for (b,) in demo_store.conn.execute("SELECT body FROM conversations")]
    for raw_tools in tool_lists:
        full, lazy = normalise_tools(raw_tools), LazyToolSet(raw_tools)
        for name in [*full.names, "submit_message", "not_a_tool"]:
            assert lazy.schema_of(name) == full.schema_of(name), name
        assert lazy.names == full.names  # anything else falls through to the full ToolSet


def test_a_breakdown_is_built_by_name_never_by_position():
    """`Breakdown` fields are keyword-only: the named constructors say which way a grade came about."""
    from nemo_core.grading.grade import Breakdown

    with pytest.raises(TypeError):
        Breakdown(0.5, 1, None, None, "keyword", None, "f1")  # type: ignore[misc]
    b = Breakdown.graded_by_keyword(score=0.5, reason="f1")
    assert (b.reward, b.action_type_match, b.grader, b.expected_type, b.submitted_type) == (0.5, 1, "keyword",
                                                                                          "message", "message")
    assert Breakdown.from_json(b.to_json()) == b
    w = Breakdown.wrong_action_type(expected_type="message", submitted_type="function_call", expected_name=None,
                                    submitted_name="f", notes=[])
    assert (w.reward, w.action_type_match, w.name_match, w.arg_match, w.reason) == (0.0, 0, None, None,
                                                                                   "wrong_action_type")
    n = Breakdown.not_graded("no_action", expected_type="message")
    assert (n.reward, n.grader, n.reason) == (None, "none", "no_action")
