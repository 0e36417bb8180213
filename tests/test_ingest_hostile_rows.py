"""Issue 20, point 2: one row never stops an ingest. Whatever a row holds (lone UTF-16 surrogates, deep
nesting, huge integers, NaN) or raises, it is that row's error (rejected with file, line and reason) or it is
repaired and counted; the good rows of its chunk are stored, the rows after it are read, a re-run finishes,
and `show` works on whatever was stored."""

from __future__ import annotations

import json
import sqlite3

import pytest

import nemo_core.data.ingest as ingest_module
from nemo_core.cli.main import main
from nemo_core.data.filters import DecisionPointFilter
from nemo_core.data.ingest import REPAIRED_NOTE, ChunkResult, IngestReport, _absorb, ingest, prepare_row
from nemo_core.data.jsontext import MAX_JSON_DEPTH
from nemo_core.data.store import Store

from test_ingest_bad_input import good_row, line, uuids, whole_conversations_only


def strict_json(text: str):
    """Parse as a strict consumer would: NaN and Infinity are not JSON."""
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def surrogate_rows() -> list[bytes]:
    """Rows whose strings hold a lone surrogate escape in every place a string can be."""
    rows = []
    places = {
        "user": lambda r: r["messages"][1].__setitem__("content", "before SURR after"),
        "argument value": lambda r: r["messages"][2]["tool_calls"][0]["function"].__setitem__("arguments", {"text": "SURR"}),
        "argument key": lambda r: r["messages"][2]["tool_calls"][0]["function"].__setitem__("arguments", {"SURR": 1}),
        "arguments string": lambda r: r["messages"][2]["tool_calls"][0]["function"].__setitem__(
            "arguments", '{"text": "SURR"}'),
        "tool reply": lambda r: r["messages"].__setitem__(3, {"role": "tool", "content": {"SURR": ["SURR"]}}),
        "tool description": lambda r: r["tools"][0]["function"].__setitem__("description", "SURR"),
        "reply": lambda r: r["messages"][4].__setitem__("content", "SURR"),
        "extra key": lambda r: r.__setitem__("SURR", "SURR"),
    }
    for i, (place, edit) in enumerate(places.items()):
        row = good_row(f"surrogate-{i}")
        edit(row)
        # json.dumps writes the marker; the escape goes in as text, exactly as a file would hold it
        text = json.dumps(row).replace("SURR", "\\ud800")
        if place == "arguments string":  # inside a JSON string the backslash itself is escaped
            text = json.dumps(row).replace("SURR", "\\\\udc00")
        rows.append(text.encode() + b"\n")
    return rows


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("no_fts", [False, True])
def test_lone_surrogates_anywhere_are_repaired_counted_and_shown(tmp_path, capsys, workers, no_fts):
    src = tmp_path / "tool_calling_surrogates.jsonl"
    bad = surrogate_rows()
    src.write_bytes(line(good_row("good-first")) + b"".join(bad) + line(good_row("good-last")))
    db = tmp_path / "nemo.db"
    args = ["ingest", str(src), "--db", str(db), "--quiet", "--workers", str(workers), "--report", str(tmp_path / "r.json")]
    assert main(args + (["--no-fts"] if no_fts else [])) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "completed" and report["rows_rejected"] == 0
    assert report["conversations_stored"] == len(bad) + 2
    # counted where the row's own JSON text holds one; inside an arguments string it is repaired when the
    # arguments are read (below), like any other reading of that string
    assert report["notes"][REPAIRED_NOTE] == len(bad) - 1
    assert "lone UTF-16 surrogates" in capsys.readouterr().out
    assert whole_conversations_only(db)
    with Store.open(db) as store:
        for i in range(len(bad)):
            dp = store.get(f"tool_calling/surrogate-{i}/2")
            assert "\ud800" not in json.dumps(dp.to_json(), ensure_ascii=False).encode("utf-8", "surrogatepass").decode(
                "utf-8", "replace")
        dp = store.get("tool_calling/surrogate-0/2")
        assert dp.context[1]["content"] == "before \ufffd after"
        args_dp = store.get("tool_calling/surrogate-3/2")  # the arguments string is read with the same repair
        assert args_dp.expected_calls[0].arguments == {"text": "\ufffd"}
        if not no_fts:
            found = store.page(DecisionPointFilter(text="before"))
            assert {r["conversation_uuid"] for r in found} == {"surrogate-0"}
    for i in range(len(bad)):
        for extra in ([], ["--json"]):
            assert main(["show", f"tool_calling/surrogate-{i}/4", "--db", str(db), *extra]) == 0
            out = capsys.readouterr().out
            if extra:
                strict_json(out)
    # a re-run finishes and adds nothing
    assert main(args) == 0
    again = json.loads((tmp_path / "r.json").read_text())
    assert again["conversations_skipped_existing"] == len(bad) + 2 and again["conversations_stored"] == 0


def deep(levels: int):
    """A value of exactly `levels` levels of arrays."""
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def row_of_depth(uuid: str, total: int) -> dict:
    """A row whose deepest point, counting the row itself as level 1, is `total` levels."""
    row = good_row(uuid)
    # row (1) > messages (2) > message (3) > tool_calls (4) > call (5) > function (6) > arguments (7) > "text"
    row["messages"][2]["tool_calls"][0]["function"]["arguments"] = {"text": deep(total - 7)}
    return row


def deep_text_row(uuid: str, total: int) -> bytes:
    """`row_of_depth` written as text (json.dumps itself would run out of stack at this depth)."""
    text = json.dumps(good_row(uuid)).replace(f'"arguments": {{"text": "{uuid}"}}',
                                              '"arguments": {"text": ' + "[" * (total - 7) + "]" * (total - 7) + "}")
    return text.encode() + b"\n"


@pytest.mark.parametrize("workers", [1, 2])
def test_nesting_up_to_the_limit_is_stored_and_shown_and_beyond_it_is_rejected(tmp_path, capsys, workers):
    src = tmp_path / "tool_calling_deep.jsonl"
    src.write_bytes(line(row_of_depth("at-limit", MAX_JSON_DEPTH)) + line(row_of_depth("over-limit", MAX_JSON_DEPTH + 1))
                    + line(good_row("good-between")) + b'{"uuid": "very-deep", "messages": ' + b"[" * 5000 + b"]" * 5000
                    + b"}\n" + deep_text_row("just-over", 960) + line(good_row("good-last")))
    db = tmp_path / "nemo.db"
    assert main(["ingest", str(src), "--db", str(db), "--quiet", "--workers", str(workers)]) == 0
    out = capsys.readouterr().out
    assert f"{src}:2: JSON nested more than {MAX_JSON_DEPTH} levels deep (the limit)" in out
    assert f"{src}:4: JSON nested more than {MAX_JSON_DEPTH} levels deep" in out
    assert f"{src}:5: JSON nested more than {MAX_JSON_DEPTH} levels deep" in out
    assert uuids(db) == {"at-limit", "good-between", "good-last"}
    assert main(["show", "tool_calling/at-limit/2", "--db", str(db), "--json"]) == 0
    shown = strict_json(capsys.readouterr().out)
    assert shown["expected"]["calls"][0]["arguments"]["text"] == deep(MAX_JSON_DEPTH - 7)


def test_integers_are_exact_up_to_pythons_digit_limit_and_a_longer_one_is_a_clear_rejection(tmp_path, capsys):
    src = tmp_path / "tool_calling_ints.jsonl"
    big = "9" * 400  # beyond a double: orjson called this "number is infinity"
    huge = "7" * 5001
    ok = json.dumps(good_row("big-int")).replace('"text": "big-int"', f'"text": {big}')
    too_long = json.dumps(good_row("huge-int")).replace('"text": "huge-int"', f'"text": {huge}')
    src.write_text(ok + "\n" + too_long + "\n" + json.dumps(good_row("after")) + "\n")
    db = tmp_path / "nemo.db"
    assert main(["ingest", str(src), "--db", str(db), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"{src}:2: an integer of 5,001 digits: the limit is 4,300 digits" in out
    assert "infinity" not in out
    assert uuids(db) == {"big-int", "after"}
    assert main(["show", "tool_calling/big-int/2", "--db", str(db), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["expected"]["calls"][0]["arguments"]["text"] == int(big)


def test_show_json_prints_valid_json_when_a_row_holds_nan(tmp_path, capsys):
    src = tmp_path / "tool_calling_nan.jsonl"
    row = json.dumps(good_row("nan-row")).replace('{"echo": "nan-row"}', '{"price": NaN, "cap": Infinity}')
    assert "NaN" in row
    src.write_text(row + "\n")
    db = tmp_path / "nemo.db"
    assert main(["ingest", str(src), "--db", str(db), "--quiet"]) == 0  # read leniently, as published
    capsys.readouterr()
    assert main(["show", "tool_calling/nan-row/4", "--db", str(db), "--json"]) == 0
    shown = strict_json(capsys.readouterr().out)
    assert shown["context"][3]["content"] == {"price": None, "cap": None}


def test_an_unforeseen_error_in_one_row_rejects_that_row_only(tmp_path, monkeypatch, capsys):
    real = ingest_module.extract_conversation

    def flaky(obj, split, *, with_fts=True):
        if obj["uuid"] == "boom":
            raise KeyError("something no check foresaw")
        return real(obj, split, with_fts=with_fts)

    monkeypatch.setattr(ingest_module, "extract_conversation", flaky)
    src = tmp_path / "tool_calling_boom.jsonl"
    src.write_bytes(line(good_row("a")) + line(good_row("boom")) + line(good_row("c")))
    db = tmp_path / "nemo.db"
    assert main(["ingest", str(src), "--db", str(db), "--quiet", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{src}:2: the row could not be read: KeyError: 'something no check foresaw'" in out
    assert uuids(db) == {"a", "c"}


def test_a_row_the_database_refuses_is_rejected_and_the_rest_of_its_batch_is_stored(tmp_path):
    """The store's own safety net: a value SQLite cannot take fails the batch's transaction; the batch is then
    written a conversation at a time, and only the row that fails is rejected (with what SQLite said)."""
    src = tmp_path / "tool_calling_store.jsonl"
    src.write_bytes(b"".join(line(good_row(u)) for u in ("a", "poison", "c")))
    items = [prepare_row(raw, "tool_calling", str(src), n, True) for n, raw in enumerate(src.read_bytes().splitlines(True), 1)]
    items[1].fts_text = "text SQLite cannot encode \ud800"  # as a lone surrogate reached the FTS insert before
    result = ChunkResult(items, [0, 1, 2], [], 3, 0, 3, src.stat().st_size)
    db = tmp_path / "nemo.db"
    with Store.open(db) as store:
        report = IngestReport(decision_points_stored={s: {"function_call": 0, "message": 0}
                                                      for s in ("tool_calling", "interactive_agent")})
        ingest_id = store.start_ingest([str(src)], "now")
        _absorb(store, result, report, {"path": str(src), "rows_read": 0}, ingest_id, None,
                {"line_base": 0, "remaining": None})
        assert report.conversations_stored == 2 and report.rows_rejected == 1
        assert report.rejected[0]["line"] == 2
        assert report.rejected[0]["reason"].startswith("the row could not be stored: UnicodeEncodeError")
        assert {r["uuid"] for r in store.query("SELECT uuid FROM conversations")} == {"a", "c"}
        fts = {r["rowid"] for r in store.query("SELECT rowid FROM conversation_fts")}
        assert fts == {r["id"] for r in store.query("SELECT id FROM conversations")}
    assert whole_conversations_only(db)


def test_a_database_level_failure_is_not_taken_for_a_bad_row(tmp_path):
    """A full disk is not one row's fault: it stops the ingest (every later row would fail the same way)."""
    src = tmp_path / "tool_calling_full.jsonl"
    src.write_bytes(b"".join(line(good_row(f"r{i}")) for i in range(5)))
    with Store.open(tmp_path / "nemo.db") as store:
        def failing(*_a, **_k):
            raise sqlite3.OperationalError("database or disk is full")

        store.insert_conversations = failing  # type: ignore[method-assign]
        with pytest.raises(Exception) as info:
            ingest(store, [src], workers=1)
        assert "full" in str(info.value)
        assert store.n_rejected() == 0
