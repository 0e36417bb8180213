"""Property-based fuzzing (Hypothesis) of the two readers of outside data: the dataset row reader (ingest) and
the prediction-line reader (`grade` and the upload). Arbitrary JSON values in every field, strings with lone
surrogates, NaN and Infinity, integers beyond 64 bits and past Python's digit limit, nesting past the limit:
no input aborts an ingest or a run, and every input yields a stored row, a rejected row or a per-line error.

Profiles: `ci` (the default: 60 examples a test, derandomized, so CI is fast and repeatable) and `thorough`
(`HYPOTHESIS_PROFILE=thorough`, 3,000 examples a test, random) for a local run.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import shutil
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nemo_core.grading.grade import grade_action
from nemo_core.runs.grade_file import grade_file
from nemo_core.data.ingest import ingest
from nemo_core.data.jsontext import dumps_text
from nemo_core.runs.run import get_run, predictions
from nemo_core.data.store import Store
from nemo_core.runs.uploads import validate_predictions

settings.register_profile("ci", max_examples=60, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_counter = itertools.count()


# ---- JSON text that json.dumps cannot write ------------------------------------------------------------------
@dataclass(frozen=True)
class Deep:
    """`levels` nested arrays, written as text (a Python value this deep would overflow json.dumps)."""

    levels: int


@dataclass(frozen=True)
class Raw:
    """JSON text written as it is (a number past the digit limit, a constant)."""

    text: str


def write(value) -> str:
    """JSON text of a value, writing what JSON's encoders refuse the way a hostile file would hold it: lone
    surrogates as escapes, NaN and Infinity as the tokens, huge integers in full."""
    if isinstance(value, Deep):
        return "[" * value.levels + "]" * value.levels
    if isinstance(value, Raw):
        return value.text
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)  # lone surrogates come out as \udXXX escapes
    if isinstance(value, list):
        return "[" + ",".join(write(v) for v in value) + "]"
    return "{" + ",".join(f"{write(str(k))}:{write(v)}" for k, v in value.items()) + "}"


SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
texts = st.one_of(
    st.text(max_size=12),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=4), SURROGATES, st.text(max_size=4)),
    st.sampled_from(["", " ", "user", "assistant", "tool", "system", "function", "message", "function_call",
                     "submit_message", "{\"a\": 1}", "[1, 2]", "{\"x\": NaN}", "{\"s\": \"\\ud800\"}", "null"]),
)
numbers = st.one_of(
    st.integers(min_value=-10 ** 6, max_value=10 ** 6),
    st.integers(min_value=2 ** 63, max_value=10 ** 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([Raw("1e400"), Raw("-1e999"), Raw("7" * 4301), Raw("-" + "9" * 5001), Raw("9" * 400)]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(
    st.one_of(scalars, st.integers(min_value=90, max_value=1300).map(Deep)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)),
    max_leaves=12,
)


# ---- the row reader --------------------------------------------------------------------------------------------
def good_row(uuid: str) -> dict:
    return {"uuid": uuid, "messages": [
        {"role": "system", "content": ""}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
            "name": "echo", "arguments": {"text": uuid}}}]},
        {"role": "tool", "content": {"ok": True}}, {"role": "assistant", "content": "done"}],
        "tools": [{"type": "function", "function": {"name": "echo", "parameters": {
            "type": "object", "properties": {"text": {"type": "string"}}}}}]}


@st.composite
def rows(draw) -> str:
    """A row of the dataset's shape with arbitrary values in its fields, or an arbitrary JSON value."""
    if draw(st.integers(0, 9)) == 0:
        return write(draw(values))
    uuid = draw(st.one_of(st.just(f"fuzz-{next(_counter)}"), texts.map(lambda t: f"fuzz-{next(_counter)}{t}")))
    call = {"type": draw(st.one_of(st.just("function"), values)),
            "function": draw(st.one_of(
                st.fixed_dictionaries({"name": st.one_of(st.just("echo"), values), "arguments": values}),
                values))}
    messages = [
        {"role": "system", "content": draw(st.one_of(st.just(""), values))},
        {"role": draw(st.sampled_from(["user", "tool"])), "content": draw(values)},
        {"role": "assistant", "content": draw(values), "tool_calls": draw(st.one_of(
            st.just([call]), st.lists(values, max_size=3), st.none())), "reasoning_content": draw(values)},
        {"role": "tool", "content": draw(values), "tool_call_id": draw(values)},
        {"role": "assistant", "content": draw(values), draw(texts): draw(values)},
    ]
    row = {"uuid": uuid, "messages": draw(st.one_of(st.just(messages), st.lists(values, max_size=3))),
           "tools": draw(st.one_of(st.just([{"type": "function", "function": {
               "name": draw(st.one_of(st.just("echo"), values)), "parameters": draw(values)}}]), values)),
           draw(texts): draw(values)}
    return write(row)


@pytest.fixture(scope="module")
def row_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-rows")
    store = Store.open(folder / "rows.db")
    yield store, folder
    store.close()


@given(fuzzed=rows())
def test_any_row_is_stored_or_rejected_and_never_stops_the_ingest(row_store, fuzzed):
    store, folder = row_store
    n = next(_counter)
    path = folder / f"tool_calling_{n}.jsonl"
    before, after = f"good-before-{n}", f"good-after-{n}"
    path.write_bytes(json.dumps(good_row(before)).encode() + b"\n" + fuzzed.encode("utf-8", "surrogatepass")
                     + b"\n" + json.dumps(good_row(after)).encode() + b"\n")
    report = ingest(store, [path], workers=1)
    assert report.status == "completed" and report.rows_read == 3
    assert report.conversations_stored + report.rows_rejected + report.conversations_skipped_existing == 3
    stored = {r["uuid"] for r in store.query(
        "SELECT uuid FROM conversations WHERE source_file = ?", (str(path),))}
    assert {before, after} <= stored
    if report.rows_rejected:
        assert [r["line"] for r in report.rejected] == [2] and report.rejected[0]["reason"]
    for uuid in stored - {before, after}:  # the fuzzed row was stored: everything that reads it works
        for dp_id in store.conversation_decision_ids("tool_calling", uuid):
            dp = store.get(dp_id)
            json.loads(dumps_text(dp.to_json()), parse_constant=pytest.fail)
            action = ({"type": "message", "content": dp.expected_content or ""} if dp.action_type == "message" else
                      {"type": "function_call", "name": dp.expected_calls[0].name or "x", "arguments": {}})
            grade_action(None, dp, action, grader="keyword")


# ---- the prediction-line reader --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def line_store(demo_db_master, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-lines")
    shutil.copy(demo_db_master, folder / "lines.db")
    store = Store.open(folder / "lines.db")
    ids = [r["id"] for r in store.query("SELECT id FROM decision_points ORDER BY id")]
    yield store, folder, ids
    store.close()


@st.composite
def prediction_lines(draw, ids: list[str]) -> bytes:
    """One prediction line: the grade format with arbitrary values in its fields, an arbitrary JSON value,
    or bytes that are not JSON at all."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=30)).replace(b"\n", b" ")
    if kind == 1:
        return write(draw(values)).encode("utf-8", "surrogatepass")
    action = draw(st.one_of(
        values,
        st.fixed_dictionaries({"type": st.one_of(st.just("function_call"), values), "name": st.one_of(texts, values),
                               "arguments": st.one_of(values, texts)}),
        st.fixed_dictionaries({"type": st.just("message"), "content": st.one_of(texts, values)}),
        st.fixed_dictionaries({"role": st.just("assistant"), "content": values, "tool_calls": values}),
    ))
    line = {"id": draw(st.one_of(st.sampled_from(ids), values)), "action": action}
    for key in draw(st.lists(st.sampled_from(["model", "latency_ms", "raw", "id", "extra"]), max_size=3)):
        if key != "id":
            line[key] = draw(values)
    return write(line).encode("utf-8", "surrogatepass")


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_line_is_graded_or_is_that_lines_error_and_never_stops_the_run(line_store, data):
    store, folder, ids = line_store
    fuzzed = data.draw(st.lists(prediction_lines(ids), min_size=1, max_size=4))
    n = next(_counter)
    good = json.dumps({"id": ids[n % len(ids)], "action": {"type": "message", "content": "a reply"}}).encode()
    lines = [b"\xef\xbb\xbf" + good, *fuzzed]
    path = folder / f"preds_{n}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    out = io.BytesIO()
    result = grade_file(store, path, run_name=f"fuzz-{n}", grader="keyword", out=out, workers=0)
    run = get_run(store, f"fuzz-{n}")
    assert run.status == "completed"
    results = [json.loads(line, parse_constant=pytest.fail) for line in out.getvalue().splitlines()]
    non_blank = [i for i, line in enumerate(lines, 1) if line.strip()]
    assert [r["line"] for r in results] == non_blank and result.n_lines == len(non_blank)
    assert results[0].get("error") is None  # the good line is graded whatever follows it
    stored = {p["line"]: p for p in predictions(store, run.id, limit=100)}
    for r in results:  # --out agrees with the store
        row = stored.get(r["line"])
        if r.get("error") is None:
            assert row is not None and row["error"] is None and row["reward"] == r["reward"]
        elif row is not None:
            assert row["error"] == r["error"]
    # the upload's check reads the same lines the same way
    check = validate_predictions(store, io.BytesIO(path.read_bytes()))
    assert {b["line"] for b in check.bad} == {p["line"] for p in run.problems}
