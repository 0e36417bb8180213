"""The CLI of the core (cli.py, commands/): help, stats, show, errors, NEMO_DB. Run in-process."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from nemo_core.cli.main import build_parser, main
from nemo_core.cli.commands import COMMANDS
from nemo_core.data.records import SUBMIT_MESSAGE_TOOL
from nemo_core.data.store import Store

DATA = Path(__file__).resolve().parent / "data"
SHAPES = [DATA / "tool_calling_shapes.jsonl", DATA / "interactive_agent_shapes.jsonl"]
SHOW_KEYS = {"id", "split", "conversation_uuid", "turn_index", "action_type", "flags", "context", "tools", "expected"}


def command_names() -> list[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    names = list(sub.choices)
    assert len(names) == len(COMMANDS)  # one command per module in commands/__init__.py
    return names


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what fixtures printed
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def shapes_db(tmp_path) -> Path:
    db = tmp_path / "shapes.db"
    assert main(["ingest", *map(str, SHAPES), "--db", str(db), "--quiet", "--workers", "1"]) == 0
    return db


# ---- help ------------------------------------------------------------------------------------------
def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in command_names():
        assert re.search(rf"\n    {re.escape(name)}\s", out), name  # a long name wraps its help onto the next line


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help_with_an_example(capsys, name):
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out.lower() or "examples:" in out.lower(), name
    example = out.lower().split("example", 1)[1]
    assert f"python -m nemo_core {name}" in example, name


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


# ---- stats -----------------------------------------------------------------------------------------
def test_stats_json_counts_match_the_store(capsys, demo_db):
    code, out, _ = run(capsys, "stats", "--db", str(demo_db), "--json")
    assert code == 0
    stats = json.loads(out)
    with Store.open(demo_db) as store:
        by_sql: dict = {}
        for r in store.query("SELECT split, action_type, count(*) AS n FROM decision_points GROUP BY 1, 2"):
            by_sql.setdefault(r["split"], {})[r["action_type"]] = r["n"]
        assert stats["decision_points"] == by_sql
        assert set(stats["decision_points"]) == {"tool_calling", "interactive_agent"}
        assert stats["conversations"] == store.scalar("SELECT count(*) FROM conversations")
        assert stats["rejected_rows"] == store.scalar("SELECT count(*) FROM rejected_rows") == 4
        assert stats["flags"]["parallel"] == store.scalar("SELECT count(*) FROM decision_points WHERE flag_parallel = 1")
    assert stats["total_decision_points"] == sum(sum(v.values()) for v in by_sql.values())


def test_stats_text(capsys, shapes_db):
    code, out, _ = run(capsys, "stats", "--db", str(shapes_db))
    assert code == 0
    assert "conversations: 12" in out and "decision points: 23" in out
    assert "tool_calling: 16" in out and "interactive_agent: 7" in out
    assert "parallel: 2" in out


# ---- show ------------------------------------------------------------------------------------------
def test_show_json_function_call(capsys, shapes_db):
    code, out, _ = run(capsys, "show", "tool_calling/tc-parallel/2", "--db", str(shapes_db), "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == SHOW_KEYS
    assert doc["id"] == "tool_calling/tc-parallel/2" and doc["split"] == "tool_calling"
    assert doc["conversation_uuid"] == "tc-parallel" and doc["turn_index"] == 2
    assert doc["action_type"] == "function_call" and doc["flags"] == ["parallel"]
    assert doc["expected"] == {"type": "function_call", "calls": [
        {"name": "get_weather", "arguments": {"city": "Oslo"}},
        {"name": "get_weather", "arguments": {"city": "Bergen"}},
        {"name": "get_time", "arguments": {"tz": "Europe/Oslo"}},
    ]}
    assert [t["function"]["name"] for t in doc["tools"]] == ["get_weather", "get_time", "submit_message"]
    assert doc["tools"][-1] == SUBMIT_MESSAGE_TOOL
    raw = json.loads(SHAPES[0].read_text().splitlines()[0])
    assert doc["context"] == raw["messages"][:2]


def test_show_json_message_and_string_arguments(capsys, shapes_db):
    _, out, _ = run(capsys, "show", "interactive_agent/ia-ids/6", "--db", str(shapes_db), "--json")
    doc = json.loads(out)
    assert set(doc) == SHOW_KEYS
    assert doc["expected"] == {"type": "message", "content": "\n\nBooked: B1."}
    assert len(doc["context"]) == 6 and doc["context"][-1]["tool_call_id"] == "call_WRONG"
    _, out, _ = run(capsys, "show", "interactive_agent/ia-ids/2", "--db", str(shapes_db), "--json")
    assert json.loads(out)["expected"] == {"type": "function_call", "calls": [
        {"name": "find_user", "arguments": {"email": "a@b.example"}}]}


def test_show_json_ungradeable_keeps_the_raw_arguments(capsys, shapes_db):
    _, out, _ = run(capsys, "show", "tool_calling/tc-args-list/2", "--db", str(shapes_db), "--json")
    doc = json.loads(out)
    assert doc["flags"] == ["ungradeable"]
    assert doc["expected"]["calls"] == [{"name": "add_numbers", "arguments": [2, 3, 4]}]


def test_show_text(capsys, shapes_db):
    code, out, _ = run(capsys, "show", "tool_calling/tc-parallel/5", "--db", str(shapes_db))
    assert code == 0
    assert "tool_calling/tc-parallel/5" in out and "message" in out
    assert "tools offered: get_weather, get_time, submit_message" in out
    assert "-> calls get_weather, get_weather, get_time" in out
    assert "Oslo is 4C and Bergen 7C." in out


@pytest.mark.parametrize("bad_id", ["tool_calling/no-such-uuid/2", "tool_calling/tc-parallel/3", "no-slashes", "a/b", "a/b/c/d"])
def test_unknown_or_malformed_ids_are_one_line_errors(capsys, shapes_db, bad_id):
    code, out, err = run(capsys, "show", bad_id, "--db", str(shapes_db), "--json")
    assert code == 1 and out == ""
    err = err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "stats" in err  # says where to look


def test_a_missing_db_for_a_read_command_is_one_line(capsys, tmp_path):
    missing = tmp_path / "nope.db"
    code, _, err = run(capsys, "stats", "--db", str(missing))
    assert code == 1 and "\n" not in err.strip() and "ingest" in err
    assert not missing.exists()


# ---- NEMO_DB -----------------------------------------------------------------------------------------
def test_nemo_db_is_used_when_no_db_option(capsys, monkeypatch, shapes_db):
    monkeypatch.setenv("NEMO_DB", str(shapes_db))
    code, out, _ = run(capsys, "stats", "--json")
    assert code == 0 and json.loads(out)["database"] == str(shapes_db)
    code, out, _ = run(capsys, "show", "tool_calling/tc-no-tools/2", "--json")
    assert code == 0 and json.loads(out)["expected"]["content"] == "Octopuses have three hearts."


def test_ingest_writes_to_nemo_db(capsys, monkeypatch, tmp_path):
    target = tmp_path / "sub" / "env.db"
    monkeypatch.setenv("NEMO_DB", str(target))
    assert main(["ingest", str(SHAPES[1]), "--quiet"]) == 0
    assert f"database: {target}" in capsys.readouterr().out
    with Store.open(target) as store:
        assert store.n_conversations() == 4


def test_db_option_wins_over_nemo_db(capsys, monkeypatch, shapes_db, tmp_path):
    monkeypatch.setenv("NEMO_DB", str(tmp_path / "other.db"))
    code, out, _ = run(capsys, "stats", "--json", "--db", str(shapes_db))
    assert code == 0 and json.loads(out)["database"] == str(shapes_db)


def test_a_missing_nemo_db_for_a_read_command_is_an_error_not_an_empty_database(capsys, monkeypatch, tmp_path):
    missing = tmp_path / "typo.db"
    monkeypatch.setenv("NEMO_DB", str(missing))
    code, _, err = run(capsys, "stats", "--json")
    assert code == 1 and str(missing) in err and "\n" not in err.strip()
    assert not missing.exists()


def test_show_text_copes_with_odd_calls_in_the_context(capsys, tmp_path):
    src = tmp_path / "tool_calling_odd_calls.jsonl"
    row = {"uuid": "odd-calls", "tools": [], "messages": [
        {"role": "system", "content": ""},
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": "not an object"}, "not a call",
                                                            {"type": "function", "function": {"name": "f", "arguments": {}}}]},
        {"role": "tool", "content": "r"},
        {"role": "assistant", "content": "done", "tool_calls": None},
    ]}
    src.write_text(json.dumps(row) + "\n")
    db = tmp_path / "odd.db"
    assert main(["ingest", str(src), "--db", str(db), "--quiet", "--workers", "1"]) == 0
    code, out, _ = run(capsys, "show", "tool_calling/odd-calls/4", "--db", str(db))
    assert code == 0 and "-> calls ?, ?, f" in out


@pytest.mark.parametrize("limit", ["0", "-3", "many"])
def test_ingest_limit_must_be_a_positive_whole_number(capsys, tmp_path, limit):
    with pytest.raises(SystemExit) as info:
        main(["ingest", str(SHAPES[0]), "--db", str(tmp_path / "x.db"), "--limit", limit])
    assert info.value.code == 2
    assert "--limit" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


def test_read_commands_fall_back_to_the_demo_database_and_ingest_writes_data_nemo_db(capsys, monkeypatch, tmp_path):
    import nemo_core.base.config as config
    import nemo_core.data.demo as demo

    monkeypatch.delenv("NEMO_DB", raising=False)
    monkeypatch.setattr(config, "DEFAULT_DB", tmp_path / "nemo.db")
    real = demo.ensure_demo_db
    monkeypatch.setattr(demo, "ensure_demo_db", lambda *a, **k: real(tmp_path / "demo.db"))
    code, out, err = run(capsys, "stats", "--json")
    assert code == 0 and json.loads(out)["database"] == str(tmp_path / "demo.db")
    assert "demo database" in err
    assert json.loads(out)["decision_points"]["interactive_agent"]["function_call"] > 0
    assert not (tmp_path / "nemo.db").exists()
    # ingest never writes into the demo database: it creates data/nemo.db, which reads then use
    assert main(["ingest", str(SHAPES[0]), "--quiet"]) == 0
    code, out, err = run(capsys, "stats", "--json")
    assert json.loads(out)["database"] == str(tmp_path / "nemo.db") and json.loads(out)["conversations"] == 8
    assert err == ""


def test_progress_bar_is_none_when_quiet_and_closed_however_the_block_ends(capsys):
    from nemo_core.cli.options import progress_bar

    with progress_bar(3, unit="dp", desc="export jsonl", quiet=True) as bar:
        assert bar is None
    assert capsys.readouterr().err == ""
    with pytest.raises(KeyboardInterrupt):
        with progress_bar(3, unit="dp", desc="export jsonl", quiet=False) as bar:
            bar.update(2)
            raise KeyboardInterrupt  # Ctrl-C in the middle of the work
    assert bar.disable  # tqdm's mark of a closed bar
    err = capsys.readouterr().err
    assert "export jsonl" in err and "2/3" in err
