"""The form generated from a tool's JSON schema (ui/schema_form.py), through Streamlit's AppTest: every schema
type, required fields, invalid JSON, raw-JSON mode, and the real schemas' quirks (SPEC §1)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from ui.schema_form import Field, arguments_from, field_label, fields_of, parse_raw

ALL_TYPES = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Who is asking"},
        "count": {"type": "integer", "description": "How many"},
        "ratio": {"type": "number"},
        "flag": {"type": "boolean"},
        "opt_flag": {"type": "boolean"},
        "colour": {"type": "string", "enum": ["red", "green"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "meta": {"type": "object", "properties": {"a": {"type": "string"}}},
    },
    "required": ["name", "count", "flag", "colour"],
}

QUIRKY = {  # the interactive_agent shapes: no root type, enum-only property, array without items, ...
    "properties": {
        "reason": {"enum": ["user_request", "delivery_issue", 3]},
        "dietary_flags": {"type": "array"},
        "nickname": {"type": ["string", "null"]},
        "anything": {},
        "odd": "not a schema",
        "address": {"properties": {"city": {"type": "string"}}},
    },
    "required": ["reason"],
}


def form_app(schema):
    import streamlit as st

    from ui.schema_form import render_schema_form

    result = render_schema_form(schema, key="t", submit_label="Send")
    if result is not None:
        st.session_state["result"] = {"arguments": result.arguments, "errors": result.errors}


def run_form(schema) -> AppTest:
    at = AppTest.from_function(form_app, args=(schema,), default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def widget(at: AppTest, kind: str, name: str):
    """The widget of field `name` (its key is t::field::<name>)."""
    return getattr(at, kind)(key=f"t::field::{name}")


def submit(at: AppTest) -> dict | None:
    at.session_state["result"] = None
    [b for b in at.button if b.label == "Send"][0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at.session_state["result"]


def test_every_type_gets_its_widget_with_required_marks_and_help():
    at = run_form(ALL_TYPES)
    assert widget(at, "text_input", "name").label == "name *"
    assert "Who is asking" in widget(at, "text_input", "name").help
    assert widget(at, "number_input", "count").label == "count *"
    assert widget(at, "number_input", "ratio").label == "ratio"
    assert widget(at, "checkbox", "flag").label == "flag *"
    assert widget(at, "selectbox", "opt_flag").options == ["(not set)", "true", "false"]
    assert widget(at, "selectbox", "colour").options == ["red", "green"]
    assert widget(at, "selectbox", "colour").value is None  # a required enum starts unchosen
    assert widget(at, "text_area", "tags").label == "tags"
    assert widget(at, "text_area", "meta").label == "meta"
    assert any("required" in c.value for c in at.caption)


def test_filled_form_gives_typed_arguments_and_leaves_empty_fields_out():
    at = run_form(ALL_TYPES)
    widget(at, "text_input", "name").input("Ada")
    widget(at, "number_input", "count").set_value(3)
    widget(at, "number_input", "ratio").set_value(0.25)
    widget(at, "checkbox", "flag").check()
    widget(at, "selectbox", "colour").set_value("green")
    widget(at, "text_area", "tags").input('["x", "y"]')
    result = submit(at)
    assert result["errors"] == []
    args = result["arguments"]
    assert args == {"name": "Ada", "count": 3, "ratio": 0.25, "flag": True, "colour": "green", "tags": ["x", "y"]}
    assert isinstance(args["count"], int)
    assert "opt_flag" not in args and "meta" not in args


def test_optional_boolean_can_be_false_and_numbers_stay_numbers():
    at = run_form(ALL_TYPES)
    widget(at, "text_input", "name").input("Ada")
    widget(at, "number_input", "count").set_value(0)
    widget(at, "selectbox", "colour").set_value("red")
    widget(at, "selectbox", "opt_flag").set_value(False)
    widget(at, "text_area", "meta").input('{"a": "b"}')
    args = submit(at)["arguments"]
    assert args["opt_flag"] is False and args["flag"] is False and args["count"] == 0
    assert args["meta"] == {"a": "b"}


def test_missing_required_fields_stop_the_submission():
    at = run_form(ALL_TYPES)
    result = submit(at)
    assert result["arguments"] is None
    assert {e.split(":")[0] for e in result["errors"]} == {"name", "count", "colour"}  # flag is a checkbox
    assert len(at.error) == 3


def test_invalid_json_in_array_or_object_field_is_an_error_and_no_submission():
    at = run_form(ALL_TYPES)
    widget(at, "text_input", "name").input("Ada")
    widget(at, "number_input", "count").set_value(1)
    widget(at, "selectbox", "colour").set_value("red")
    widget(at, "text_area", "tags").input('["x", ')
    widget(at, "text_area", "meta").input("[1, 2]")
    result = submit(at)
    assert result["arguments"] is None
    assert any(e.startswith("tags: not valid JSON") for e in result["errors"])
    assert any(e.startswith("meta: must be a JSON object") for e in result["errors"])
    assert any("not valid JSON" in e.value for e in at.error)


def test_quirky_schema_every_property_gets_a_widget():
    at = run_form(QUIRKY)
    assert widget(at, "selectbox", "reason").options == ["user_request", "delivery_issue", "3"]
    assert widget(at, "text_area", "dietary_flags").label == "dietary_flags"
    assert widget(at, "text_input", "nickname").label == "nickname"  # ["string", "null"] is a string
    for name in ("anything", "odd", "address"):
        assert widget(at, "text_area", name) is not None
    widget(at, "selectbox", "reason").set_value(3)
    widget(at, "text_area", "dietary_flags").input('["vegan", 1, {"x": null}]')
    widget(at, "text_area", "anything").input("42")
    widget(at, "text_area", "address").input('{"city": "Oslo"}')
    result = submit(at)
    assert result["errors"] == []
    assert result["arguments"] == {"reason": 3, "dietary_flags": ["vegan", 1, {"x": None}], "anything": 42,
                                   "address": {"city": "Oslo"}}


@pytest.mark.parametrize("schema", [{}, {"type": "object"}, {"type": "object", "properties": {}}, None])
def test_no_properties_at_all_submits_empty_arguments(schema):
    at = run_form(schema)
    assert not at.text_input and not at.text_area and not at.number_input
    assert any("no parameters" in c.value for c in at.caption)
    assert submit(at) == {"arguments": {}, "errors": []}


def test_raw_json_mode_takes_anything_valid_and_rejects_invalid():
    at = run_form(ALL_TYPES)
    at.toggle(key="t::raw_mode").set_value(True).run()
    raw = at.text_area(key="t::raw")
    raw.input('{"name": "", "extra_key": [1, 2]}')
    assert submit(at) == {"arguments": {"name": "", "extra_key": [1, 2]}, "errors": []}
    at.text_area(key="t::raw").input("[1, 2]")
    assert submit(at)["arguments"] == [1, 2]  # graded later as invalid_arguments (SPEC §4)
    at.text_area(key="t::raw").input("{nope")
    result = submit(at)
    assert result["arguments"] is None and result["errors"][0].startswith("not valid JSON")


def test_parameters_that_are_not_an_object_open_in_raw_mode():
    at = run_form(["not", "a", "schema"])
    assert at.toggle(key="t::raw_mode").value is True
    assert any("not a JSON object" in c.value for c in at.caption)


# ---- the pure parts ------------------------------------------------------------------------------------
def test_fields_of_kinds_and_notes():
    fields, notes = fields_of({"properties": {"a": {"type": "integer"}, "b": {"type": ["number", "string"]}},
                               "required": ["a", "zz"], "additionalProperties": True})
    assert [(f.name, f.kind, f.required) for f in fields] == [("a", "integer", True), ("b", "json", False)]
    assert any("zz" in n for n in notes) and any("beyond" in n for n in notes)
    assert fields_of({"properties": []}) == ([], ["'properties' is not an object: use raw JSON"])


def test_arguments_from_converts_integral_floats_and_keeps_empty_strings_out():
    fields = [Field("n", "number"), Field("s", "string"), Field("j", "json", json_type="array")]
    assert arguments_from(fields, {"n": 250.0, "s": "", "j": "  "}).arguments == {"n": 250}
    assert arguments_from(fields, {"n": 2.5, "s": " x ", "j": "[]"}).arguments == {"n": 2.5, "s": " x ", "j": []}
    assert parse_raw("").errors


def test_field_labels_keep_plain_names_and_escape_anything_else():
    assert field_label(Field("user_id", "string", required=True)) == "user_id *"
    assert field_label(Field("_x_", "string")) == "\\_x\\_"  # would be emphasis
    label = field_label(Field("![x](http://203.0.113.7/p.png)", "string"))
    assert label.startswith("\\!\\[x\\]\\(")
