"""The Grader audit page through AppTest, on a copy of the demo database: without a key (the message, the
keyword side, human judgements) and with a key pointing at the local fake server (estimate, confirmation,
grading, the agreement figures)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from app_runner import run_app_page
from fake_openai import fake_openai  # noqa: F401  (fixture)
from nemo_core.people.audit.scores import audit_rows
from nemo_core.people.audit.build import build_audit_set
from nemo_core.people.audit.sets import get_audit_set
from nemo_core.data.store import Store
from test_audit_flow import judge

PAGE = "app_pages/audit.py"


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NEMO_GRADER_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def open_page(demo_db, monkeypatch):
    monkeypatch.setenv("NEMO_DB", str(demo_db))

    def run(**query: str) -> AppTest:
        return run_app_page(PAGE, query, timeout=60)

    return run


def texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.warning, *at.success, *at.error)]
    # Markdown escapes and the invisible word joiners that break autolinks removed: the text as a person reads it
    return "\n".join(str(p) for p in parts).replace("\\", "").replace("\u2060", "")


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_no_key_says_how_to_add_one_and_builds_a_keyword_only_set(open_page, demo_db):
    at = open_page()
    body = texts(at)
    assert "No OpenAI key is configured" in body
    assert "OPENAI_API_KEY" in body and "openai_api_key" in body and "secrets.toml" in body
    assert "No audit set yet" in body
    at.number_input[0].set_value(4)
    at.button(key="FormSubmitter:audit_build-Build the audit set").click().run()
    assert not at.exception
    assert "Audit set 'calibration': 12 items (12 new)" in texts(at)
    assert at.query_params["set"] == ["calibration"] or at.query_params["set"] == "calibration"
    assert metric(at, "Items") == "12" and metric(at, "LLM-scored") == "0"
    body = texts(at)
    assert "Grading needs a key" in body
    assert "No item has an LLM score yet" in body  # the keyword side instead
    assert metric(at, "Mean keyword score") != "—"
    assert "items listed by keyword score" in body
    assert at.get("download_button")  # the CSV export works without a key


def test_blind_judgement_reveals_scores_only_after_submitting(open_page, demo_db):
    store = Store.open(demo_db)
    try:
        set_id = build_audit_set(store, "calibration", limit=2).audit_set.id
    finally:
        store.close()
    at = open_page(set="calibration")
    at.radio(key="audit_view").set_value("Judge blind").run()
    assert not at.get("plotly_chart") and not at.dataframe  # no score anywhere while judging
    assert "Mean keyword score" not in [m.label for m in at.metric]
    at.text_input(key="audit_rater").input("ann").run()
    assert not at.exception
    assert "You said" not in texts(at)
    blind = at.get("slider")
    assert any(s.label == "Your score" for s in blind)
    score = next(s for s in blind if s.label == "Your score")
    score.set_value(8)
    at.button(key=next(b.key for b in at.button if b.key and b.key.startswith("FormSubmitter:audit_judge_"))).click().run()
    assert not at.exception
    body = texts(at)
    assert "You said 8/10. Keyword grader:" in body and "LLM grader: not scored" in body
    store = Store.open(demo_db)
    try:
        judged = [r for r in audit_rows(store, set_id) if r.human is not None]
    finally:
        store.close()
    assert len(judged) == 1 and judged[0].human == pytest.approx(0.8)
    assert "Your score" in [s.label for s in at.get("slider")]  # the next item, still blind
    at.radio(key="audit_view").set_value("Agreement and disagreements").run()
    assert any("human vs keyword" in str(df.value.to_dict()) for df in at.dataframe)
    assert "1 item judged" in texts(at)


def test_with_a_key_estimate_confirm_grade_and_agreement(open_page, demo_db, fake_openai, monkeypatch):  # noqa: F811
    fake_openai.responder = judge
    monkeypatch.setenv("OPENAI_API_KEY", "sk-app-audit")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    store = Store.open(demo_db)
    try:
        build_audit_set(store, "calibration", limit=5)
    finally:
        store.close()
    at = open_page(set="calibration")
    body = texts(at)
    assert "No OpenAI key is configured" not in body
    assert "about 15 API calls" in body
    grade = at.button(key="audit_grade")
    assert grade.disabled  # nothing is spent before the confirmation
    at.checkbox[0].check().run()
    at.button(key="audit_grade").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(fake_openai.completion_requests) == 15
    body = texts(at)
    assert "Graded 15 items" in body
    assert metric(at, "Scored by both") == "15"
    assert metric(at, "LLM-scored") == "15"
    assert float(metric(at, "Pearson")) > 0.5
    charts = at.get("plotly_chart")
    scatter = json.loads(charts[0].proto.spec)
    assert {t["name"] for t in scatter["data"]} >= {"reference", "half_reference", "other_conversation"}
    sweep = json.loads(charts[1].proto.spec)
    assert [t["name"] for t in sweep["data"]] == ["Cohen's kappa", "F1"]
    assert metric(at, "Kappa at 0.50") != "—"

    def llm_passes() -> int:
        confusion = next(t.value for t in at.table if "keyword passes" in t.value.columns)
        assert list(confusion.index) == ["LLM passes", "LLM fails"]
        first = confusion.loc["LLM passes"]
        return int(first["keyword passes"] + first["keyword fails"])

    store = Store.open(demo_db)
    try:
        llm_scores = [r.llm for r in audit_rows(store, get_audit_set(store, "calibration").id)]
    finally:
        store.close()
    assert llm_passes() == sum(1 for v in llm_scores if v >= 0.5)  # 10/10 and 5/10 pass
    at.slider(key="audit_threshold").set_value(0.8).run()
    assert not at.exception
    assert metric(at, "Kappa at 0.80") != "—"
    assert llm_passes() == 5  # only the references (10/10) at 0.8
    assert "sk-app-audit" not in body
    # nothing more to grade; a rerun makes no call
    at.run()
    assert len(fake_openai.completion_requests) == 15
    assert "Every item has an LLM score" in texts(at)


def llm_graded_calibration_set(demo_db, fake_openai, *, limit: int) -> int:  # noqa: F811
    """A calibration audit set of `limit` items per kind, graded by the fake server's judge; its id."""
    from nemo_core.people.audit.grading import grade_audit_set
    from nemo_core.grading.endpoint import EndpointConfig
    from nemo_core.grading.llm_grader import LLMGrader

    fake_openai.responder = judge
    with Store.open(demo_db) as store:
        set_id = build_audit_set(store, "calibration", limit=limit).audit_set.id
        grade_audit_set(store, set_id, LLMGrader(EndpointConfig(api_key="k", base_url=fake_openai.base_url), store))
    return set_id


def test_disagreement_opens_both_graders_reasons(open_page, demo_db, fake_openai, monkeypatch):  # noqa: F811
    set_id = llm_graded_calibration_set(demo_db, fake_openai, limit=3)
    with Store.open(demo_db) as store:
        assert get_audit_set(store, set_id).llm_model == "gpt-5-mini"
    at = open_page(set="calibration")  # no key now: the stored LLM scores are still shown
    body = texts(at)
    assert "No OpenAI key is configured" in body
    assert metric(at, "Scored by both") == "9"
    assert "largest |LLM − keyword| first" in body
    assert "Keyword overlap:" in body and "LLM grader" in body  # both breakdowns of the first disagreement
    assert "Open the decision point" in str([p.proto for p in at.get("page_link")])


def test_a_hostile_set_name_stays_text(open_page):
    at = open_page()
    at.number_input[0].set_value(1)
    next(t for t in at.text_input if t.label.startswith("Set name")).input("![x](http://127.0.0.2/pixel.png) <b>bold</b>")
    at.button(key="FormSubmitter:audit_build-Build the audit set").click().run()
    assert not at.exception
    flash = at.success[0].value
    assert "\\!\\[x\\]\\(http\u2060\\:" in flash and "\\<b\\>" in flash  # escaped: no image, link or HTML
    assert flash.endswith("\\': 3 items (3 new). Left out: 1 empty reference.")
    options = at.selectbox(key=next(s.key for s in at.selectbox if s.label == "Audit set")).options
    assert any("![x](http://127.0.0.2/pixel.png)" in o for o in options)  # option labels are plain text


def test_a_set_graded_with_another_model_is_not_mixed(open_page, demo_db, fake_openai, monkeypatch):  # noqa: F811
    llm_graded_calibration_set(demo_db, fake_openai, limit=1)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-app-audit")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("NEMO_GRADER_MODEL", "another-model")
    at = open_page(set="calibration")
    assert "was graded with" in texts(at) and "build a new set" in texts(at)
    assert not [b for b in at.button if b.key == "audit_grade"]


def test_build_from_a_run_lists_only_runs_with_message_replies(open_page, demo_db, tmp_path):
    from nemo_core.runs.grade_file import grade_file

    store = Store.open(demo_db)
    try:
        ids = [r["id"] for r in store.query("SELECT id FROM decision_points WHERE action_type = 'message' "
                                            "AND flag_empty_expected = 0 ORDER BY id LIMIT 3")]
        call = store.query("SELECT id FROM decision_points WHERE action_type = 'function_call' LIMIT 1")[0]["id"]
        for name, lines in (("talker", [{"id": i, "action": {"type": "message", "content": "Sure, done."}} for i in ids]),
                            ("caller", [{"id": call, "action": {"type": "function_call", "name": "f", "arguments": {}}}])):
            path = tmp_path / f"{name}.jsonl"
            path.write_text("".join(json.dumps(x) + "\n" for x in lines))
            grade_file(store, path, run_name=name, grader="keyword")
    finally:
        store.close()
    at = open_page()
    at.radio(key="audit_source").set_value("run").run()
    runs = at.selectbox(key="audit_build_run")
    assert runs.options == ["talker"]  # "caller" has no message reply
    at.button(key="FormSubmitter:audit_build-Build the audit set").click().run()
    assert not at.exception
    assert "Audit set 'run:talker': 3 items (3 new)" in texts(at)
    assert metric(at, "Items") == "3"
