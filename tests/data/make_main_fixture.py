"""Build `tests/data/main-fixture.db.zst`: a database made by the workbench as it was, with every kind of thing a
user can store in it, and `main-fixture.expected.json`: what that code said about it (row counts, every run's
report). `tests/test_migrations.py` opens a copy with the current code and checks that nothing is lost.

    .venv/bin/python tests/data/make_main_fixture.py [--out tests/data]

What it holds: the demo database (data/demo/), then
- runs of every kind: `grade` with the keyword grader and with the LLM grader (against tests/fake_openai.py),
  an interrupted `grade`, `run-model` (the fake server answering tool calls and messages), an `upload`, a
  `human` run (a campaign annotator's answers re-graded), and an `environment` record of two rounds;
- a campaign with answers from two annotators and a skip;
- two audit sets (calibration and a run), LLM-scored, with a human judgement;
- attempts (a person's and a model's), the overview's cache, the LLM grader's cache.

It uses the code of the checkout it is run from (the fixture committed was built by the commit named in
`main-fixture.expected.json` under "commit"); timestamps differ between builds, nothing else.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import zstandard

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fake_openai import FakeOpenAI, Reply  # noqa: E402

from nemo_core.grading.actions import parse_action  # noqa: E402
from nemo_core.people.attempts import save_attempt  # noqa: E402
from nemo_core.people.audit.build import build_audit_set
from nemo_core.people.audit.grading import grade_audit_set
from nemo_core.people.audit.scores import record_human  # noqa: E402
from nemo_core.people.baseline import save_as_run  # noqa: E402
from nemo_core.people.campaigns import create_campaign, next_item, skip_item, submit_answer  # noqa: E402
from nemo_core.data.demo import ensure_demo_db  # noqa: E402
from nemo_core.environment import recorder as rec  # noqa: E402
from nemo_core.grading.grade import grade_action
from nemo_core.runs.grade_file import grade_file  # noqa: E402
from nemo_core.grading.endpoint import EndpointConfig  # noqa: E402
from nemo_core.grading.llm_grader import LLMGrader  # noqa: E402
from nemo_core.runs.model_runner import ModelRunner, run_model  # noqa: E402
from nemo_core.data.overview import overview  # noqa: E402
from nemo_core.runs.analysis import report  # noqa: E402
from nemo_core.data.store import Store  # noqa: E402
from nemo_core.runs.uploads import grade_upload  # noqa: E402

KEY = "sk-fixture-not-a-real-key"
OWNER = {"pid": 1, "host": "fixture-builder"}  # the environment record's owner (a process long gone)


def predictions(store: Store, ids: list[str], *, wrong_every: int = 3) -> bytes:
    """A predictions file for `ids`: the expected action, or every `wrong_every`-th a wrong one."""
    lines = []
    for n, dp_id in enumerate(ids):
        dp = store.get(dp_id)
        if dp.action_type == "function_call" and dp.expected_calls:
            call = dp.expected_calls[0]
            args = dict(call.arguments) if isinstance(call.arguments, dict) else {}
            if n % wrong_every == 0:
                args["unexpected"] = n
            action = {"type": "function_call", "name": call.name, "arguments": args}
        else:
            text = dp.expected_content or ""
            action = {"type": "message", "content": text if n % wrong_every else "Something else entirely."}
        lines.append(json.dumps({"id": dp_id, "action": action, "model": "fixture-model", "latency_ms": 10 + n}))
    lines.append("{not json")  # a problem line, stored as the run's problem
    return ("\n".join(lines) + "\n").encode()


def model_responder(request) -> Reply:
    """The fake endpoint as a model: a call of the first offered task tool, or a text reply."""
    tools = [t["function"]["name"] for t in request.body.get("tools") or [] if t["function"]["name"] != "submit_message"]
    if "response_format" in request.body:
        return Reply.json({"score": 6, "reason": "close enough"})
    n = len(request.body.get("messages") or [])
    if tools and n % 2:
        return Reply.tool_calls([(tools[0], {"query": f"q{n}"})])
    return Reply.text(f"Here is my answer number {n}.")


def build(out_dir: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="nemo-fixture-"))
    db = work / "fixture.db"
    ensure_demo_db(db)
    os.environ.pop("OPENAI_API_KEY", None)
    store = Store.open(db)
    ids = [r["id"] for r in store.query("SELECT id FROM decision_points ORDER BY rowid")]
    messages = [r["id"] for r in store.query(
        "SELECT id FROM decision_points WHERE action_type = 'message' AND flag_empty_expected = 0 ORDER BY rowid")]
    with FakeOpenAI() as server:
        server.responder = model_responder
        llm = LLMGrader(EndpointConfig(api_key=KEY, base_url=server.base_url, backoff_base=0.01), store)

        # grade: keyword, LLM, and one interrupted (a run that did not complete)
        (work / "keyword.jsonl").write_bytes(predictions(store, ids[:60]))
        grade_file(store, work / "keyword.jsonl", run_name="grade-keyword", grader="keyword", workers=0)
        (work / "llm.jsonl").write_bytes(predictions(store, messages[:12], wrong_every=2))
        grade_file(store, work / "llm.jsonl", run_name="grade-llm", grader="llm", llm=llm, workers=0)
        (work / "partial.jsonl").write_bytes(predictions(store, ids[60:90]))
        grade_file(store, work / "partial.jsonl", run_name="grade-partial", grader="keyword", workers=0)
        with store.transaction() as conn:
            conn.execute("UPDATE runs SET status = 'interrupted' WHERE name = 'grade-partial'")

        # run-model against the fake endpoint, graded by keyword
        runner = ModelRunner(EndpointConfig(model="fake-model", base_url=server.base_url, api_key=KEY))
        run_model(store, runner, ids[100:130], run_name="model-run", grader="keyword", concurrency=2)

        # an upload
        grade_upload(store, io.BytesIO(predictions(store, ids[130:160])), run_name="an-upload",
                     filename="uploaded.jsonl", grader="keyword")

        # a campaign: two annotators, answers and a skip; one annotator's answers saved as a human run
        camp = create_campaign(store, "fixture campaign", selection={}, sample_size=8, seed=3, overlap=2,
                               shared_share=0.25)
        for who in ("ann", "bob"):
            for n in range(4):
                item = next_item(store, camp.id, who)
                if item is None:
                    break
                if who == "bob" and n == 3:
                    skip_item(store, item.id, who, "not sure what is asked")
                    continue
                dp = store.get(item.dp_id)
                action = ({"type": "function_call", "name": dp.expected_calls[0].name, "arguments": {}}
                          if dp.action_type == "function_call" else {"type": "message", "content": f"{who} says hi"})
                submit_answer(store, item.id, who, action, note=f"note {n}", confidence=3)
        save_as_run(store, camp.id, "ann", work)

        # audit sets: calibration and a run, LLM-scored, one human judgement
        calibration = build_audit_set(store, "calibration", limit=5)
        grade_audit_set(store, calibration.audit_set.id, llm, concurrency=2)
        of_run = build_audit_set(store, "run", run="grade-llm")
        grade_audit_set(store, of_run.audit_set.id, llm, concurrency=2)
        first_item = store.scalar("SELECT min(id) FROM audit_items WHERE set_id = ?", (calibration.audit_set.id,))
        record_human(store, first_item, "rater-1", 7)

        # attempts: a person's and a model's
        dp = store.get(messages[0])
        action = parse_action({"type": "message", "content": "A person's try."})
        save_attempt(store, dp.id, who="someone", kind="human", action=action.to_json(),
                     breakdown=grade_action(store, dp, action, grader="keyword"))
        answer = runner.answer(dp)
        save_attempt(store, dp.id, who="fake-model", kind="model", action=answer.action_json(),
                     breakdown=grade_action(store, dp, answer.action, grader="keyword") if answer.action else None,
                     extra=answer.extra())

    # an environment record: round 1 and round 2 (a decision point submitted twice)
    env_ids = [r["id"] for r in store.query("SELECT id FROM decision_points WHERE flag_ungradeable = 0 "
                                            "ORDER BY rowid LIMIT 6 OFFSET 40")]
    subs = []
    for n, dp_id in enumerate(env_ids + env_ids[:2]):
        dp = store.get(dp_id)
        if n % 2 == 0 and dp.action_type == "function_call":  # some right, some wrong
            action = parse_action({"type": "function_call", "name": dp.expected_calls[0].name,
                                   "arguments": dp.expected_calls[0].arguments})
        else:
            action = parse_action({"type": "message", "content": dp.expected_content if n % 2 == 0 else f"env {n}"})
        subs.append(rec.Submission.of(dp, action, grade_action(None, dp, action), extra={"n": n}))
    rec.open_record(store, "env-record")
    rec.store_submissions(store, "env-record", subs, owner=OWNER, source="serve-env fixture")
    rec.close_record(store, "env-record")

    overview(store)  # the overview's cache
    for path in work.glob("*.jsonl"):  # gone, as they will be wherever the fixture is opened
        path.unlink()
    runs = [r["name"] for r in store.query("SELECT name FROM runs ORDER BY id")]
    reports = {name: report(store, name) for name in runs}
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA journal_mode = DELETE")
    raw.execute("VACUUM")
    tables = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    counts = {t: raw.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    schema_version = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    raw.close()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "main-fixture.db.zst").write_bytes(zstandard.ZstdCompressor(level=19).compress(db.read_bytes()))
    expected = {"commit": commit, "schema_version": schema_version, "counts": counts, "reports": reports}
    (out_dir / "main-fixture.expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(work)
    print(f"{out_dir / 'main-fixture.db.zst'}: {(out_dir / 'main-fixture.db.zst').stat().st_size:,} bytes, "
          f"{len(runs)} runs, tables: {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()
