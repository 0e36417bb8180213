"""A form generated from a tool's JSON schema, so a person can answer with a call without typing JSON.

string -> text input; number / integer -> number input; boolean -> checkbox (an optional boolean gets
"not set / true / false", since a checkbox cannot leave a key out); enum -> selectbox; array, object and
anything the form cannot type -> a JSON text area that must parse to the right kind. Required fields are
marked with *, descriptions are the help. A raw-JSON mode takes any arguments at all (extra keys, an empty
string, nested values, even a non-object, which SPEC §4 grades as `invalid_arguments`).

The real schemas are quirky (SPEC §1): no `"type": "object"` at the root, enum-only properties, arrays
without `items`, type lists, no `properties` at all, non-dict property schemas. `fields_of` copes with each
and says what it did. An empty field is left out of the arguments (the grader counts a missing key).

The parsing and validation (`fields_of`, `arguments_from`) are pure, so they are tested without a page.
Schema text is dataset text: labels go through `inert_label`, help through `escape_markdown`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from .safe import escape_markdown, inert_label

NOT_SET = "(not set)"
KINDS = ("string", "number", "integer", "boolean", "enum", "json")


@dataclass
class Field:
    """One top-level argument as the form shows it."""

    name: str
    kind: str  # one of KINDS
    required: bool = False
    description: str = ""
    options: list[Any] = field(default_factory=list)  # enum values
    json_type: str | None = None  # for kind json: "array", "object", or None (any JSON)
    type_label: str = ""


@dataclass
class FormResult:
    """A submitted form: the arguments, or the errors that stopped the submission."""

    arguments: Any = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _single_type(kind: Any) -> str | None:
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        real = [k for k in kind if isinstance(k, str) and k != "null"]
        return real[0] if len(real) == 1 else None
    return None


def field_of(name: str, schema: Any, required: bool) -> Field:
    """The form field for one property schema (see the module docstring for the rules)."""
    if not isinstance(schema, dict):
        return Field(name, "json", required, type_label="any JSON (the schema is not an object)")
    description = schema.get("description") if isinstance(schema.get("description"), str) else ""
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return Field(name, "enum", required, description, options=list(enum), type_label="one of the listed values")
    kind = _single_type(schema.get("type"))
    if kind in ("string", "number", "integer", "boolean"):
        return Field(name, kind, required, description, type_label=kind)
    if kind in ("array", "object"):
        return Field(name, "json", required, description, json_type=kind, type_label=f"JSON {kind}")
    if kind is None and isinstance(schema.get("properties"), dict):
        return Field(name, "json", required, description, json_type="object", type_label="JSON object")
    if kind is None and "items" in schema:
        return Field(name, "json", required, description, json_type="array", type_label="JSON array")
    return Field(name, "json", required, description, type_label="any JSON")


def fields_of(schema: Any) -> tuple[list[Field], list[str]]:
    """The fields of a tool's parameters schema, and notes on what the form cannot show."""
    notes: list[str] = []
    if schema is None:  # OpenAI allows a function without parameters
        return [], []
    if not isinstance(schema, dict):
        return [], ["the parameters are not a JSON object: use raw JSON"]
    props = schema.get("properties")
    if props is None or props == {}:
        return [], []
    if not isinstance(props, dict):
        return [], ["'properties' is not an object: use raw JSON"]
    required_raw = schema.get("required")
    required = {r for r in required_raw if isinstance(r, str)} if isinstance(required_raw, list) else set()
    fields = [field_of(str(name), sub, name in required) for name, sub in props.items()]
    if schema.get("additionalProperties") not in (None, False):
        notes.append("the tool accepts keys beyond those listed: add them in raw JSON")
    if missing := sorted(required - set(map(str, props))):
        notes.append("required but not described: " + ", ".join(missing) + " (use raw JSON)")
    return fields, notes


def _number(value: Any) -> Any:
    """An integral float from a number input becomes an int (250.0 -> 250); JSON equality is by value."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def arguments_from(fields: list[Field], values: dict[str, Any]) -> FormResult:
    """The arguments object from the widgets' values (`None` or "" = left out), or why not."""
    out: dict[str, Any] = {}
    errors: list[str] = []
    for f in fields:
        value = values.get(f.name)
        if f.kind == "json":
            text = (value or "").strip() if isinstance(value, str) else ""
            if not text:
                value = None
            else:
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    errors.append(f"{f.name}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
                    continue
                if f.json_type == "array" and not isinstance(value, list):
                    errors.append(f"{f.name}: must be a JSON array, like [\"a\", \"b\"]")
                    continue
                if f.json_type == "object" and not isinstance(value, dict):
                    errors.append(f"{f.name}: must be a JSON object, like {{\"key\": \"value\"}}")
                    continue
        elif f.kind == "string":
            value = value if isinstance(value, str) and value != "" else None
        elif f.kind in ("number", "integer"):
            value = _number(value) if value is not None else None
        elif f.kind == "boolean":
            if value == NOT_SET:
                value = None
        elif f.kind == "enum" and value == NOT_SET:
            value = None
        if value is None:
            if f.required:
                errors.append(f"{f.name}: required (fill it in, or use raw JSON to leave it out)")
            continue
        out[f.name] = value
    return FormResult(None if errors else out, errors)


def parse_raw(text: str) -> FormResult:
    """Raw-JSON mode: any valid JSON (a non-object is graded as invalid_arguments, SPEC §4)."""
    try:
        return FormResult(json.loads(text or ""))
    except ValueError as exc:
        return FormResult(None, [f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"])


def _option_label(value: Any) -> str:
    if value == NOT_SET:
        return NOT_SET
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_PLAIN_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_]{0,58}[A-Za-z0-9])?")


def field_label(f: Field) -> str:
    """The widget label: a plain identifier as is (an underscore inside a word is never Markdown, and
    screen readers then read the name, not backslashes), anything else escaped; " *" marks required."""
    name = f.name if _PLAIN_NAME.fullmatch(f.name) else inert_label(f.name, 60)
    return name + (" *" if f.required else "")


def _widget(f: Field, key: str) -> Any:
    label = field_label(f)
    help_text = escape_markdown(f"{f.type_label}{' · required' if f.required else ''}"
                                + (f" — {f.description}" if f.description else ""))
    wkey = f"{key}::field::{f.name}"
    if f.kind == "string":
        return st.text_input(label, key=wkey, help=help_text)
    if f.kind == "number":
        return st.number_input(label, value=None, key=wkey, help=help_text, placeholder="a number", format="%g")
    if f.kind == "integer":
        return st.number_input(label, value=None, step=1, key=wkey, help=help_text, placeholder="a whole number")
    if f.kind == "boolean":
        if f.required:
            return st.checkbox(label, key=wkey, help=help_text)
        return st.selectbox(label, [NOT_SET, True, False], key=wkey, help=help_text,
                            format_func=lambda v: v if v == NOT_SET else json.dumps(v))
    if f.kind == "enum":
        options = f.options if f.required else [NOT_SET, *f.options]
        return st.selectbox(label, options, index=None if f.required else 0, key=wkey, help=help_text,
                            format_func=_option_label, placeholder="choose a value")
    placeholder = {"array": '["a", "b"]', "object": '{"key": "value"}'}.get(f.json_type or "", "any JSON value")
    return st.text_area(label, key=wkey, help=help_text, placeholder=placeholder, height=90)


def render_schema_form(schema: Any, key: str, *, submit_label: str = "Submit",
                       shortcut: str | None = None) -> FormResult | None:
    """Draw the form for `schema` (a tool's `parameters`); a `FormResult` on the run it is submitted (its
    errors already shown), else None. `key` must be unique on the page (say, decision point + tool)."""
    fields, notes = fields_of(schema)
    raw_default = not fields and bool(notes)
    raw_mode = st.toggle("Raw JSON arguments", value=raw_default, key=f"{key}::raw_mode",
                         help="Type the arguments object yourself: for keys, values or shapes the form cannot express.")
    for note in notes:
        st.caption("Note: " + escape_markdown(note))
    with st.form(f"{key}::form"):
        if raw_mode:
            text = st.text_area("Arguments (JSON)", value="{}", key=f"{key}::raw", height=160,
                                help="Any JSON; an object is expected (anything else scores invalid_arguments).")
        elif not fields:
            st.caption("This tool takes no parameters: the call is sent with {} as its arguments.")
        else:
            if any(f.required for f in fields):
                st.caption("\\* required. An empty field is left out of the arguments.")
            values = {f.name: _widget(f, key) for f in fields}
        submitted = st.form_submit_button(submit_label, type="primary", shortcut=shortcut)
    if not submitted:
        return None
    if raw_mode:
        result = parse_raw(text)
    elif not fields:
        result = FormResult({})
    else:
        result = arguments_from(fields, values)
    for error in result.errors:
        st.error(escape_markdown(error))
    return result
