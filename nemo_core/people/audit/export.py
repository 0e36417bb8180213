"""An audit set's scored table as CSV, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from .scores import AuditRow

CSV_COLUMNS = ("item_id", "dp_id", "split", "kind", "candidate_chars", "length_bucket", "keyword_score",
               "llm_score", "abs_difference", "llm_reason", "llm_error", "llm_model", "human_score", "n_human",
               "candidate")


def _cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (=, +, -, @ first) gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: Sequence[AuditRow]) -> str:
    """The audit table as CSV: scores on a 0-1 scale (LLM = integer / 10, human = mean of raters / 10)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([
            r.item_id, r.dp_id, r.split, r.kind, r.candidate_chars, r.length_bucket, round(r.keyword, 6),
            r.llm, None if r.llm is None else round(abs(r.llm - r.keyword), 6), _cell(r.llm_reason or ""),
            _cell(r.llm_error or ""), r.llm_model or "", None if r.human is None else round(r.human, 6), r.n_human,
            _cell(r.candidate),
        ])
    return out.getvalue()
