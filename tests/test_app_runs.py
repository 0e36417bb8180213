"""The Runs, Failures and Compare pages and the prediction panel of the decision point page, through
AppTest on a copy of the demo database holding two graded runs."""

from __future__ import annotations

import json

import pytest

from nemo_core.runs.grade_file import grade_file
from nemo_core.data.store import Store

RUNS, FAILURES, COMPARE, DECISION = "app_pages/runs.py", "app_pages/failures.py", "app_pages/compare.py", "app_pages/decision_point.py"


@pytest.fixture
def two_runs(demo_db, tmp_path):
    """Run `alpha`: exact calls on two decision points, a hallucinated call, a wrong action type.
    Run `beta`: the same decision points, each answered with the wrong action type (all 0)."""
    store = Store.open(demo_db)
    try:
        calls = store.query(
            "SELECT id FROM decision_points WHERE action_type = 'function_call' AND n_expected_calls = 1 "
            "AND ungradeable_reason IS NULL ORDER BY id LIMIT 3")
        msg = store.query("SELECT id FROM decision_points WHERE action_type = 'message' ORDER BY id LIMIT 1")[0]["id"]
        ids = [c["id"] for c in calls]
        exact = []
        for dp_id in ids[:2]:
            dp = store.get(dp_id)
            call = dp.expected_calls[0]
            exact.append({"id": dp_id, "action": {"type": "function_call", "name": call.name, "arguments": call.arguments}})
        alpha = [*exact,
                 {"id": ids[2], "action": {"type": "function_call", "name": "imaginary_tool", "arguments": {}}},
                 {"id": msg, "action": {"type": "function_call", "name": "imaginary_tool", "arguments": {}}}]
        beta = [*({"id": i, "action": {"type": "message", "content": "I cannot help"}} for i in ids),
                {"id": msg, "action": {"type": "function_call", "name": "other", "arguments": {}}}]
        for name, lines in (("alpha", alpha), ("beta", beta)):
            path = tmp_path / f"{name}.jsonl"
            path.write_text("".join(json.dumps(x) + "\n" for x in lines))
            grade_file(store, path, run_name=name, grader="keyword")
    finally:
        store.close()
    return {"calls": ids, "message": msg, "db": demo_db}


def run_names(db) -> list[str]:
    store = Store.open(db)
    try:
        return [r["name"] for r in store.query("SELECT name FROM runs ORDER BY id")]
    finally:
        store.close()


def by_label(widgets, label: str):
    found = [w for w in widgets if w.label.startswith(label)]
    assert found, f"no widget labelled {label!r} in {[w.label for w in widgets]}"
    return found[0]


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def categories(at) -> list[str]:
    """The categories the prediction panel shows (`**Category:** `name``)."""
    return [md.value.split("`")[1].strip() for md in at.markdown if md.value.startswith("**Category:**")]


@pytest.mark.parametrize("page", [RUNS, FAILURES, COMPARE])
def test_pages_without_runs_say_what_to_do(open_page, page):
    at = open_page(page)
    assert at.info and "run" in at.info[0].value.lower()


def test_runs_page_table_taxonomy_and_histogram(open_page, two_runs):
    at = open_page(RUNS, run="alpha")
    table = at.dataframe[0].value
    assert list(table["run"]) == ["beta", "alpha"]
    alpha = table[table["run"] == "alpha"].iloc[0]
    assert alpha["n"] == 4 and alpha["mean_reward"] == pytest.approx(0.5)  # (1 + 1 + 0 + 0) / 4
    split = two_runs["calls"][0].split("/")[0]
    assert {f"split:{split}", "type:function_call", "type:message"} <= set(table.columns)
    assert by_label(at.selectbox, "Run").value == "alpha"
    assert metrics(at)["Predictions"] == "4" and metrics(at)["Mean reward"] == "0.500"
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    bars = {}
    for trace in charts[0]["data"]:
        for x, y in zip(trace["x"], trace["y"]):
            bars[y] = x
    assert bars["correct"] == 2 and bars["wrong_action_type"] == 1
    assert bars["hallucinated_tool"] + bars["wrong_tool"] == 1
    hist = charts[1]["data"][0]
    assert sum(hist["y"]) == 4
    confusion = at.dataframe[3].value
    assert list(confusion["predicted_tool"]) == ["imaginary_tool"]


def test_runs_page_follows_the_selection(open_page, two_runs):
    at = open_page(RUNS)
    by_label(at.selectbox, "Run").set_value("beta").run()
    assert at.query_params["run"] == ["beta"] or at.query_params["run"] == "beta"
    assert metrics(at)["Mean reward"] == "0.000"


def test_delete_needs_a_confirmation(open_page, two_runs):
    at = open_page(RUNS, run="beta")
    by_label(at.button, "Delete run beta").click().run()
    assert run_names(two_runs["db"]) == ["alpha", "beta"]  # nothing deleted yet
    assert "cannot be undone" in at.warning[0].value
    by_label(at.button, "Cancel").click().run()
    assert run_names(two_runs["db"]) == ["alpha", "beta"]
    assert not at.warning
    by_label(at.button, "Delete run beta").click().run()
    by_label(at.button, "Yes, delete it").click().run()
    assert not at.exception
    assert run_names(two_runs["db"]) == ["alpha"]
    assert "Deleted run \\'beta\\'" in at.success[0].value  # the name escaped (it is Markdown)
    assert list(at.dataframe[0].value["run"]) == ["alpha"]
    assert by_label(at.selectbox, "Run").value == "alpha"


def test_failures_page_filters_and_links(open_page, two_runs):
    at = open_page(FAILURES, run="alpha")
    table = at.dataframe[0].value
    assert set(table["category"]) == {"wrong_action_type", "hallucinated_tool"}
    assert len(table) == 2
    first = table.iloc[0]
    assert first["open"].startswith("decision_point?id=") and "run=alpha" in first["open"]
    by_label(at.multiselect, "Categories").set_value(["correct"]).run()
    table = at.dataframe[0].value
    assert set(table["category"]) == {"correct"} and len(table) == 2
    assert set(table["sub-kind"]) == {"—"}  # a correct prediction has no sub-kind: one mark, not "None"
    links = [p for p in at.get("page_link")]
    assert links, "a link to the decision point page"
    by_label(at.multiselect, "Categories").set_value(["wrong_action_type"]).run()
    by_label(at.selectbox, "Split").set_value("interactive_agent" if two_runs["message"].startswith("tool") else "tool_calling").run()
    assert at.info and "No prediction matches" in at.info[0].value


def test_compare_page(open_page, two_runs):
    at = open_page(COMPARE, a="alpha", b="beta")
    m = metrics(at)
    assert m["Shared decision points"] == "4"
    assert (m["A wins"], m["B wins"], m["Ties"]) == ("2", "0", "2")
    assert m["Mean A − B"] == "+0.500"
    table = at.dataframe[0].value
    assert len(table) == 2 and set(table["A − B"]) == {1.0}
    assert all("vs=beta" in link for link in table["open"])


def test_decision_point_shows_the_prediction_beside_the_expected_action(open_page, two_runs):
    dp_id = two_runs["calls"][2]
    at = open_page(DECISION, id=dp_id, run="alpha")
    assert by_label(at.toggle, "Reveal the expected action").value is True
    m = metrics(at)
    assert categories(at) == ["hallucinated_tool"]
    assert m["Reward"] == "0.000"  # from the breakdown component (a wrong name, and no expected key given)
    assert any("imaginary_tool" in md.value for md in at.markdown)
    assert any("Expected tool" in md.value for md in at.markdown)  # the breakdown, beside the expected action
    # in that narrow column the other three numbers are a line of text, not metrics cut to a few letters
    line = [md.value for md in at.markdown if md.value.startswith("**Action type:** ✅ match")]
    assert line and "**Name match:** ❌ 0" in line[0] and "**Argument match:** 0" in line[0]
    assert not {"Action type", "Name match", "Argument match"} & set(m)
    # blind: the same link with the expected action hidden shows the prediction but not its breakdown
    by_label(at.toggle, "Reveal the expected action").set_value(False).run()
    assert metrics(at)["Reward"] == "0.000"
    assert any("Reveal the expected action to see the breakdown" in c.value for c in at.caption)


def expected_column(at) -> int:
    """The index (in at.columns) of the column that holds the revealed expected action."""
    return next(i for i, c in enumerate(at.columns) if any(m.value.startswith("**Action type:**") for m in c.markdown))


def row_beside_expected(at) -> list[tuple[float, str]]:
    """The columns of the row that starts with the expected action: (width, first Markdown line) each."""
    columns = list(at.columns)
    row = []
    for col in columns[expected_column(at):]:
        row.append((round(col.proto.weight, 2), col.markdown[0].value if len(col.markdown) else ""))
        if sum(w for w, _ in row) >= 0.98:
            return row
    raise AssertionError(f"the expected action's row does not fill the page: {row}")


def test_decision_point_side_by_side_and_missing_prediction(open_page, two_runs):
    dp_id = two_runs["calls"][0]
    at = open_page(DECISION, id=dp_id, run="alpha", vs="beta")
    assert categories(at) == ["correct", "wrong_action_type"]
    # expected, A and B in one row across the page, a third each (they stacked in the narrow right column)
    row = row_beside_expected(at)
    assert [w for w, _ in row] == [0.33, 0.33, 0.33]
    assert row[1][1].startswith("**Run A**") and "alpha" in row[1][1]
    assert row[2][1].startswith("**Run B**") and "beta" in row[2][1]
    one = open_page(DECISION, id=dp_id, run="alpha")
    row = row_beside_expected(one)
    assert [w for w, _ in row] == [0.5, 0.5] and row[1][1].startswith("**Run**")
    # without a run, the expected action keeps its place in the right-hand column beside the conversation
    plain = open_page(DECISION, id=dp_id)
    by_label(plain.toggle, "Reveal the expected action").set_value(True).run()
    column = plain.columns[expected_column(plain)]
    assert round(column.proto.weight, 2) == 0.4 and round(plain.columns[expected_column(plain) - 1].proto.weight, 2) == 0.6
    other = open_page(DECISION, id=dp_id, run="nope")
    assert other.error and "Cannot show run" in other.error[0].value


def test_decision_point_without_run_offers_the_runs(open_page, two_runs):
    at = open_page(DECISION, id=two_runs["calls"][0])
    chooser = by_label(at.selectbox, "2 run(s) hold a prediction")
    assert chooser.options == ["(none)", "beta", "alpha"]
    chooser.set_value("alpha").run()
    assert categories(at) == ["correct"]


@pytest.fixture
def running_run(two_runs):
    """A run still being written: predictions stored, `finish_run` not called yet."""
    from nemo_core.grading.grade import grade_action, load_target
    from nemo_core.runs.run import create_run, insert_predictions, prediction_row

    store = Store.open(two_runs["db"])
    try:
        run_id = create_run(store, "live", kind="run-model", grader="keyword", rule_version="t")
        dp = load_target(store, two_runs["calls"][0])
        b = grade_action(store, dp, {"type": "message", "content": "hi"}, grader="keyword")
        insert_predictions(store, [prediction_row(run_id, dp.id, b, split=dp.split, action_type=dp.action_type)])
    finally:
        store.close()
    return run_id


def test_a_running_run_is_classified_on_request(open_page, running_run):
    at = open_page(RUNS, run="live")
    row = at.dataframe[0].value.set_index("run").loc["live"]
    assert row["status"] == "running" and row["n"] == 1 and row["mean_reward"] != row["mean_reward"]  # NaN
    assert "still running" in at.info[0].value
    assert "Predictions" not in metrics(at)
    assert by_label(at.button, "Delete run live")  # a stuck run can still be deleted
    by_label(at.button, "Classify the 1 predictions").click().run()
    assert not at.exception
    assert metrics(at)["Predictions"] == "1" and metrics(at)["Mean reward"] == "0.000"
    failures_page = open_page(FAILURES, run="live")
    assert failures_page.dataframe[0].value["category"].tolist() == ["wrong_action_type"]


def test_failures_of_a_running_run_wait_for_a_request(open_page, running_run):
    at = open_page(FAILURES, run="live")
    assert "still running" in at.info[0].value and not at.dataframe


def test_failures_filters_live_in_the_url(open_page, two_runs):
    """Issue 19: a reload lost the Failures filters. They go into the URL, and the URL restores them."""
    at = open_page(FAILURES, run="alpha")
    assert {k: at.query_params[k] for k in at.query_params} in ({"run": "alpha"}, {"run": ["alpha"]})
    by_label(at.multiselect, "Categories").set_value(["correct", "wrong_action_type"]).run()
    at.radio(key="failures_sort").set_value("-reward").run()
    q = {k: at.query_params[k] for k in at.query_params}
    flat = {k: (v[0] if isinstance(v, list) else v) for k, v in q.items()}
    assert flat == {"run": "alpha", "category": "correct,wrong_action_type", "sort": "-reward"}
    # the same link in a fresh session (a reload) shows the same filters
    again = open_page(FAILURES, **flat)
    assert by_label(again.multiselect, "Categories").value == ["correct", "wrong_action_type"]
    assert again.radio(key="failures_sort").value == "-reward"
    assert set(again.dataframe[0].value["category"]) == {"correct", "wrong_action_type"}
    assert list(again.dataframe[0].value["reward"]) == sorted(again.dataframe[0].value["reward"], reverse=True)


def test_failures_bad_filter_in_the_link_is_named(open_page, two_runs):
    at = open_page(FAILURES, run="alpha", category="nope")
    assert any("category: unknown nope" in w.value.replace("\\", "").replace("\u2060", "") for w in at.warning), [w.value for w in at.warning]
    assert len(at.dataframe[0].value) == 2  # the default filter instead


@pytest.mark.parametrize("page, query, shown", [
    (RUNS, {"run": "nope"}, "beta"), (FAILURES, {"run": "nope"}, "beta"), (COMPARE, {"a": "nope", "b": "alpha"}, "beta"),
])
def test_an_unknown_run_in_the_link_is_said(open_page, two_runs, page, query, shown):
    """Issue 19: /runs?run=nope silently showed another run."""
    at = open_page(page, **query)
    warnings = [w.value.replace("\\", "").replace("\u2060", "") for w in at.warning]
    assert any("The run this link names" in w and f"showing “{shown}”" in w for w in warnings), warnings
    assert not any("nope" in w for w in warnings)  # not repeated: it could be a hidden run's name


def test_compare_plots_the_paired_differences_with_the_ci(open_page, two_runs):
    """Issue 19: Compare had no plot. One bar per difference (steps of 0.1), the mean and its CI over them."""
    import base64

    import numpy as np

    at = open_page(COMPARE, a="alpha", b="beta")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = spec["data"][0]
    ys = bars["y"]
    if isinstance(ys, dict):
        ys = np.frombuffer(base64.b64decode(ys["bdata"]), dtype=np.dtype(ys["dtype"])).tolist()
    xs = bars["x"] if isinstance(bars["x"], list) else np.frombuffer(
        base64.b64decode(bars["x"]["bdata"]), dtype=np.dtype(bars["x"]["dtype"])).tolist()
    assert dict(zip(xs, ys)) == {0.0: 2, 1.0: 2}  # 2 ties, 2 wins by a whole point
    shapes = spec["layout"]["shapes"]
    band = next(s for s in shapes if s["type"] == "rect")
    assert band["x0"] <= 0.5 <= band["x1"]  # the CI around the mean difference 0.5
    assert any("mean +0.500" in a["text"] for a in spec["layout"]["annotations"])

