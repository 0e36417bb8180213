"""The keyword grader (SPEC §4) on examples worked out by hand."""

from __future__ import annotations

import pytest

from nemo_core.grading.grade import GradingTarget, grade_action
from nemo_core.grading.keyword_grader import STOPWORDS_FILE, keyword_score, keywords, stopwords
from nemo_core.data.records import normalise_tools


def test_stopword_file_is_nltk_english_list():
    lines = STOPWORDS_FILE.read_text(encoding="utf-8").split("\n")
    words = [w for w in lines if w]
    assert len(words) == 179 == len(set(words)) == len(stopwords())
    for w in ("i", "the", "don't", "mightn", "wouldn't", "ourselves", "y"):
        assert w in stopwords()
    assert "weather" not in stopwords()


@pytest.mark.parametrize(
    "text, expected",
    [
        # the, in, is are stopwords
        ("The weather in Paris is sunny today.", {"weather", "paris", "sunny", "today"}),
        # it (stop), s (one character)
        ("It's sunny in Paris!", {"sunny", "paris"}),
        # don (stop), t (one char), i (stop), ll (stop), it (stop)
        ("Don't worry, I'll book it.", {"worry", "book"}),
        # Unicode word characters, lower-cased; the single digit goes
        ("CAFÉ Zürich 5 km", {"café", "zürich", "km"}),
        # \w includes underscores and digits
        ("order_id 42, ID-7", {"order_id", "42", "id"}),
        ("", set()),
        ("I am here; it is!", set()),
    ],
)
def test_keywords(text, expected):
    assert keywords(text) == expected


@pytest.mark.parametrize(
    "reference, candidate, score",
    [
        # E = {weather, paris, sunny, today}, C = {sunny, paris}: 2*2 / (4+2)
        ("The weather in Paris is sunny today.", "It's sunny in Paris!", 4 / 6),
        # E = {café, zürich, km}, C = {café, zürich}: 2*2 / (3+2)
        ("Café Zürich 5 km", "CAFÉ in ZÜRICH", 0.8),
        # E = {order_id, 42}, C = {order, 42}: 2*1 / (2+2)
        ("order_id 42", "order 42", 0.5),
        # sets, not counts
        ("paris paris paris", "Paris", 1.0),
        ("Your refund was issued.", "Your refund was issued.", 1.0),
        # no shared keyword
        ("Refund issued.", "Booking confirmed.", 0.0),
        # both empty after stopwords: 1.0; one empty: 0.0
        ("I am here", "it is", 1.0),
        ("", "Paris", 0.0),
        ("Paris", "   ", 0.0),
    ],
)
def test_keyword_f1(reference, candidate, score):
    assert keyword_score(reference, candidate).score == pytest.approx(score)


def test_breakdown_shows_both_sets_and_overlap():
    target = GradingTarget(id="tool_calling/u/3", split="tool_calling", action_type="message", flags=[],
                           expected_calls=[], expected_content="The weather in Paris is sunny today.",
                           toolset=normalise_tools([]), context=[])
    b = grade_action(None, target, {"type": "message", "content": "It's sunny in Paris!"}, grader="keyword")
    assert b.reward == pytest.approx(4 / 6) and b.grader == "keyword" and b.grader_model is None
    assert (b.name_match, b.arg_match, b.keys) == (None, None, [])
    assert b.keyword["expected_keywords"] == ["paris", "sunny", "today", "weather"]
    assert b.keyword["candidate_keywords"] == ["paris", "sunny"]
    assert b.keyword["shared"] == ["paris", "sunny"]
    assert b.reason == "keyword_f1: 2 shared of 4 expected and 2 submitted keywords"


def test_auto_without_key_is_keyword(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    from nemo_core.grading.endpoint import EndpointConfig

    target = GradingTarget(id="tool_calling/u/3", split="tool_calling", action_type="message", flags=[],
                           expected_calls=[], expected_content="Paris", toolset=normalise_tools([]), context=[])
    b = grade_action(None, target, {"type": "message", "content": "Paris"}, grader="auto",
                     llm=EndpointConfig.for_grader())
    assert b.grader == "keyword" and b.reward == 1.0
