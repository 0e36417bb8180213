"""JSON text in and out, with the limits every reader of outside data applies (dataset rows, prediction lines).

Why one module: a value that one reader accepts must be one every later step can handle (extraction, the
store, grading, `show`, the pages), or one bad row or line stops a whole ingest or run. So the rules live here:

- **Lone UTF-16 surrogates** (`"\\ud800"`: valid JSON text, but not a character, so it cannot be written as
  UTF-8, stored in SQLite or printed) are *repaired*: each becomes U+FFFD, the replacement character, as every
  lossy UTF-16 decoder does. The raw line is stored as read; the repair is part of reading it, so a row stored
  before this rule existed reads the same way. `loads_json_counted` says how many were replaced.
- **Nesting**: at most `MAX_JSON_DEPTH` levels (the line itself is level 1). Deeper values are refused with
  `JSONLimitError`: every recursive step after reading (deep equality, schema checks, printing) then has room
  on the stack, whatever Python's recursion limit is near.
- **Integers** are exact at any size up to Python's limit for converting digits (4,300 by default); a longer
  one is refused with a clear error (orjson would say "number is infinity", Python "Exceeds the limit").
- **NaN and Infinity** are not JSON (RFC 8259). `strict=True` (prediction lines) refuses them, and numbers
  too large for a double (`1e400`), which would silently become `null` when stored; dataset rows are read
  leniently, as published, and such values print as `null` (`dumps_text`).

The fast path is orjson; the standard parser runs only for what orjson refuses (lone surrogates, NaN, numbers
beyond 64 bits, depth), so the checks cost nothing on ordinary lines.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

import orjson

MAX_JSON_DEPTH = 100  # levels of objects and arrays in one line, the line itself included
REPLACEMENT = "\ufffd"

_SURROGATE = re.compile("[\ud800-\udfff]")
# how a lone surrogate can reach a parsed value: escaped in the text (UTF-8 cannot hold one), or as itself in
# a Python str handed to the parser
_SURROGATE_SOURCE = re.compile("\\\\u[dD][89a-fA-F]|[\ud800-\udfff]")


class JSONLimitError(ValueError):
    """Valid JSON beyond what the workbench reads (too deep, an integer too long, NaN in strict mode)."""


def max_int_digits() -> int:
    """The longest integer read exactly: Python's int/str conversion limit (0 = no limit)."""
    return sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0


# ---- reading -----------------------------------------------------------------------------------------------
# Every ASCII digit becomes "0", each opening bracket "(", every other byte a space: a run of 20 digits is
# then a plain substring search, and the brackets one count. Measured on 17 kB conversations: 27 µs, against
# 260 µs for the regular expression `\d{20}`.
_SCAN_TABLE = bytes(0x30 if 0x30 <= b <= 0x39 else 0x28 if b in b"[{" else 0x20 for b in range(256))
_TWENTY_DIGITS = b"0" * 20


def has_long_digit_run(raw: bytes) -> bool:
    """Whether the bytes hold 20 digits in a row: the only way to write an integer beyond 64 bits."""
    return _TWENTY_DIGITS in raw.translate(_SCAN_TABLE)


def scan_line(raw: bytes) -> tuple[bool, int]:
    """(`has_long_digit_run`, number of opening brackets) in one pass over the bytes: what ingest needs to
    know of every row before it looks closer (`check_depth`'s `brackets`)."""
    scanned = raw.translate(_SCAN_TABLE)
    return _TWENTY_DIGITS in scanned, scanned.count(b"(")


def loads_json(data: bytes | str, *, exact: bool = False, strict: bool = False) -> Any:
    """Parse JSON under this module's rules; see `loads_json_counted`."""
    return loads_json_counted(data, exact=exact, strict=strict)[0]


def loads_json_counted(data: bytes | str, *, exact: bool = False, strict: bool = False) -> tuple[Any, int]:
    """(value, number of lone surrogates replaced by U+FFFD).

    Invalid UTF-8 raises UnicodeDecodeError, bad JSON ValueError, JSON beyond the limits `JSONLimitError`
    (a ValueError). orjson silently turns integers beyond 64 bits into floats; ingest only needs the indexed
    columns (the line itself is stored as read), so it takes the fast path, while reading a stored
    conversation or a prediction passes `exact=True`, which sends any text with a run of 20 digits to the
    exact parser. Nesting beyond `MAX_JSON_DEPTH` is checked by `check_depth`, not here (stored rows were
    checked when they were read in; a check on every read would cost more than it could find).
    """
    if exact:
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        if has_long_digit_run(raw):
            return _loads_exact(data, strict, None)
    try:
        return orjson.loads(data), 0
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):  # orjson stops at 1,024 levels
            raise _too_deep() from None
        return _loads_exact(data, strict, exc)


def _too_deep() -> JSONLimitError:
    return JSONLimitError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep (the limit)")


# Python's own message for an integer beyond its conversion limit, read back for a clearer one
_INT_LIMIT_MESSAGE = re.compile(r"limit \((\d+) digits\).*value has (\d+) digits")


def _constant_strict(text: str) -> float:
    raise JSONLimitError(f"{text} is not a JSON number (write null, or the value as a string)")


def _float_strict(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONLimitError(f"the number {text[:40]} is beyond the range of a 64-bit float (about ±1.8e308)")
    return value


def _loads_exact(data: bytes | str, strict: bool, orjson_error: Exception | None) -> tuple[Any, int]:
    """The standard parser (integers exact), with the limits; repairs lone surrogates."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:  # hooks only when strict: a hook is a Python call per number
        value = json.loads(text, parse_constant=_constant_strict, parse_float=_float_strict) if strict else json.loads(text)
    except JSONLimitError:
        raise
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        too_long = _INT_LIMIT_MESSAGE.search(str(exc))
        if too_long:
            raise JSONLimitError(f"an integer of {int(too_long[2]):,} digits: the limit is {int(too_long[1]):,} digits"
                                 ) from None
        raise ValueError(str(orjson_error or exc)) from None
    if _SURROGATE_SOURCE.search(text) is None:  # escaped valid pairs match too; then the walk finds nothing
        return value, 0
    return repair_surrogates(value)


def repair_surrogates(value: Any) -> tuple[Any, int]:
    """`value` with every lone UTF-16 surrogate in its strings and keys replaced by U+FFFD, and how many.
    Containers are fixed in place; iterative, so any depth the parser accepted is walked."""
    count = 0

    def fix(s: str) -> str:
        nonlocal count
        fixed, n = _SURROGATE.subn(REPLACEMENT, s)
        count += n
        return fixed

    if isinstance(value, str):
        return fix(value), count
    stack = [value] if isinstance(value, (dict, list)) else []
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    if _SURROGATE.search(item):
                        node[i] = fix(item)
                elif isinstance(item, (dict, list)):
                    stack.append(item)
            continue
        items = list(node.items())
        if any(_SURROGATE.search(k) for k, _ in items):
            node.clear()
            node.update((fix(k), v) for k, v in items)
        for key, item in node.items():
            if isinstance(item, str):
                if _SURROGATE.search(item):
                    node[key] = fix(item)
            elif isinstance(item, (dict, list)):
                stack.append(item)
    return value, count


def json_depth(value: Any, stop_after: int | None = None) -> int:
    """Levels of objects and arrays in a value (a scalar is 0, `[]` is 1). Iterative; with `stop_after` it
    returns as soon as the depth is known to exceed it."""
    if not isinstance(value, (dict, list)):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if stop_after is not None and deepest > stop_after:
                return deepest
        for item in node.values() if isinstance(node, dict) else node:
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
    return deepest


def check_depth(value: Any, raw: bytes | str, limit: int = MAX_JSON_DEPTH, *, brackets: int | None = None) -> None:
    """Raise `JSONLimitError` when `value` (parsed from `raw`) nests deeper than `limit`.

    Nesting needs a bracket per level, so text with no more brackets than the limit is within it: two
    counts in C (about 0.2 µs on a prediction line) decide almost every line without looking at the value.
    `brackets` passes that count when it is known (`scan_line`)."""
    if brackets is None:
        brackets = raw.count("{" if isinstance(raw, str) else b"{") + raw.count("[" if isinstance(raw, str) else b"[")
    if brackets <= limit:
        return
    if json_depth(value, stop_after=limit) > limit:
        raise JSONLimitError(f"JSON nested more than {limit} levels deep (the limit)")


# ---- writing -----------------------------------------------------------------------------------------------
def dumps(value: Any) -> str:
    """Compact JSON text; orjson because this runs for every call of every conversation at ingest."""
    return dumps_bytes(value).decode()


def dumps_bytes(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes: orjson, or the standard encoder for the integers beyond 64 bits that
    orjson refuses (they are kept exact, see `loads_json`). NaN and Infinity become null either way."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def dumps_text(value: Any, *, indent: bool = True) -> str:
    """JSON for people and pipes (`show --json`): always valid JSON, so NaN and Infinity (which a lenient
    read of a dataset row can hold) print as null, as orjson and JavaScript's JSON.stringify print them."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)).decode()
    except TypeError:  # integers beyond 64 bits
        return json.dumps(finite(value), ensure_ascii=False, indent=2 if indent else None, allow_nan=False)


def finite(value: Any) -> Any:
    """A copy of a JSON value with NaN and ±Infinity replaced by None (only floats can be them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value
