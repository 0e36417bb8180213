"""Function-call scoring (SPEC §4): name match, per-key argument match, best of several expected calls.

`reward = 0.5 * name_match + 0.5 * arg_match`, where `arg_match` is the number of matching keys over the
keys in expected ∪ submitted (both empty: 1.0). Values are compared by `values_equal`. Everything else
this module computes — per-key hints, JSON-schema validity — is shown to the user and never changes the
score, so two people can always recompute a reward from the rule alone.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import orjson

from ..data.records import ToolCall, ToolSet, json_kind

MATCH, MISMATCH, MISSING, EXTRA = "match", "mismatch", "missing", "extra"
KEY_STATUSES = (MATCH, MISMATCH, MISSING, EXTRA)

INVALID_ARGUMENTS = "invalid_arguments"
WRONG_ACTION_TYPE = "wrong_action_type"
UNGRADEABLE_REFERENCE = "ungradeable_reference"
EXACT_MATCH = "exact_match"
WRONG_NAME = "wrong_name"
ARGUMENT_MISMATCH = "argument_mismatch"


# ---- value equality ----------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def values_equal(expected: Any, submitted: Any) -> bool:
    """Deep JSON equality as SPEC §4 defines it.

    Numbers by value (`1 == 1.0`) but never equal to strings (`"1" != 1`) or booleans (`true != 1`, which
    Python alone would call equal); strings after trimming outer whitespace, case-sensitive; objects by
    keys and values; arrays in order; `null` only equal to `null`.
    """
    if expected is None or submitted is None:
        return expected is None and submitted is None
    if isinstance(expected, bool) or isinstance(submitted, bool):
        return isinstance(expected, bool) and isinstance(submitted, bool) and expected == submitted
    if _is_number(expected) or _is_number(submitted):
        return _is_number(expected) and _is_number(submitted) and expected == submitted
    if isinstance(expected, str) or isinstance(submitted, str):
        return isinstance(expected, str) and isinstance(submitted, str) and expected.strip() == submitted.strip()
    if isinstance(expected, dict) or isinstance(submitted, dict):
        if not (isinstance(expected, dict) and isinstance(submitted, dict)) or expected.keys() != submitted.keys():
            return False
        return all(values_equal(v, submitted[k]) for k, v in expected.items())
    if isinstance(expected, list) or isinstance(submitted, list):
        if not (isinstance(expected, list) and isinstance(submitted, list)) or len(expected) != len(submitted):
            return False
        return all(values_equal(a, b) for a, b in zip(expected, submitted))
    return expected == submitted


def _same_items_any_order(expected: list, submitted: list) -> bool:
    if len(expected) != len(submitted) or len(expected) > 200:
        return False
    remaining = list(submitted)
    for item in expected:
        for j, other in enumerate(remaining):
            if values_equal(item, other):
                del remaining[j]
                break
        else:
            return False
    return True


def _squash(text: str) -> str:
    return " ".join(text.split())


def value_hint(expected: Any, submitted: Any) -> str | None:
    """Why two unequal values look alike (never changes the score)."""
    if isinstance(expected, str) and isinstance(submitted, str):
        e, s = expected.strip(), submitted.strip()
        if e.casefold() == s.casefold():
            return "differs only in case"
        if _squash(e) == _squash(s):
            return "differs only in whitespace"
        if _squash(e).casefold() == _squash(s).casefold():
            return "differs only in case and whitespace"
        return None
    for text, number, side in ((submitted, expected, "submitted"), (expected, submitted, "expected")):
        if isinstance(text, str) and _is_number(number):
            try:
                same = float(text.strip()) == number
            except ValueError:
                same = False
            what = f"{side} value is a string, the other a number"
            return f"{what} (same value as text: {text.strip()!r} vs {number!r})" if same else what
    if isinstance(expected, bool) != isinstance(submitted, bool) and (_is_number(expected) or _is_number(submitted)):
        return "boolean vs number (true is not 1)"
    if isinstance(expected, list) and isinstance(submitted, list) and _same_items_any_order(expected, submitted):
        return "same items in a different order (arrays are compared in order)"
    if isinstance(expected, dict) and isinstance(submitted, dict):
        differing = sorted(k for k in expected.keys() | submitted.keys()
                           if k not in expected or k not in submitted or not values_equal(expected[k], submitted[k]))
        if differing:
            return "nested object differs at " + ", ".join(repr(k) for k in differing[:5])
    if type(expected) is not type(submitted) and not (_is_number(expected) and _is_number(submitted)):
        return f"expected a JSON {json_kind(expected)}, got a JSON {json_kind(submitted)}"
    return None


# ---- JSON schema validity (hints only) -------------------------------------------------------------------
_TYPE_ALIASES = {
    "string": "string", "str": "string", "text": "string",
    "integer": "integer", "int": "integer",
    "number": "number", "float": "number", "double": "number",
    "boolean": "boolean", "bool": "boolean",
    "object": "object", "dict": "object",
    "array": "array", "list": "array", "tuple": "array",
    "null": "null", "none": "null",
}
_NUMERIC_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
                     "minItems", "maxItems", "minProperties", "maxProperties", "multipleOf")


def tolerant_schema(node: Any) -> dict:
    """A copy of a real tool schema that jsonschema can apply without raising.

    The data's schemas have quirks (SPEC §1): no `"type": "object"`, enum-only properties, arrays without
    `items`, no `properties`, Python type names (`str`, `int`, `dict`), `required: true` on a property,
    regexes Python cannot compile, unresolvable `$ref`s. Keywords that are malformed are dropped rather than
    guessed at, so a quirk can only make validation more lenient, never flag a value wrongly.
    """
    if not isinstance(node, dict):
        return {}
    out: dict[str, Any] = {}
    kind = node.get("type")
    if isinstance(kind, str):
        mapped = _TYPE_ALIASES.get(kind.strip().lower())
        if mapped:
            out["type"] = mapped
    elif isinstance(kind, list):
        mapped_list = [_TYPE_ALIASES[k.strip().lower()] for k in kind if isinstance(k, str) and k.strip().lower() in _TYPE_ALIASES]
        if mapped_list:
            out["type"] = sorted(set(mapped_list))
    props = node.get("properties")
    if isinstance(props, dict):
        out["properties"] = {k: tolerant_schema(v) for k, v in props.items() if isinstance(v, dict)}
    required = node.get("required")
    if isinstance(required, list) and all(isinstance(r, str) for r in required):
        out["required"] = list(dict.fromkeys(required))
    items = node.get("items")
    if isinstance(items, dict):
        out["items"] = tolerant_schema(items)
    enum = node.get("enum")
    if isinstance(enum, list) and enum:
        out["enum"] = enum
    if "const" in node:
        out["const"] = node["const"]
    extra = node.get("additionalProperties")
    if isinstance(extra, bool):
        out["additionalProperties"] = extra
    elif isinstance(extra, dict):
        out["additionalProperties"] = tolerant_schema(extra)
    for key in ("anyOf", "oneOf", "allOf"):
        value = node.get(key)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out[key] = [tolerant_schema(v) for v in value]
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
            out["pattern"] = pattern
        except re.error:
            pass
    for key in _NUMERIC_KEYWORDS:
        value = node.get(key)
        if _is_number(value):
            out[key] = value
    if isinstance(node.get("uniqueItems"), bool):
        out["uniqueItems"] = node["uniqueItems"]
    return out


@dataclass(slots=True)
class SchemaCheck:
    """Whether submitted arguments are valid under the tool's schema; `valid` is None when there is no
    schema to check against (an unknown tool) or it could not be applied."""

    valid: bool | None
    errors: list[str] = field(default_factory=list)
    by_key: dict[str, str] = field(default_factory=dict)  # first error under each top-level key
    properties: frozenset[str] | None = None
    required: frozenset[str] = frozenset()


_FAST_KEYWORDS = frozenset({
    "type", "properties", "required", "items", "enum", "const", "additionalProperties", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems",
})


def _fast_supported(schema: dict) -> bool:
    """True when every keyword in the (tolerant) schema is one `_fast_errors` implements."""
    if not schema.keys() <= _FAST_KEYWORDS:
        return False
    props = schema.get("properties")
    if props and not all(_fast_supported(v) for v in props.values()):
        return False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict) and not _fast_supported(schema[key]):
            return False
    return True


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality as JSON Schema's enum/const use it: 1 == 1.0, but true != 1, strings exact."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return _is_number(value)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    return True


def _fast_errors(schema: dict, value: Any, path: tuple) -> list[tuple[tuple, str]]:
    """Draft-7 validation for the common keywords only (see `_FAST_KEYWORDS`), about 20x faster than
    building and running a jsonschema validator per tool; schemas using other keywords go to jsonschema."""
    errors: list[tuple[tuple, str]] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, k) for k in kinds):
            shown = ", ".join(repr(k) for k in kinds)
            errors.append((path, f"{value!r:.60} is not of type {shown}"))
            return errors
    if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
        errors.append((path, f"{value!r:.60} is not one of {schema['enum']!r:.120}"))
    if "const" in schema and not _json_equal(value, schema["const"]):
        errors.append((path, f"{schema['const']!r:.60} was expected"))
    if _is_number(value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append((path, f"{value!r} is less than the minimum of {schema['minimum']!r}"))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append((path, f"{value!r} is greater than the maximum of {schema['maximum']!r}"))
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append((path, f"{value!r} is less than or equal to the minimum of {schema['exclusiveMinimum']!r}"))
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            errors.append((path, f"{value!r} is greater than or equal to the maximum of {schema['exclusiveMaximum']!r}"))
    elif isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append((path, f"{value!r:.60} is too short"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append((path, f"{value!r:.60} is too long"))
    elif isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append((path, "the array is too short"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append((path, "the array is too long"))
        items = schema.get("items")
        if isinstance(items, dict) and items:
            for i, item in enumerate(value):
                errors.extend(_fast_errors(items, item, (*path, i)))
    elif isinstance(value, dict):
        props = schema.get("properties") or {}
        for key in schema.get("required", ()):
            if key not in value:
                errors.append((path, f"{key!r} is a required property"))
        for key, sub in props.items():
            if key in value and sub:
                errors.extend(_fast_errors(sub, value[key], (*path, key)))
        extra = schema.get("additionalProperties")
        if extra is not None and extra is not True:
            unexpected = [k for k in value if k not in props]
            if extra is False and unexpected:
                shown = ", ".join(repr(k) for k in unexpected[:5])
                errors.append((path, f"Additional properties are not allowed ({shown} {'was' if len(unexpected) == 1 else 'were'} unexpected)"))
            elif isinstance(extra, dict):
                for k in unexpected:
                    errors.extend(_fast_errors(extra, value[k], (*path, k)))
    return errors


class _ValidatorCache:
    """Checkers keyed by the schema's JSON text.

    The same tool definitions recur across thousands of conversations, so a million predictions build
    a few thousand checkers, not a million. Bounded: cleared when full."""

    def __init__(self, max_size: int = 20_000):
        self._items: dict[bytes, tuple[dict, Any, frozenset | None, frozenset]] = {}
        # The same schema object is asked about once per prediction of its conversation: found by identity
        # it skips encoding the schema as the key. The entry holds the object, so its id cannot be reused.
        self._by_identity: dict[int, tuple[dict, tuple[dict, Any, frozenset | None, frozenset]]] = {}
        self._max = max_size
        self._lock = threading.Lock()

    def get(self, schema: dict) -> tuple[dict, Any, frozenset | None, frozenset]:
        """(tolerant schema, jsonschema validator or None when the fast checker covers it, properties, required)."""
        known = self._by_identity.get(id(schema))
        if known is not None and known[0] is schema:
            return known[1]
        key = orjson.dumps(schema, option=orjson.OPT_NON_STR_KEYS)
        entry = self._items.get(key)
        if entry is None:
            clean = tolerant_schema(schema)
            validator = None if _fast_supported(clean) else jsonschema.Draft7Validator(clean)
            props = frozenset(clean["properties"]) if "properties" in clean else None
            entry = (clean, validator, props, frozenset(clean.get("required", ())))
        with self._lock:
            if len(self._items) >= self._max:
                self._items.clear()
            if len(self._by_identity) >= self._max:
                self._by_identity.clear()
            self._items[key] = entry
            self._by_identity[id(schema)] = (schema, entry)
        return entry


_VALIDATORS = _ValidatorCache()


def check_schema(schema: dict | None, arguments: dict) -> SchemaCheck:
    if schema is None:
        return SchemaCheck(None, ["the tool is not in the task's tool list, so there is no schema to check"])
    try:
        clean, validator, props, required = _VALIDATORS.get(schema)
        if validator is None:
            found = _fast_errors(clean, arguments, ())
        else:
            found = [(tuple(e.absolute_path), e.message) for e in validator.iter_errors(arguments)]
    except Exception as exc:  # a schema quirk tolerant_schema did not foresee: say so, do not fail grading
        return SchemaCheck(None, [f"the tool's schema could not be applied ({type(exc).__name__})"])
    check = SchemaCheck(not found, properties=props, required=required)
    for path, message in found[:20]:
        where = "/".join(str(p) for p in path) or "(arguments)"
        message = message if len(message) <= 160 else message[:159] + "…"
        check.errors.append(f"{where}: {message}")
        if path and isinstance(path[0], str) and path[0] not in check.by_key:
            check.by_key[path[0]] = message
    return check


# ---- scoring one call ------------------------------------------------------------------------------------
@dataclass(slots=True)
class KeyResult:
    """One argument key in expected ∪ submitted: its status, both values, and a non-scoring hint."""

    key: str
    status: str
    expected: Any = None
    submitted: Any = None
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "status": self.status, "expected": self.expected, "submitted": self.submitted,
                "hint": self.hint}


@dataclass(slots=True)
class CallScore:
    reward: float | None
    name_match: int | None
    arg_match: float | None
    reason: str
    keys: list[KeyResult] = field(default_factory=list)
    matched_call: int | None = None
    expected_name: str | None = None
    schema_valid: bool | None = None
    schema_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _key_results(expected: dict, submitted: dict, check: SchemaCheck | None) -> tuple[list[KeyResult], int]:
    keys: list[KeyResult] = []
    matched = 0
    for key in [*expected, *(k for k in submitted if k not in expected)]:
        hints: list[str] = []
        if key in expected and key in submitted:
            e, s = expected[key], submitted[key]
            if values_equal(e, s):
                status = MATCH
                matched += 1
            else:
                status = MISMATCH
                hint = value_hint(e, s)
                if hint:
                    hints.append(hint)
        elif key in expected:
            status, e, s = MISSING, expected[key], None
            if check is not None and key in check.required:
                hints.append("required by the tool's schema")
        else:
            status, e, s = EXTRA, None, submitted[key]
            if check is not None and check.properties is not None and key not in check.properties:
                hints.append("not a parameter in the tool's schema")
        if check is not None and check.valid is not None and status != MISSING:
            problem = check.by_key.get(key)
            if problem:
                hints.append(f"submitted value not valid under the tool's schema: {problem}")
            elif status != MATCH:
                hints.append("submitted value valid under the tool's schema")
        keys.append(KeyResult(key, status, e, s, "; ".join(hints) or None))
    return keys, matched


def score_call(expected: ToolCall, name: str, arguments: dict | None, arguments_error: str | None,
               toolset: ToolSet | None = None, check: SchemaCheck | None = None) -> CallScore:
    """Score a submitted call against one expected call (whose arguments must be an object). `check`: the
    submitted call's schema check when the caller has it already (it does not depend on the expected call)."""
    expected_args = expected.arguments or {}
    name_match = int(name == expected.name)
    if arguments is None:
        keys = [KeyResult(k, MISSING, v, None, "submitted arguments are not an object") for k, v in expected_args.items()]
        notes = [f"submitted arguments: {arguments_error}"] if arguments_error else []
        return CallScore(0.5 * name_match, name_match, 0.0, INVALID_ARGUMENTS, keys, expected.position, expected.name,
                         None, [], notes)
    if check is None and toolset is not None:
        check = check_schema(toolset.schema_of(name), arguments)
    keys, matched = _key_results(expected_args, arguments, check)
    arg_match = matched / len(keys) if keys else 1.0
    reward = 0.5 * name_match + 0.5 * arg_match
    detail = f"{matched} of {len(keys)} keys match" if keys else "no arguments on either side"
    if reward == 1.0:
        reason = EXACT_MATCH
    elif not name_match:
        reason = f"{WRONG_NAME}: expected {expected.name!r}, got {name!r}; {detail}"
    else:
        reason = f"{ARGUMENT_MISMATCH}: {detail}"
    return CallScore(reward, name_match, arg_match, reason, keys, expected.position, expected.name,
                     check.valid if check else None, check.errors if check else [])


def score_function_call(expected_calls: list[ToolCall], name: str, arguments: dict | None,
                        arguments_error: str | None, toolset: ToolSet | None = None) -> CallScore:
    """The best score over the expected calls (a parallel turn), naming the call it matched.

    Ties go to the earliest call. An expected call whose arguments are not an object cannot be graded:
    the whole decision point gets `reward: None`, reason `ungradeable_reference` (SPEC §4).
    """
    bad = [c for c in expected_calls if c.error is not None or c.name is None]
    if not expected_calls or bad:
        why = "; ".join(f"expected call {c.position}: {c.error or 'no name'}" for c in bad) or "no expected call"
        return CallScore(None, None, None, UNGRADEABLE_REFERENCE, notes=[why])
    best: CallScore | None = None
    # one schema check for all expected calls of a parallel turn: it depends on the submitted call only
    check = check_schema(toolset.schema_of(name), arguments) if toolset is not None and arguments is not None else None
    for call in expected_calls:
        score = score_call(call, name, arguments, arguments_error, toolset, check)
        if best is None or (score.reward, score.arg_match) > (best.reward, best.arg_match):
            best = score
        if best.reward == 1.0:
            break
    assert best is not None
    if len(expected_calls) > 1:
        best.notes.append(
            f"parallel turn: graded against expected call {best.matched_call + 1} of {len(expected_calls)} "
            f"({best.expected_name}), the best match"
        )
    return best
