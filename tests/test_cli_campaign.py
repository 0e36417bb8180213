"""`campaign create / list / results / export`, run in-process on a copy of the demo database."""

from __future__ import annotations

import csv
import io
import json

from nemo_core.people import campaigns as C
from nemo_core.cli.main import main
from nemo_core.data.store import Store


def test_campaign_commands(demo_db, tmp_path, capsys):
    assert main(["campaign", "create", "pilot", "--size", "6", "--seed", "3", "--stratify", "--overlap", "2",
                 "--shared", "0.5", "--exclude-flag", "ungradeable", "--db", str(demo_db)]) == 0
    out = capsys.readouterr().out
    assert "campaign 'pilot'" in out and "6 items of 177 matching" in out
    assert "tool_calling × function_call" in out
    store = Store.open(demo_db)
    try:
        camp = C.get_campaign(store, "pilot")
        assert camp.stratify and camp.overlap == 2 and camp.selection == {"exclude_flags": "ungradeable"}
        for who in ("ann", "bob"):
            for _ in range(2):
                a = C.next_item(store, camp.id, who)
                C.submit_answer(store, a.id, who, {"type": "message", "content": "Sure."}, note="a, \"quoted\" note")
    finally:
        store.close()

    assert main(["campaign", "list", "--db", str(demo_db)]) == 0
    assert "pilot\topen\t4/" in capsys.readouterr().out

    assert main(["campaign", "results", "pilot", "--db", str(demo_db)]) == 0
    out = capsys.readouterr().out
    assert "4 answers, 0 skips" in out and "human baseline reward:" in out and "by annotator:" in out
    assert main(["campaign", "results", "pilot", "--json", "--db", str(demo_db)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["answers"] == 4 and data["agreement"]["kappa_method"] == "cohen"
    assert {r["value"] for r in data["scores"] if r["group"] == "annotator"} == {"ann", "bob"}

    assert main(["campaign", "export", "pilot", "--db", str(demo_db)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 4 and rows[0]["note"] == 'a, "quoted" note'
    out_file = tmp_path / "ann.jsonl"
    assert main(["campaign", "export", "pilot", "--format", "jsonl", "--annotator", "ann", "--out", str(out_file),
                 "--db", str(demo_db)]) == 0
    lines = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert len(lines) == 2 and {x["annotator"] for x in lines} == {"ann"}
    # the export is grade input: it grades as a run with no problem line
    assert main(["grade", str(out_file), "--db", str(demo_db), "--run", "ann-regraded", "--grader", "keyword",
                 "--quiet"]) == 0
    store = Store.open(demo_db)
    try:
        assert store.scalar("SELECT n_problems FROM runs WHERE name = 'ann-regraded'") == 0
        assert store.scalar("SELECT count(*) FROM predictions p JOIN runs r ON r.id = p.run_id "
                            "WHERE r.name = 'ann-regraded'") == 2
    finally:
        store.close()

    # delete: nothing without --yes; with it, the campaign, its items and answers go, the saved run stays
    assert main(["campaign", "create", "other", "--size", "3", "--db", str(demo_db)]) == 0
    capsys.readouterr()
    assert main(["campaign", "delete", "pilot", "--db", str(demo_db)]) == 1
    assert "6 items, 4 answers would be deleted" in capsys.readouterr().out
    assert main(["campaign", "delete", "pilot", "--yes", "--db", str(demo_db)]) == 0
    assert "deleted campaign 'pilot'" in capsys.readouterr().out
    store = Store.open(demo_db)
    try:
        assert [c.name for c in C.list_campaigns(store)] == ["other"]
        other = C.get_campaign(store, "other").id
        for table in ("campaign_items", "campaign_answers"):
            assert store.scalar(f"SELECT count(*) FROM {table} WHERE campaign_id != ?", (other,)) == 0
        assert store.scalar(f"SELECT count(*) FROM campaign_items WHERE campaign_id = ?", (other,)) == 3
        assert store.scalar("SELECT count(*) FROM runs WHERE name = 'ann-regraded'") == 1
    finally:
        store.close()
    assert main(["campaign", "delete", "pilot", "--yes", "--db", str(demo_db)]) == 1
    assert "no campaign 'pilot'" in capsys.readouterr().err


def test_campaign_errors_are_one_line(demo_db, capsys):
    assert main(["campaign", "results", "nope", "--db", str(demo_db)]) == 1
    assert "error: no campaign 'nope'" in capsys.readouterr().err
    assert main(["campaign", "create", "x", "--size", "3", "--split", "bogus", "--db", str(demo_db)]) == 1
    assert "unknown split" in capsys.readouterr().err
    assert main(["campaign", "list", "--db", str(demo_db)]) == 0
    assert "no campaign yet" in capsys.readouterr().out


def test_every_action_takes_db_and_all_but_list_name_a_campaign():
    from nemo_core.cli.commands import campaign as command
    from nemo_core.cli.main import build_parser

    parser = build_parser()
    runs = {"create": command.run_create, "list": command.run_list, "results": command.run_results,
            "export": command.run_export, "delete": command.run_delete}
    for action, run in runs.items():
        extra = ["--size", "5"] if action == "create" else []
        named = [] if action == "list" else ["pilot"]
        args = parser.parse_args(["campaign", action, *named, *extra, "--db", "x.db"])
        assert args.run is run and str(args.db) == "x.db"
        assert getattr(args, "name", None) == (None if action == "list" else "pilot")
