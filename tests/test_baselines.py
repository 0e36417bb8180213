"""The offline baseline policies (`runs/policies.py`), their runner, and `run-model --model baseline:NAME`.

Every policy is checked on hand-made conversations for what its one sentence promises, then on every demo
decision point: its answer is a valid action (accepted by `parse_action`, graded), and two runs with one seed
store the same predictions. Nothing here can reach a network: no key, and the base URL is a closed port.
"""

from __future__ import annotations

import json

import pytest

from nemo_core.cli.main import main
from nemo_core.data.records import normalise_tools
from nemo_core.data.store import Store
from nemo_core.grading.actions import parse_action
from nemo_core.grading.grade import grade_action
from nemo_core.runs.model_runner import run_model, select_ids
from nemo_core.runs.policies import (POLICIES, POLITE_REPLY, PolicyInput, UnknownPolicy, conversation_values,
                                     decide, get_policy, identifier_words, is_baseline)
from nemo_core.runs.policy_runner import PolicyRunner, runner_for
from nemo_core.grading.endpoint import EndpointConfig
from nemo_core.runs.model_runner import ModelRunner

NAMES = ("always-message", "first-tool", "keyword-router", "copy-last-call")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No key, and any request would go to a port nothing listens on."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("NEMO_DB", raising=False)


def tool(name: str, description: str = "", **props: str) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": {k: {"type": v} for k, v in props.items()}}}}


def toolset(*tools: dict):
    return normalise_tools(list(tools))


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def call_msg(*calls: tuple[str, object]) -> dict:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": a if isinstance(a, str) else json.dumps(a)}}
        for i, (n, a) in enumerate(calls)]}


def result(content: object) -> dict:
    return {"role": "tool", "tool_call_id": "c0", "content": content if isinstance(content, str) else json.dumps(content)}


WEATHER = tool("get_weather", "Current weather forecast for a city", city="string", units="string")
ORDER = tool("getOrder_status", "Look up the shipping status of an order", order_id="integer", email="string")
REFUND = tool("issue_refund", "Refund an order payment", order_id="integer", amount="number")


# ---- each policy on hand-made conversations -------------------------------------------------------------------
def test_the_four_policies_are_the_ones_the_issue_names_each_with_one_sentence():
    assert tuple(POLICIES) == NAMES
    for policy in POLICIES.values():
        assert policy.description and ". " not in policy.description


def test_always_message_sends_the_polite_reply_whatever_the_conversation():
    for ctx in ([], [user("where is my order 42?")], [user("x"), call_msg(("get_weather", {"city": "Oslo"}))]):
        d = decide("always-message", ctx, toolset(WEATHER, ORDER))
        assert d.action.to_json() == {"type": "message", "content": POLITE_REPLY}


def test_first_tool_calls_the_first_task_tool_with_empty_arguments():
    d = decide("first-tool", [user("refund me")], toolset(ORDER, REFUND))
    assert d.action.to_json() == {"type": "function_call", "name": "getOrder_status", "arguments": {}}


def test_first_tool_sends_a_message_when_the_task_has_no_tool():
    assert decide("first-tool", [user("hi")], toolset()).action.to_json() == {"type": "message", "content": POLITE_REPLY}


def test_keyword_router_picks_the_tool_sharing_most_keywords_and_fills_arguments_from_the_conversation():
    ctx = [user("My email: ada@example.org please"),
           call_msg(("getOrder_status", {"orderId": 7})),
           result({"order": {"order_id": 42, "status": "paid"}, "items": [{"order_id": 1}]}),
           user("I want a refund for that order payment, amount=19.5!")]
    d = decide("keyword-router", ctx, toolset(WEATHER, ORDER, REFUND))
    # refund, order, payment shared with issue_refund; order only with getOrder_status
    assert d.action.name == "issue_refund"
    # order_id: the tool result (message 2) is more recent than the call's orderId (message 1), shallowest first;
    # amount from the user's `amount=19.5` (trailing "!" dropped), a number since the schema says so
    assert d.action.arguments == {"order_id": 42, "amount": 19.5}
    assert "issue_refund shares 3 keywords" in d.note and "order_id from the tool result of message 2" in d.note


def test_keyword_router_reads_keys_case_and_punctuation_blind_and_coerces_only_exact_values():
    values = conversation_values([user('USER-ID: "u 7" count=12 flag=true note=12abc')])
    assert values["userid"].value == "u 7" and values["count"].value == "12"
    d = decide("keyword-router", [user("order status for order_id=12abc email=bob@x.org")], toolset(ORDER))
    assert d.action.arguments == {"order_id": "12abc", "email": "bob@x.org"}  # not an integer: kept as text
    d = decide("keyword-router", [user("order status, ORDER-ID: 12")], toolset(ORDER))
    assert d.action.arguments == {"order_id": 12}


def test_keyword_router_splits_tool_names_into_words():
    assert identifier_words("getOrder_status") == "get Order status"
    assert identifier_words("fetch-user.profile") == "fetch user profile"


def test_keyword_router_sends_the_users_keywords_when_no_tool_matches():
    d = decide("keyword-router", [user("Tell me a joke about penguins, please!")], toolset(WEATHER, ORDER))
    assert d.action.to_json() == {"type": "message", "content": "tell joke penguins please"}
    d = decide("keyword-router", [user("and then?")], toolset(WEATHER))
    assert d.action.to_json() == {"type": "message", "content": POLITE_REPLY}


def test_keyword_router_breaks_ties_by_seed_the_same_way_every_time():
    a, b = tool("alpha_lookup", "lookup"), tool("beta_lookup", "lookup")
    chosen = {}
    for seed in range(20):
        picks = {decide("keyword-router", [user("lookup please")], toolset(a, b), seed=seed, dp_id="dp/1").action.name
                 for _ in range(3)}
        assert len(picks) == 1  # one seed, one answer
        chosen[seed] = picks.pop()
    assert set(chosen.values()) == {"alpha_lookup", "beta_lookup"}  # the seed does decide


def test_copy_last_call_repeats_the_most_recent_call_as_recorded():
    ctx = [user("weather?"), call_msg(("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lyon", "units": "C"})),
           result("sunny"), user("thanks, and now?")]
    d = decide("copy-last-call", ctx, toolset(WEATHER))
    assert d.action.to_json() == {"type": "function_call", "name": "get_weather", "arguments": {"city": "Lyon", "units": "C"}}
    assert decide("copy-last-call", [user("hi")], toolset(WEATHER)).action.to_json()["content"] == POLITE_REPLY


def test_an_unknown_baseline_names_the_ones_there_are():
    with pytest.raises(UnknownPolicy) as info:
        get_policy("baseline:coin-flip")
    assert "baseline:keyword-router" in info.value.one_line()
    assert is_baseline("baseline:first-tool") and not is_baseline("gpt-5-mini")


def test_runner_for_gives_a_policy_runner_for_a_baseline_and_a_model_runner_otherwise():
    assert isinstance(runner_for(EndpointConfig(model="baseline:first-tool"), seed=3), PolicyRunner)
    assert isinstance(runner_for(EndpointConfig(model="m", base_url="http://127.0.0.1:9/v1"), check=False), ModelRunner)


# ---- every demo decision point --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_every_answer_at_every_demo_decision_point_is_a_valid_graded_action(demo_store, name):
    runner = PolicyRunner(name, seed=5)
    ids = select_ids(demo_store, None)
    assert len(ids) == 180
    for dp_id in ids:
        dp = demo_store.get(dp_id)
        answer = runner.answer(dp)
        assert answer.action is not None and answer.attempts == 0, dp_id  # nothing was sent
        as_json = answer.action_json()
        assert parse_action(as_json).to_json() == as_json, dp_id
        breakdown = grade_action(demo_store, dp, as_json, grader="keyword")
        assert breakdown.reward is not None or not dp.gradeable, dp_id
        if name == "copy-last-call":
            continue  # repeats what the conversation recorded, broken calls included (graded as such)
        if as_json["type"] == "function_call":
            assert as_json["name"] in dp.toolset.names and isinstance(as_json["arguments"], dict), dp_id
            assert answer.error_kind is None, dp_id
        else:
            assert isinstance(as_json["content"], str) and as_json["content"].strip(), dp_id


def stored(store: Store, run: str) -> dict[str, tuple]:
    rows = store.query("SELECT p.dp_id, p.action, p.reward, p.breakdown, p.error FROM predictions p "
                       "JOIN runs r ON r.id = p.run_id WHERE r.name = ?", (run,))
    return {r["dp_id"]: (r["action"], r["reward"], r["breakdown"], r["error"]) for r in rows}


@pytest.mark.parametrize("name", NAMES)
def test_two_runs_with_one_seed_store_the_same_predictions(demo_store, name):
    ids = select_ids(demo_store, None)
    for run, concurrency in (("first", 1), ("second", 4)):
        run_model(demo_store, PolicyRunner(name, seed=11), ids, run_name=run, grader="keyword", concurrency=concurrency)
    first, second = stored(demo_store, "first"), stored(demo_store, "second")
    assert len(first) == 180 and first == second


# ---- run-model --model baseline:NAME --------------------------------------------------------------------------
def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_model_runs_a_baseline_offline_and_records_policy_and_seed(capsys, demo_db, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-would-make-auto-pick-the-llm")  # a baseline stays keyword-graded
    code, out, err = run_cli(capsys, "run-model", "--model", "baseline:keyword-router", "--db", str(demo_db),
                             "--seed", "3", "--run", "kr", "--quiet")
    assert code == 0, err
    assert "model baseline:keyword-router, grader keyword" in out
    with Store.open(demo_db) as store:
        run = store.query("SELECT * FROM runs WHERE name = 'kr'")[0]
        assert run["kind"] == "run-model" and run["status"] == "completed" and run["grader"] == "keyword"
        assert run["model"] == "baseline:keyword-router"
        settings = json.loads(run["settings"])
        assert settings["policy"] == "keyword-router" and settings["seed"] == 3 and settings["base_url"] is None
        assert "sk-would" not in json.dumps(dict(run))
        assert store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", (run["id"],)) == 180
        direct = PolicyRunner("keyword-router", seed=3)
        for dp_id, (action, *_rest) in list(stored(store, "kr").items())[:40]:
            assert json.loads(action) == direct.answer(store.get(dp_id)).action_json()


def test_run_model_baseline_refuses_another_seed_on_resume_and_options_for_endpoints(capsys, demo_db):
    base = ["run-model", "--model", "baseline:first-tool", "--db", str(demo_db), "--quiet", "--limit", "5"]
    assert run_cli(capsys, *base, "--run", "ft")[0] == 0
    code, _, err = run_cli(capsys, *base, "--run", "ft", "--seed", "2")
    assert code == 1 and "was made with --seed 0, not 2" in err
    code, _, err = run_cli(capsys, *base, "--base-url", "http://127.0.0.1:9/v1")
    assert code == 1 and "--base-url" in err and "offline" in err
    code, _, err = run_cli(capsys, *base, "--write-batch", str(demo_db.parent / "b.jsonl"))
    assert code == 1 and "--write-batch" in err
    code, _, err = run_cli(capsys, "run-model", "--model", "m", "--db", str(demo_db), "--seed", "1", "--dry-run")
    assert code == 1 and "--seed is for a baseline policy" in err
    code, _, err = run_cli(capsys, "run-model", "--model", "baseline:coin-flip", "--db", str(demo_db), "--quiet")
    assert code == 1 and "unknown baseline 'coin-flip'" in err and "baseline:copy-last-call" in err
    assert len(err.strip().splitlines()) == 1
    with Store.open(demo_db) as store:
        assert [r["name"] for r in store.query("SELECT name FROM runs")] == ["ft"]


def test_run_model_dry_run_of_a_baseline_prints_what_it_reads(capsys, demo_db):
    code, out, err = run_cli(capsys, "run-model", "--model", "baseline:copy-last-call", "--db", str(demo_db),
                             "--limit", "1", "--dry-run")
    assert code == 0 and "nothing was sent" in err
    body = json.loads(out)
    assert body["model"] == "baseline:copy-last-call" and body["messages"] and body["tools"]


def test_report_json_has_the_mean_of_each_split_and_action_type_cell(capsys, demo_db):
    assert run_cli(capsys, "run-model", "--model", "baseline:keyword-router", "--db", str(demo_db), "--quiet",
                   "--run", "kr")[0] == 0
    code, out, _ = run_cli(capsys, "report", "--run", "kr", "--db", str(demo_db), "--json")
    cells = json.loads(out)["by_split_and_action_type"]
    with Store.open(demo_db) as store:
        rows = store.query("SELECT split, action_type, reward FROM predictions")
    expected: dict[tuple[str, str], list] = {}
    for r in rows:
        expected.setdefault((r["split"], r["action_type"]), []).append(r["reward"])
    assert {(s, t) for s in cells for t in cells[s]} == set(expected) and len(expected) == 4
    for (split, action_type), rewards in expected.items():
        graded = [x for x in rewards if x is not None]
        cell = cells[split][action_type]
        assert cell["n"] == len(graded) and cell["n_ungraded"] == len(rewards) - len(graded)
        assert cell["mean"] == pytest.approx(sum(graded) / len(graded))
        assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"]
    code, text, _ = run_cli(capsys, "report", "--run", "kr", "--db", str(demo_db))
    assert "by split × action type:" in text and "tool_calling / function_call: " in text
