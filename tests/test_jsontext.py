"""The JSON reading rules every reader of outside data shares (`nemo_core/data/jsontext.py`)."""

from __future__ import annotations

import json

import pytest

from nemo_core.data.jsontext import (MAX_JSON_DEPTH, JSONLimitError, check_depth, dumps_bytes, dumps_text, json_depth,
                                     loads_json, loads_json_counted, scan_line)


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_lone_surrogates_are_replaced_in_values_and_keys_and_counted():
    value, n = loads_json_counted(b'{"a\\ud800": ["x\\udfffy", {"k": "\\ud800\\ud800"}], "ok": "\\ud83d\\ude00"}')
    assert value == {"a\ufffd": ["x\ufffdy", {"k": "\ufffd\ufffd"}], "ok": "\U0001F600"}
    assert n == 4
    assert dumps_bytes(value)  # now encodable
    assert loads_json_counted(b'{"ok": "\\ud83d\\ude00"}') == ({"ok": "\U0001F600"}, 0)  # a valid pair is no repair


def test_a_python_string_holding_a_surrogate_itself_is_repaired_too():
    assert loads_json('{"a": "\ud800"}') == {"a": "\ufffd"}


def test_depth_is_checked_exactly_at_the_limit():
    ok = json.loads(nested(MAX_JSON_DEPTH))
    check_depth(ok, nested(MAX_JSON_DEPTH))
    assert json_depth(ok) == MAX_JSON_DEPTH
    over = json.loads(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(JSONLimitError, match=f"more than {MAX_JSON_DEPTH} levels"):
        check_depth(over, nested(MAX_JSON_DEPTH + 1))
    # brackets inside strings count for the quick test only; the value decides
    text = json.dumps({"s": "[" * 500})
    check_depth(json.loads(text), text)


def test_beyond_the_parsers_own_depth_is_the_same_clear_error():
    with pytest.raises(JSONLimitError, match="nested more than"):
        loads_json(nested(5000).encode())


def test_integers_are_exact_up_to_the_digit_limit_and_a_longer_one_says_so():
    assert loads_json(("1" * 400).encode(), exact=True) == int("1" * 400)
    assert loads_json(("1" * 400).encode()) == int("1" * 400)  # orjson refuses it; the exact parser reads it
    with pytest.raises(JSONLimitError, match="an integer of 5,001 digits: the limit is 4,300 digits"):
        loads_json(("7" * 5001).encode(), exact=True)
    with pytest.raises(JSONLimitError, match="5,001 digits"):
        loads_json(("-" + "7" * 5001).encode())


@pytest.mark.parametrize("text, message", [
    (b'{"x": NaN}', "NaN is not a JSON number"),
    (b'{"x": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"x": 1e400}', "beyond the range of a 64-bit float"),
])
def test_strict_reading_refuses_what_json_cannot_hold_and_lenient_reading_keeps_it(text, message):
    with pytest.raises(JSONLimitError, match=message):
        loads_json(text, strict=True)
    value = loads_json(text)
    assert isinstance(value["x"], float)


def test_malformed_json_keeps_orjsons_message_with_the_position():
    with pytest.raises(ValueError, match="line 1 column"):
        loads_json(b'{"a": ')


def test_dumps_text_is_always_valid_json():
    value = {"nan": float("nan"), "inf": float("-inf"), "big": 10 ** 30, "s": "é"}
    text = dumps_text(value)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {"nan": None, "inf": None, "big": 10 ** 30, "s": "é"}
    assert json.loads(dumps_bytes(value)) == {"nan": None, "inf": None, "big": 10 ** 30, "s": "é"}
    assert dumps_text({"a": float("nan")}, indent=False) == '{"a":null}'


def test_scan_line_finds_long_digit_runs_and_counts_opening_brackets():
    assert scan_line(b'{"a": [1, {"b": 12345678901234567890}]}') == (True, 3)
    assert scan_line(b'{"a": 1}') == (False, 1)
