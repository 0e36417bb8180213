"""Predictions uploaded on the Runs page: checked line by line, the good lines graded into a run.

The file is in the `grade` format (one `{"id", "action", ...extra}` object a line). `validate_predictions`
reads it without grading and says, with line numbers, which lines cannot be used (not JSON, no id or
action, an action in none of the accepted forms, an id not in this database, an id already seen), so
the person sees the problems before anything is stored. `grade_upload` then grades the good lines with
`grading.grade_file` (the one grading loop), as a run of kind `upload`: the bad lines are blanked in the
copy it reads, so every stored prediction keeps its line number in the uploaded file, and the bad lines
are recorded as the run's problems.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .actions import ActionError, parse_action
from .grading import FileGradeResult, grade_file
from .records import loads_json
from .runs import finish_run
from .store import Store

MAX_REPORTED = 1000


@dataclass
class UploadCheck:
    """What validation found: the usable line numbers and the bad lines (line, id, problem)."""

    n_lines: int = 0
    n_blank: int = 0
    good_lines: list[int] = field(default_factory=list)
    bad: list[dict[str, Any]] = field(default_factory=list)
    n_bad: int = 0

    @property
    def n_good(self) -> int:
        return len(self.good_lines)


def parse_line(raw: bytes) -> tuple[Any, str | None]:
    """(object, problem or None) for one line, with the problems `grade` reports for the same line."""
    try:
        obj = loads_json(raw, exact=True)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"malformed line: not JSON ({str(exc)[:120]})"
    if not isinstance(obj, dict):
        return obj, "malformed line: not a JSON object (expected {\"id\": ..., \"action\": {...}})"
    if not isinstance(obj.get("id"), str) or not obj["id"]:
        return obj, "malformed line: no \"id\" string"
    if "action" not in obj:
        return obj, "malformed line: no \"action\""
    return obj, None


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=False) if data else []


def validate_predictions(store: Store, data: bytes) -> UploadCheck:
    """Check every line of an uploaded predictions file; nothing is graded or stored."""
    check = UploadCheck()
    parsed: list[tuple[int, str]] = []

    def bad(line_no: int, dp_id: Any, problem: str) -> None:
        check.n_bad += 1
        if len(check.bad) < MAX_REPORTED:
            check.bad.append({"line": line_no, "id": dp_id if isinstance(dp_id, str) else None, "problem": problem})

    for line_no, raw in enumerate(_lines(data), start=1):
        if not raw.strip():
            check.n_blank += 1
            continue
        check.n_lines += 1
        obj, err = parse_line(raw)
        if err is not None:
            bad(line_no, obj.get("id") if isinstance(obj, dict) else None, err)
            continue
        try:
            parse_action(obj["action"])
        except ActionError as exc:
            bad(line_no, obj["id"], f"invalid action: {exc}")
            continue
        parsed.append((line_no, obj["id"]))
    ids = list(dict.fromkeys(dp_id for _, dp_id in parsed))
    known = {r[0] for r in store.fetch_in("SELECT id FROM decision_points WHERE id IN ({marks})", ids)}
    first: dict[str, int] = {}
    for line_no, dp_id in parsed:
        if dp_id not in known:
            bad(line_no, dp_id, f"unknown decision point id {dp_id[:200]!r}")
        elif dp_id in first:
            bad(line_no, dp_id, f"duplicate id (first on line {first[dp_id]})")
        else:
            first[dp_id] = line_no
            check.good_lines.append(line_no)
    check.bad.sort(key=lambda b: b["line"])
    return check


def grade_upload(store: Store, data: bytes, *, run_name: str, filename: str | None = None, grader: str = "auto",
                 llm: Any = None) -> tuple[FileGradeResult, UploadCheck]:
    """Validate, then grade the good lines into a new run of kind `upload` (see the module docstring)."""
    check = validate_predictions(store, data)
    keep = set(check.good_lines)
    lines = _lines(data)
    blanked = b"\n".join(raw if i in keep else b"" for i, raw in enumerate(lines, start=1)) + b"\n"
    with tempfile.TemporaryDirectory(prefix="nemo-upload-") as tmp:
        path = Path(tmp) / (Path(filename).name if filename else "upload.jsonl")
        path.write_bytes(blanked)
        result = grade_file(store, path, run_name=run_name, grader=grader, llm=llm, kind="upload")
    problems = sorted(check.bad + result.problems, key=lambda p: p.get("line") or 0)
    finish_run(store, result.run_id, status="completed", n_lines=check.n_lines, problems=problems,
               n_problems=check.n_bad + result.n_problems)
    if filename:
        with store.transaction() as conn:
            conn.execute("UPDATE runs SET source_file = ? WHERE id = ?", (f"upload: {Path(filename).name}", result.run_id))
    return result, check
