"""Downloads on the Browse and Runs pages (ui/downloads.py) and the command line they show (export.cli_command)."""

from __future__ import annotations

import io
import json
import shlex

import pytest

from nemo_core.cli.main import build_parser, main
from nemo_core.cli.commands.export import filter_from_args
from nemo_core.data.dp_stream import Selection
from nemo_core.runs.export import cli_command, export_bytes
from nemo_core.data.filters import DecisionPointFilter
from nemo_core.data.store import Store


def test_the_command_line_shown_selects_the_same_decision_points():
    flt = DecisionPointFilter(split="tool_calling", action_type="function_call", tool="get weather; rm -rf /",
                              text="it's \"quoted\"", flags=("parallel",), exclude_flags=("ungradeable", "no_task_tools"),
                              min_tools=2, max_tools=9, min_turn=1, max_turn=30)
    command = cli_command(Selection(flt, sample=50, seed=3), "openai-ft", "out file.jsonl", db="/data/my db.db")
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "nemo_core", "export"]
    args = build_parser().parse_args(argv[3:])
    assert filter_from_args(args) == flt
    assert (args.fmt, str(args.out), str(args.db), args.sample, args.seed) == \
        ("openai-ft", "out file.jsonl", "/data/my db.db", 50, 3)
    run = shlex.split(cli_command(Selection(run_id=4), "csv", "r.csv", run_name="my run"))
    assert run[-4:] == ["--run", "my run", "--out", "r.csv"]


def test_export_bytes_is_the_file_export_writes(demo_db, tmp_path):
    import pandas as pd

    data = export_bytes(demo_db, Selection(DecisionPointFilter(split="interactive_agent")), "parquet")
    frame = pd.read_parquet(io.BytesIO(data))
    with Store.open(demo_db) as store:
        assert list(frame["id"]) == store.ids(DecisionPointFilter(split="interactive_agent"))
    lines = export_bytes(demo_db, Selection(), "nemo-gym").decode().splitlines()
    assert len(lines) == 174 and all("expected_action" in json.loads(x) for x in lines)


def test_browse_offers_the_filtered_view(open_page, demo_db):
    with Store.open(demo_db) as store:
        n = store.count(DecisionPointFilter(split="tool_calling", action_type="message"))
    at = open_page("app_pages/browse.py", split="tool_calling", action_type="message")
    assert not at.exception
    buttons = at.get("download_button")
    assert len(buttons) == 1 and buttons[0].proto.label == f"Download {n} decision points (parquet)"
    codes = [c.value for c in at.code]
    assert any("--split tool_calling --action-type message" in c and "--format parquet" in c for c in codes)


def test_past_the_limit_the_page_shows_the_command_instead(open_page, monkeypatch):
    import ui.downloads

    monkeypatch.setattr(ui.downloads, "PAGE_EXPORT_LIMIT", 20)
    at = open_page("app_pages/browse.py", split="tool_calling")
    assert not at.exception and not at.get("download_button")
    assert any("more than the 20 a page download holds" in i.value for i in at.info)
    assert any(c.value.startswith("python -m nemo_core export --format parquet") for c in at.code)


def test_runs_offers_the_runs_predictions(open_page, demo_db, tmp_path):
    with Store.open(demo_db) as store:
        ids = store.ids(DecisionPointFilter(action_type="message"))[:5]
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": i, "action": {"type": "message", "content": "hello"}}) + "\n" for i in ids))
    assert main(["grade", str(preds), "--db", str(demo_db), "--run", "dl run", "--quiet"]) == 0
    at = open_page("app_pages/runs.py", run="dl run")
    assert not at.exception
    buttons = at.get("download_button")
    assert len(buttons) == 1 and "Download 5 predictions (parquet)" in buttons[0].proto.label
    assert any("--run 'dl run'" in c.value for c in at.code)
