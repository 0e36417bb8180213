"""Decision points (SPEC §2): one per assistant message, its id, context, expected action, tools and flags."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest

from nemo_core.data.extract import DP_COLUMNS, FLAGS, extract_conversation
from nemo_core.data.ingest import ingest
from nemo_core.data.records import SUBMIT_MESSAGE_TOOL
from nemo_core.data.store import Store

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
REPO = TESTS.parent
REAL = [REPO / "data" / "demo" / "interactive_agent_real_records.jsonl",
        REPO / "data" / "demo" / "tool_calling_real_records.jsonl"]
SHARED_REAL = REPO.parent / "shared" / "fixtures" / "real_records.jsonl"


def load(path: Path) -> dict[str, dict]:
    with open(path, encoding="utf-8") as fh:
        return {r["uuid"]: r for r in map(json.loads, fh)}


TC = load(DATA / "tool_calling_shapes.jsonl")
IA = load(DATA / "interactive_agent_shapes.jsonl")


def dps(row: dict, split: str) -> list[dict]:
    """Decision point rows of one conversation, as dicts keyed by column."""
    return [dict(zip(DP_COLUMNS, r)) for r in extract_conversation(copy.deepcopy(row), split).rows]


def flags_of(dp: dict) -> set[str]:
    return {name for name in FLAGS if dp[f"flag_{name}"]}


@pytest.fixture(scope="module")
def shapes_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("shapes") / "shapes.db"
    store = Store.open(path)
    report = ingest(store, [DATA / "tool_calling_shapes.jsonl", DATA / "interactive_agent_shapes.jsonl", *REAL], workers=1)
    assert report.rows_rejected == 0
    yield store
    store.close()


# ---- one decision point per assistant message ------------------------------------------------------
@pytest.mark.parametrize("split, rows", [("tool_calling", TC), ("interactive_agent", IA)])
def test_one_decision_point_per_assistant_message_with_readable_ids(split, rows):
    for uuid, row in rows.items():
        expected_idx = [i for i, m in enumerate(row["messages"]) if m["role"] == "assistant"]
        got = dps(row, split)
        assert [d["turn_index"] for d in got] == expected_idx
        assert [d["id"] for d in got] == [f"{split}/{uuid}/{i}" for i in expected_idx]
        assert [d["assistant_turn"] for d in got] == list(range(len(expected_idx)))
        assert all(d["split"] == split and d["conversation_uuid"] == uuid for d in got)


def test_parallel_turn_expects_every_call_in_order_and_is_flagged():
    first, reply, empty = dps(TC["tc-parallel"], "tool_calling")
    assert first["action_type"] == "function_call"
    assert first["expected_tool"] == "get_weather"
    assert first["expected_tools"] == "get_weather get_weather get_time"
    assert first["n_expected_calls"] == 3
    assert flags_of(first) == {"parallel"}
    assert reply["action_type"] == "message" and flags_of(reply) == set()
    assert reply["n_expected_calls"] == 0 and reply["expected_tool"] is None


def test_whitespace_message_is_an_empty_expected_decision_point():
    *_, empty = dps(TC["tc-parallel"], "tool_calling")
    assert empty["action_type"] == "message"
    assert flags_of(empty) == {"empty_expected"}


def test_list_arguments_are_ungradeable_with_the_reason_and_string_arguments_are_not():
    listy, stringy, _ = dps(TC["tc-args-list"], "tool_calling")
    assert flags_of(listy) == {"ungradeable"}
    assert "array" in listy["ungradeable_reason"]
    assert flags_of(stringy) == set() and stringy["ungradeable_reason"] is None


@pytest.mark.parametrize("uuid", ["ia-args-string-of-list", "ia-args-invalid-json"])
def test_interactive_arguments_that_are_not_an_object_are_ungradeable(uuid):
    (dp,) = dps(IA[uuid], "interactive_agent")
    assert dp["action_type"] == "function_call" and "ungradeable" in flags_of(dp)


def test_tool_list_flags():
    assert flags_of(dps(TC["tc-no-tools"], "tool_calling")[0]) == {"no_task_tools"}
    assert flags_of(dps(TC["tc-duplicate-tools"], "tool_calling")[0]) == {"duplicate_tool_names"}
    clash = dps(TC["tc-submit-clash"], "tool_calling")
    assert all("tool_name_clash" in flags_of(d) for d in clash)
    assert dps(TC["tc-no-tools"], "tool_calling")[0]["n_tools"] == 0
    assert dps(TC["tc-odd-tools"], "tool_calling")[0]["n_tools"] == 5
    assert dps(TC["tc-duplicate-tools"], "tool_calling")[0]["n_tools"] == 2


def test_a_call_of_a_tool_not_offered_is_flagged():
    row = copy.deepcopy(TC["tc-odd-tools"])
    row["messages"][2]["tool_calls"][0]["function"]["name"] = "not_in_the_list"
    assert "expected_tool_not_offered" in flags_of(dps(row, "tool_calling")[0])


def test_extraction_reports_quirks_in_its_notes():
    notes = extract_conversation(copy.deepcopy(TC["tc-parallel"]), "tool_calling").notes
    assert notes["parallel turns"] == 1
    assert notes["expected calls without a tool reply"] == 1
    assert notes["empty expected messages"] == 1
    assert notes["assistant messages without reasoning_content"] == 1
    assert extract_conversation(copy.deepcopy(TC["tc-content-shapes"]), "tool_calling").notes[
        "tool replies not linked to a call"] == 1
    assert extract_conversation(copy.deepcopy(TC["tc-submit-clash"]), "tool_calling").notes[
        "task tools named submit_message"] == 1


def test_context_length_counts_only_earlier_messages():
    first, second, _ = dps(TC["tc-args-list"], "tool_calling")
    assert first["context_chars"] == len("Add 2, 3 and 4.")  # system "" + user
    assert second["context_chars"] > first["context_chars"]


def test_extraction_does_not_change_the_row():
    row = copy.deepcopy(IA["ia-ids"])
    extract_conversation(row, "interactive_agent")
    assert row == IA["ia-ids"]


# ---- what a stored decision point shows ------------------------------------------------------------
def all_rows():
    for split, rows in (("tool_calling", TC), ("interactive_agent", IA)):
        for uuid, row in rows.items():
            for i, msg in enumerate(row["messages"]):
                if msg["role"] == "assistant":
                    yield split, row, i


def test_context_is_the_earlier_messages_unchanged_without_the_expected_reasoning(shapes_store):
    n = 0
    for split, row, i in all_rows():
        dp = shapes_store.get(f"{split}/{row['uuid']}/{i}")
        assert dp.context == row["messages"][:i]
        reasoning = row["messages"][i].get("reasoning_content")
        if reasoning:
            assert reasoning not in json.dumps(dp.context)
            assert reasoning not in json.dumps(dp.to_json())
        n += 1
    assert n == 23


def test_expected_action_of_a_parallel_turn_lists_every_call_in_order(shapes_store):
    dp = shapes_store.get("tool_calling/tc-parallel/2")
    assert dp.expected() == {"type": "function_call", "calls": [
        {"name": "get_weather", "arguments": {"city": "Oslo"}},
        {"name": "get_weather", "arguments": {"city": "Bergen"}},
        {"name": "get_time", "arguments": {"tz": "Europe/Oslo"}},
    ]}


def test_expected_arguments_from_a_json_string_are_an_object(shapes_store):
    dp = shapes_store.get("interactive_agent/ia-ids/4")
    assert dp.expected() == {"type": "function_call", "calls": [{"name": "book", "arguments": {"cabin": "business", "legs": []}}]}
    assert dp.gradeable


def test_ungradeable_expected_call_shows_the_raw_arguments(shapes_store):
    dp = shapes_store.get("tool_calling/tc-args-list/2")
    assert dp.expected() == {"type": "function_call", "calls": [{"name": "add_numbers", "arguments": [2, 3, 4]}]}
    assert not dp.gradeable and "array" in dp.ungradeable_reason


def test_expected_message_content(shapes_store):
    assert shapes_store.get("interactive_agent/ia-ids/6").expected() == {"type": "message", "content": "\n\nBooked: B1."}
    assert shapes_store.get("tool_calling/tc-parallel/7").expected() == {"type": "message", "content": "  \n "}


def test_tools_offered_are_the_task_tools_plus_submit_message(shapes_store):
    for split, row, i in all_rows():
        dp = shapes_store.get(f"{split}/{row['uuid']}/{i}")
        names = [t["function"]["name"] for t in dp.tools]
        assert names[-1] == "submit_message" and dp.tools[-1] == SUBMIT_MESSAGE_TOOL
        assert names.count("submit_message") == 1
        assert len(names) == len(set(names))  # one definition per name
    assert [t["function"]["name"] for t in shapes_store.get("tool_calling/tc-no-tools/2").tools] == ["submit_message"]


def test_unknown_top_level_keys_are_kept(shapes_store):
    dp = shapes_store.get("tool_calling/tc-extra-keys/2")
    assert dp.extra["x_source"] == {"batch": 7, "tags": ["a", "b"]}
    assert dp.extra["x_score"] == 0.5
    ia = shapes_store.get("interactive_agent/ia-ids/2")
    assert ia.extra["reasoning"] == "on" and ia.extra["x_extra"] == [1, {"two": 2}]


# ---- the real rows -----------------------------------------------------------------------------------
def test_real_rows_are_byte_copies_of_the_shared_fixture():
    if not SHARED_REAL.exists():
        pytest.skip("shared fixtures not present")
    ours = sorted(b"".join(p.read_bytes() for p in REAL).splitlines())
    assert ours == sorted(SHARED_REAL.read_bytes().splitlines())


def test_real_rows_decision_points_by_split_and_action_type(shapes_store):
    # counted by hand from the file: an assistant message with a non-empty tool_calls is a function call
    by_hand: Counter = Counter()
    for path in REAL:
        split = path.name.split("_real")[0]
        for row in load(path).values():
            for msg in row["messages"]:
                if msg["role"] == "assistant":
                    by_hand[(split, "function_call" if msg.get("tool_calls") else "message")] += 1
    # and written down once, so a change in the file is noticed too
    assert by_hand == {("interactive_agent", "function_call"): 5, ("interactive_agent", "message"): 11,
                       ("tool_calling", "message"): 1}
    got = Counter()
    for r in shapes_store.query(
        "SELECT split, action_type, count(*) AS n FROM decision_points WHERE conversation_uuid IN "
        "(SELECT uuid FROM conversations WHERE source_file LIKE '%real_records%') GROUP BY split, action_type"
    ):
        got[(r["split"], r["action_type"])] = r["n"]
    assert got == by_hand


def test_a_real_interactive_decision_point(shapes_store):
    dp = shapes_store.get("interactive_agent/ff6ab2b0-7551-468c-8606-a7c3b0c75b68/2")
    assert dp.action_type == "function_call"
    (call,) = dp.expected()["calls"]
    assert isinstance(call["arguments"], dict) and call["name"] in {t["function"]["name"] for t in dp.tools}
    assert [m["role"] for m in dp.context] == ["system", "user"]
