"""The keyword grader for message tasks (SPEC §4): F1 of keyword sets.

keywords(text) = the set of lower-cased Unicode `\\w+` tokens, minus English stopwords and one-character
tokens. score = 2|E∩C| / (|E| + |C|); both sets empty: 1.0; one empty: 0.0.

The stopword list is `stopwords_en.txt` (beside this module), NLTK's 179-word English list written out once, so a score
never depends on what happens to be installed (NLTK itself is not used).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

STOPWORDS_FILE = Path(__file__).resolve().parent / "stopwords_en.txt"
_WORD = re.compile(r"\w+")
# How many keywords of each set the stored breakdown lists (the counts are always complete).
MAX_LISTED = 60


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    words = STOPWORDS_FILE.read_text(encoding="utf-8").split()
    return frozenset(w.strip().lower() for w in words if w.strip())


def keywords(text: str) -> set[str]:
    stop = stopwords()
    return {t for t in _WORD.findall(text.lower()) if len(t) > 1 and t not in stop}


def keywords_in_order(text: str) -> list[str]:
    """The same keywords as `keywords`, each once, in the order they first appear (for a reply built from
    them: the baseline policies reuse a user's keywords)."""
    stop = stopwords()
    return list(dict.fromkeys(t for t in _WORD.findall(text.lower()) if len(t) > 1 and t not in stop))


def f1(expected: set[str], candidate: set[str]) -> float:
    if not expected and not candidate:
        return 1.0
    if not expected or not candidate:
        return 0.0
    return 2 * len(expected & candidate) / (len(expected) + len(candidate))


@dataclass(slots=True)
class KeywordScore:
    """The score and the sets it came from, so a user can see why."""

    score: float
    expected_keywords: list[str] = field(default_factory=list)
    candidate_keywords: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    n_expected: int = 0
    n_candidate: int = 0
    n_shared: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "expected_keywords": self.expected_keywords,
            "candidate_keywords": self.candidate_keywords,
            "shared": self.shared,
            "n_expected": self.n_expected,
            "n_candidate": self.n_candidate,
            "n_shared": self.n_shared,
        }

    @property
    def reason(self) -> str:
        if not self.n_expected and not self.n_candidate:
            return "keyword_f1: neither reply has keywords"
        if not self.n_expected or not self.n_candidate:
            return f"keyword_f1: {'the reference' if not self.n_expected else 'the submitted reply'} has no keywords"
        return (f"keyword_f1: {self.n_shared} shared of {self.n_expected} expected and "
                f"{self.n_candidate} submitted keywords")


def keyword_score(expected_text: str, candidate_text: str) -> KeywordScore:
    expected = keywords(expected_text or "")
    candidate = keywords(candidate_text or "")
    shared = expected & candidate
    return KeywordScore(
        score=f1(expected, candidate),
        expected_keywords=sorted(expected)[:MAX_LISTED],
        candidate_keywords=sorted(candidate)[:MAX_LISTED],
        shared=sorted(shared)[:MAX_LISTED],
        n_expected=len(expected),
        n_candidate=len(candidate),
        n_shared=len(shared),
    )
