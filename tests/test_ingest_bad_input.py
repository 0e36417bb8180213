"""Bad input (issue 2): each case gets a clear message naming the file and the line, and rows already
stored stay. Run through the CLI in-process, as a user would meet them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from nemo_core.cli.main import main
from nemo_core.base.errors import InputFileError, StoreError
from nemo_core.data.ingest import ingest
from nemo_core.data.store import Store


def good_row(uuid: str) -> dict:
    return {
        "uuid": uuid,
        "messages": [
            {"role": "system", "content": ""},
            {"role": "user", "content": f"hello from {uuid}"},
            {"role": "assistant", "content": "", "reasoning_content": "call", "tool_calls": [
                {"type": "function", "function": {"name": "echo", "arguments": {"text": uuid}}}]},
            {"role": "tool", "content": {"echo": uuid}},
            {"role": "assistant", "content": f"done {uuid}", "tool_calls": None, "reasoning_content": "reply"},
        ],
        "tools": [{"type": "function", "function": {"name": "echo", "description": "", "parameters": {
            "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}],
        "license": "cc-by-4.0",
        "used_in": ["test"],
    }


def line(obj) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def uuids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT uuid FROM conversations")}


def whole_conversations_only(db: Path) -> bool:
    with sqlite3.connect(db) as conn:
        bad = conn.execute(
            "SELECT count(*) FROM conversations c WHERE c.n_decision_points != "
            "(SELECT count(*) FROM decision_points d WHERE d.conversation_id = c.id)").fetchone()[0]
        orphans = conn.execute(
            "SELECT count(*) FROM decision_points d WHERE d.conversation_id NOT IN (SELECT id FROM conversations)"
        ).fetchone()[0]
    return bad == 0 and orphans == 0


@pytest.fixture
def db(tmp_path) -> Path:
    """A database that already holds one conversation, which must survive every bad input."""
    path = tmp_path / "nemo.db"
    before = tmp_path / "tool_calling_before.jsonl"
    before.write_bytes(line(good_row("stored-before")))
    assert main(["ingest", str(before), "--db", str(path), "--quiet"]) == 0
    return path


def bad_middle(b_line: bytes) -> bytes:
    return line(good_row("good-1")) + b_line.rstrip(b"\n") + b"\n" + line(good_row("good-3"))


ROWS_WITHOUT_ROLE = {"uuid": "x", "messages": [{"role": "system", "content": ""}, {"content": "no role"}], "tools": []}
UNKNOWN_ROLE = {"uuid": "x", "messages": [{"role": "system", "content": ""}, {"role": "moderator", "content": "hi"}], "tools": []}


@pytest.mark.parametrize(
    "bad, reason",
    [
        (b'{"uuid": "x", "messages": [{"role": "user", "content": "unterminated', "malformed JSON"),
        (b'["a JSON array", "not an object"]', "line is a JSON array, not an object"),
        (b'"just a string"', "line is a JSON string, not an object"),
        (b'{"uuid": "x", "tools": []}', "no 'messages'"),
        (json.dumps(ROWS_WITHOUT_ROLE).encode(), "messages[1] has no 'role'"),
        (json.dumps(UNKNOWN_ROLE).encode(), "messages[1] has unknown role 'moderator'"),
        (b'{"uuid": "x\xff\xfe", "messages": []}', "invalid UTF-8"),
        (b'{"uuid": "x", "messages": [{"role": ["user"]}]}', "unknown role"),
    ],
)
def test_a_bad_line_is_reported_with_file_and_line_and_the_rest_is_stored(db, tmp_path, capsys, bad, reason):
    src = tmp_path / "tool_calling_bad.jsonl"
    src.write_bytes(bad_middle(bad))
    report_file = tmp_path / "report.json"
    code = main(["ingest", str(src), "--db", str(db), "--report", str(report_file), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{src}:2: " in out and reason in out
    report = json.loads(report_file.read_text())
    assert report["rows_read"] == 3 and report["rows_rejected"] == 1 and report["conversations_stored"] == 2
    assert report["rejected"] == [{"file": str(src), "line": 2, "reason": report["rejected"][0]["reason"]}]
    assert reason in report["rejected"][0]["reason"]
    assert uuids(db) == {"stored-before", "good-1", "good-3"}
    with Store.open(db) as store:
        assert store.rejected() == [{"ingest_id": 2, "file": str(src), "line": 2, "reason": report["rejected"][0]["reason"]}]


def test_arguments_that_are_not_an_object_are_kept_and_flagged_not_rejected(db, tmp_path, capsys):
    row = good_row("list-args")
    row["messages"][2]["tool_calls"][0]["function"]["arguments"] = ["not", "an", "object"]
    row2 = good_row("bad-json-args")
    row2["messages"][2]["tool_calls"][0]["function"]["arguments"] = '{"text": '
    src = tmp_path / "tool_calling_args.jsonl"
    src.write_bytes(line(row) + line(row2))
    report_file = tmp_path / "r.json"
    assert main(["ingest", str(src), "--db", str(db), "--report", str(report_file), "--quiet"]) == 0
    report = json.loads(report_file.read_text())
    assert report["rows_rejected"] == 0 and report["conversations_stored"] == 2
    assert report["notes"]["ungradeable decision points"] == 2
    assert "ungradeable decision points" in capsys.readouterr().out
    with Store.open(db) as store:
        dp = store.get("tool_calling/list-args/2")
        assert dp.flags == ["ungradeable"] and "array" in dp.ungradeable_reason
        assert dp.expected()["calls"][0]["arguments"] == ["not", "an", "object"]
        assert store.get("tool_calling/bad-json-args/2").expected()["calls"][0]["arguments"] == '{"text": '


def test_an_empty_file_is_a_warning_naming_it_and_a_non_zero_exit(db, tmp_path, capsys):
    src = tmp_path / "tool_calling_empty.jsonl"
    src.write_bytes(b"")
    assert main(["ingest", str(src), "--db", str(db), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"{src}: empty file" in out
    assert uuids(db) == {"stored-before"}


def test_blank_lines_are_counted_not_rejected(db, tmp_path):
    src = tmp_path / "tool_calling_blank.jsonl"
    src.write_bytes(b"\n" + line(good_row("after-blank")) + b"   \n\r\n")
    with Store.open(db) as store:
        report = ingest(store, [src], workers=1)
    assert (report.rows_read, report.blank_lines, report.rows_rejected) == (1, 3, 0)
    assert report.conversations_stored == 1


def test_a_file_named_neither_way_without_split_is_refused_before_anything_is_written(db, tmp_path, capsys):
    good = tmp_path / "tool_calling_ok.jsonl"
    good.write_bytes(line(good_row("never-stored")))
    odd = tmp_path / "conversations.jsonl"
    odd.write_bytes(line(good_row("odd-1")))
    assert main(["ingest", str(good), str(odd), "--db", str(db), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ")
    assert str(odd) in err and "--split" in err
    assert uuids(db) == {"stored-before"}
    # and with --split it goes in
    assert main(["ingest", str(odd), "--db", str(db), "--split", "interactive_agent", "--quiet"]) == 0
    with Store.open(db) as store:
        assert store.exists("interactive_agent/odd-1/2")


def test_a_missing_input_file_is_one_line_naming_it(db, tmp_path, capsys):
    missing = tmp_path / "tool_calling_missing.jsonl"
    assert main(["ingest", str(missing), "--db", str(db), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(missing) in err and "no such file" in err
    assert uuids(db) == {"stored-before"}


def test_a_folder_given_as_input_is_refused(db, tmp_path, capsys):
    folder = tmp_path / "tool_calling_dir.jsonl"
    folder.mkdir()
    assert main(["ingest", str(folder), "--db", str(db), "--quiet"]) == 1
    assert "not a file" in capsys.readouterr().err


def test_a_database_path_that_is_not_writable_is_one_line(tmp_path, capsys):
    # tests run as root, so permissions alone would not stop a write: use a parent that is a regular file
    parent = tmp_path / "a_file"
    parent.write_text("not a folder")
    src = tmp_path / "tool_calling_x.jsonl"
    src.write_bytes(line(good_row("x")))
    assert main(["ingest", str(src), "--db", str(parent / "nemo.db"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and str(parent / "nemo.db") in err
    assert "--db" in err  # says what to do
    with pytest.raises(StoreError):
        Store.open(parent / "nemo.db")


def test_a_database_path_that_is_a_folder_is_one_line(tmp_path, capsys):
    src = tmp_path / "tool_calling_x.jsonl"
    src.write_bytes(line(good_row("x")))
    folder = tmp_path / "db_folder"
    folder.mkdir()
    assert main(["ingest", str(src), "--db", str(folder), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(folder) in err


def test_an_over_long_line_is_rejected_with_its_number_and_reading_goes_on(db, tmp_path):
    src = tmp_path / "tool_calling_long.jsonl"
    long_row = good_row("long")
    long_row["messages"][1]["content"] = "x" * 5000
    src.write_bytes(line(good_row("short-1")) + line(long_row) + line(good_row("short-3")))
    with Store.open(db) as store:
        report = ingest(store, [src], workers=1, max_line_bytes=2000)
    assert report.rows_read == 3 and report.conversations_stored == 2
    (rej,) = report.rejected
    assert rej["file"] == str(src) and rej["line"] == 2
    assert "over the 2,000-byte limit" in rej["reason"]
    assert uuids(db) == {"stored-before", "short-1", "short-3"}


def test_reingesting_a_file_does_not_count_its_bad_lines_twice(db, tmp_path, capsys):
    src = tmp_path / "tool_calling_twice.jsonl"
    src.write_bytes(bad_middle(b"{broken"))
    for _ in range(2):
        assert main(["ingest", str(src), "--db", str(db), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["stats", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rejected_rows"] == 1
    with Store.open(db) as store:
        assert [(r["file"], r["line"]) for r in store.rejected()] == [(str(src), 2)]
    # the same line number in another file is another rejection
    other = tmp_path / "tool_calling_other.jsonl"
    other.write_bytes(bad_middle(b"{broken"))
    assert main(["ingest", str(other), "--db", str(db), "--quiet"]) == 0
    with Store.open(db) as store:
        assert store.n_rejected() == 2
