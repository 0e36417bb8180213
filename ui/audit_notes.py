"""What the Grader audit page says when its figures cannot mean anything (issue 19)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def no_variance_note(rows_: Sequence[Any]) -> str | None:
    """Why Pearson / Spearman show "—", kappa 0 and the best threshold 0.00 when one grader gave every item
    the same score (every LLM score 7, say): a correlation needs both sides to vary, and kappa is 0 when one
    side always says the same, so those figures say nothing about the graders here."""
    both = [r for r in rows_ if r.llm is not None]
    if len(both) < 2:
        return None
    same = [(name, values.pop()) for name, values in (("keyword", {round(r.keyword, 9) for r in both}),
                                                      ("LLM", {round(r.llm, 9) for r in both})) if len(values) == 1]
    if not same:
        return None
    which = " and ".join(f"every {name} score is {value:.2f}" for name, value in same)
    return (f"In this set {which}. With no spread, Pearson and Spearman are undefined (—), kappa is 0 (one side "
            "always gives the same verdict, so agreement is no better than chance) and the best threshold is "
            "arbitrary: these figures say nothing about the graders until the set holds replies they score "
            "differently.")
