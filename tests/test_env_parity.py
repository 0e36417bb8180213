"""serve-env against `grade`: for every task of the demo database, the expected action and two perturbed ones
(a wrong argument value and a wrong tool; for a message task a near and a far reply) are submitted through
the SDK's own client to a real server, and the same actions are graded by `grade`: rewards, breakdowns and
the stored predictions are identical. The same sessions check the prompt against `show --json`."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from functools import partial
from pathlib import Path

import pytest

pytest.importorskip("openreward")

from nemo_core.cli import main as cli  # noqa: E402
from nemo_core.base.config import SUBMIT_MESSAGE  # noqa: E402
from nemo_core.data.records import content_text, link_tool_results, parse_tool_calls  # noqa: E402
from nemo_core.grading.request import NO_RESULT_PLACEHOLDER, UNLINKED_TOOL_RESULT_PREFIX  # noqa: E402
from nemo_core.data.store import Store  # noqa: E402

from env_client import all_tasks, episode, run_all, run_sync  # noqa: E402
from env_server import EnvServer  # noqa: E402

FAR_REPLY = "Bananas ripen faster when they are stored beside apples."


def perturbed_value(args: dict) -> dict:
    """The same arguments with one value changed (or one key added when there are none)."""
    if not args:
        return {"unexpected_key": 1}
    key = sorted(args)[0]
    value = args[key]
    if isinstance(value, bool):
        new = not value
    elif isinstance(value, (int, float)):
        new = value + 1
    elif isinstance(value, str):
        new = value + " (changed)"
    else:
        new = {"changed": value}
    return {**args, key: new}


def variants(dp) -> list[tuple[str, dict]]:
    """[expected, perturbed, perturbed] as (tool name, arguments)."""
    if dp.action_type == "function_call":
        call = dp.expected_calls[0]
        others = [n for n in dp.toolset.names if n != call.name]
        wrong_tool = others[0] if others else "a_tool_this_task_does_not_offer"
        return [(call.name, dict(call.arguments)), (call.name, perturbed_value(call.arguments)),
                (wrong_tool, dict(call.arguments))]
    text = dp.expected_content or ""
    words = text.split()
    near = " ".join(words[:-1]) if len(words) > 1 else text + " indeed"
    return [(SUBMIT_MESSAGE, {"message": text}), (SUBMIT_MESSAGE, {"message": near}),
            (SUBMIT_MESSAGE, {"message": FAR_REPLY})]


def show_json(db: Path, dp_id: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["show", dp_id, "--db", str(db), "--json"]) == 0
    return json.loads(out.getvalue())


def grade_lines(db: Path, actions: dict[str, tuple[str, dict]], run: str, tmp_path: Path) -> dict[str, dict]:
    """`grade` on {"id", "action": the same call as a function_call} for each id: result lines by id."""
    preds, out = tmp_path / f"{run}.jsonl", tmp_path / f"{run}.out.jsonl"
    preds.write_text("".join(json.dumps({"id": dp_id, "action": {"type": "function_call", "name": name,
                                                                  "arguments": args}}) + "\n"
                             for dp_id, (name, args) in actions.items()))
    with contextlib.redirect_stdout(io.TextIOWrapper(io.BytesIO())), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["grade", str(preds), "--db", str(db), "--run", run, "--grader", "keyword",
                         "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return {line["id"]: line for line in lines}


# ---- the prompt against `show --json` ------------------------------------------------------------------------
def context_events(context: list[dict]) -> list[tuple]:
    """What a context says, in order: texts by role, calls (name, arguments), tool replies (text, the name
    of the call they answer or None)."""
    links = link_tool_results(context)
    events: list[tuple] = []
    for i, msg in enumerate(context):
        role = msg["role"]
        if role == "tool":
            link = links[i]
            name = parse_tool_calls(context[link[0]].get("tool_calls"))[link[1]].name if link else None
            content = msg.get("content")  # non-string replies (JSON) are compared as JSON values
            events.append(("result", content if not isinstance(content, str) else content, name))
        elif role == "assistant":
            calls = parse_tool_calls(msg.get("tool_calls"))
            text = content_text(msg.get("content"))
            if text or not calls:
                events.append(("text", "assistant", text))
            for call in calls:
                events.append(("call", call.name, call.arguments if call.error is None else call.arguments_raw))
        else:
            events.append(("text", role, content_text(msg.get("content"))))
    return events


def message_events(messages: list) -> list[tuple]:
    """The same, read back from the SDK messages (placeholders for unanswered calls left out)."""
    names: dict[str, str] = {}
    events: list[tuple] = []
    for msg in messages:
        for block in msg.blocks:
            kind = block.type
            if kind == "tool_call":
                names[block.id] = block.name
                events.append(("call", block.name, dict(block.input)))
            elif kind == "tool_result":
                text = "".join(b.text for b in block.blocks)
                if text != NO_RESULT_PLACEHOLDER:
                    events.append(("result", text, names.get(block.tool_call_id)))
            elif kind == "text" and (block.detail or {}).get("type") == "tool_call":
                name, _, raw = block.text.removeprefix("[tool_call ").partition("] ")
                names[block.detail["id"]] = name
                events.append(("call", name, raw))  # the arguments as recorded (not an object)
            elif kind == "text" and (block.detail or {}).get("type") == "tool_result":
                events.append(("result", block.text.split("] ", 1)[1], names.get(block.detail["tool_call_id"])))
            elif kind == "text" and msg.role == "user" and block.text.startswith(UNLINKED_TOOL_RESULT_PREFIX):
                events.append(("result", block.text.removeprefix(UNLINKED_TOOL_RESULT_PREFIX), None))
            else:
                assert kind == "text", f"unexpected {kind} block"
                events.append(("text", msg.role, block.text))
    return events


def same_event(served: tuple, expected: tuple) -> bool:
    if served[0] == expected[0] == "result" and not isinstance(expected[1], str):
        return json.loads(served[1]) == expected[1] and served[2] == expected[2]
    if served[0] == expected[0] == "call" and not isinstance(expected[2], dict):  # shown as text
        value = expected[2] if isinstance(expected[2], str) else json.dumps(expected[2], ensure_ascii=False)
        return served[1] == expected[1] and served[2] == value
    return served == expected


def check_prompt(ep, shown: dict) -> None:
    served, expected = message_events(ep.messages), context_events(shown["context"])
    assert len(served) == len(expected), shown["id"]
    for a, b in zip(served, expected):
        assert same_event(a, b), (shown["id"], a, b)
    assert all(b.type != "reasoning" for m in ep.messages for b in m.blocks)  # reasoning left out
    for msg in shown["context"]:  # and no earlier reasoning text slipped into a block
        reasoning = msg.get("reasoning_content")
        if isinstance(reasoning, str) and len(reasoning) > 40:
            assert all(reasoning not in getattr(b, "text", "") for m in ep.messages for b in m.blocks)
    assert ep.prompt and ep.prompt[0].text == f"[{ep.messages[0].role}]"  # the SDK's flattening of them
    offered = {t["function"]["name"]: t["function"] for t in shown["tools"]}
    listed = {t.name: t for t in ep.tools}
    assert list(listed) == [SUBMIT_MESSAGE] + [n for n in offered if n != SUBMIT_MESSAGE]
    for name, fn in offered.items():
        assert listed[name].description == fn["description"], name
        assert listed[name].input_schema == fn["parameters"], name


# ---- the test --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def parity_run(demo_db_master, tmp_path_factory):
    """Every task × 3 actions through a recording server (one round per variant), the same through `grade`."""
    tmp = tmp_path_factory.mktemp("parity")
    served_db, graded_db = tmp / "served.db", tmp / "graded.db"
    shutil.copy(demo_db_master, served_db)
    shutil.copy(demo_db_master, graded_db)
    store = Store.open(demo_db_master, readonly=True)
    with EnvServer(served_db, record="parity", workers=1) as server:
        tasks = run_sync(all_tasks(server.base_url))
        dps = {t.task_spec["id"]: store.get(t.task_spec["id"]) for t in tasks}
        episodes: list[list] = []
        for k in range(3):  # one variant at a time, so variant k is round k of the record
            jobs = [partial(episode, tool=variants(dps[t.task_spec["id"]])[k][0],
                            args=variants(dps[t.task_spec["id"]])[k][1], task=t, read=k == 0) for t in tasks]
            episodes.append(run_sync(run_all(server.base_url, jobs, concurrency=16)))
    store.close()
    graded = [grade_lines(graded_db, {dp_id: variants(dp)[k] for dp_id, dp in dps.items()}, f"g{k}", tmp)
              for k in range(3)]
    return {"tasks": tasks, "dps": dps, "episodes": episodes, "graded": graded, "served_db": served_db,
            "graded_db": graded_db, "output": server.output}


def test_every_task_is_served_with_the_store_task_counts(parity_run, demo_db_master):
    with Store.open(demo_db_master, readonly=True) as store:
        counts = store.task_counts()
        ungradeable = {r["id"] for r in store.query("SELECT id FROM decision_points WHERE flag_ungradeable = 1")}
        all_ids = [r["id"] for r in store.query("SELECT id, split FROM decision_points ORDER BY split, id")]
    ids = [t.task_spec["id"] for t in parity_run["tasks"]]
    assert len(ids) == sum(counts.values()) == 177 and len(set(ids)) == len(ids)
    assert not set(ids) & ungradeable and set(ids) | ungradeable == set(all_ids)
    for split in counts:  # each split in id order, its count as `stats` says
        in_split = [i for i in ids if i.startswith(split + "/")]
        assert in_split == sorted(in_split) and len(in_split) == counts[split]


def test_rewards_and_breakdowns_equal_grade(parity_run):
    n_compared = 0
    for k in range(3):
        for ep in parity_run["episodes"][k]:
            line = dict(parity_run["graded"][k][ep.task_id])
            if "error" in line:  # `grade` refused the action; the server must refuse it too
                assert ep.error is not None, (ep.task_id, line)
                continue
            assert ep.error is None, (ep.task_id, ep.extra, ep.error)
            line.pop("line")
            assert ep.result.finished is True
            assert ep.result.reward == line["reward"], (ep.task_id, k)
            assert dict(ep.result.metadata) == line, (ep.task_id, k)
            n_compared += 1
    assert n_compared == 3 * 177
    rewards = [[ep.result.reward for ep in parity_run["episodes"][k]] for k in range(3)]
    assert sum(rewards[0]) > sum(rewards[1]) > 0 and sum(rewards[0]) > sum(rewards[2])  # the variants differ


def test_prompt_and_tools_match_show_json(parity_run):
    with Store.open(parity_run["graded_db"], readonly=True) as store:
        for i, ep in enumerate(parity_run["episodes"][0]):
            shown = store.get(ep.task_id).to_json()  # what `show --json` prints; checked by the command itself:
            if i % 40 == 0:
                assert show_json(parity_run["graded_db"], ep.task_id) == json.loads(json.dumps(shown))
            check_prompt(ep, shown)


def test_recorded_rounds_hold_what_grade_stores(parity_run):
    served = Store.open(parity_run["served_db"], readonly=True)
    graded = Store.open(parity_run["graded_db"], readonly=True)
    columns = "dp_id, split, action_type, submitted_type, action, reward, action_type_match, name_match, arg_match, " \
              "grader, grader_model, reason, breakdown, error"
    for k, name in enumerate(["parity", "parity@2", "parity@3"]):
        run = served.query("SELECT id, kind, status, n_predictions FROM runs WHERE name = ?", (name,))[0]
        assert (run["kind"], run["status"], run["n_predictions"]) == ("environment", "completed", 177)
        mine = {r["dp_id"]: r for r in served.query(f"SELECT {columns}, extra FROM predictions WHERE run_id = ?", (run["id"],))}
        theirs = {r["dp_id"]: r for r in graded.query(
            f"SELECT {columns} FROM predictions WHERE run_id = (SELECT id FROM runs WHERE name = ?)", (f"g{k}",))}
        assert mine.keys() == theirs.keys()
        sessions = {ep.sid for ep in parity_run["episodes"][k]}
        for dp_id, row in mine.items():
            other = theirs[dp_id]
            assert json.loads(row.pop("extra"))["session_id"] in sessions
            row_breakdown, other_breakdown = json.loads(row.pop("breakdown")), json.loads(other.pop("breakdown"))
            other_breakdown.pop("line")
            assert row_breakdown == other_breakdown
            assert json.loads(row.pop("action")) == json.loads(other.pop("action"))
            assert row == other, dp_id
        # the taxonomy stored as rows came in agrees with a classification of the whole run afterwards
        tax = served.query(f"SELECT category, count(*) AS n FROM taxonomy_run_{run['id']} GROUP BY category ORDER BY category")
        gtax = graded.query(f"SELECT category, count(*) AS n FROM taxonomy_run_{graded.scalar('SELECT id FROM runs WHERE name = ?', (f'g{k}',))} "
                            "GROUP BY category ORDER BY category")
        assert tax == gtax
    served.close()
    graded.close()
