"""Predictions uploaded on the Runs page: checked line by line, the good lines graded into a run.

The file is in the `grade` format (one `{"id", "action", ...extra}` object a line). `validate_predictions`
reads it without grading and says, with line numbers, which lines cannot be used (not JSON, no id or
action, an action in none of the accepted forms, an id not in this database, an id already seen), so
the person sees the problems before anything is stored. `grade_upload` then grades the file with
`grade_file.grade_file` (the one grading loop, and the one line reader, `read_prediction_line`), as a run of
kind `upload`: every stored prediction keeps its line number in the uploaded file, and the lines that cannot
be graded are the run's problems, exactly as `grade` would record them for the same file.

Both read the upload as a stream of lines (a binary file object, rewound before each pass): an upload of
100 MB is never copied, split into a list or written out again, so memory stays near the size of the upload
itself (which the web framework already holds) plus one id per distinct decision point.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..grading.actions import ActionError
from ..grading.answer_formats import parse_answer, problem_text
from .grade_file import UTF8_BOM, FileGradeResult, grade_file, read_prediction_line, unexpected_problem
from ..data.store import Store

MAX_REPORTED = 1000
ID_BATCH = 2000  # ids looked up in the store at a time


@dataclass
class UploadCheck:
    """What validation found: counts, and the bad lines (line, id, problem; the first `MAX_REPORTED`)."""

    n_lines: int = 0
    n_blank: int = 0
    n_good: int = 0
    bad: list[dict[str, Any]] = field(default_factory=list)
    n_bad: int = 0


def _stream(source: BinaryIO | bytes) -> BinaryIO:
    """A binary file object at its start (bytes are wrapped, not copied twice)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    source.seek(0)
    return source


def iter_lines(source: BinaryIO | bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of every line, the way `grade` reads a file: a byte-order mark opening it is
    dropped (as ingest drops one)."""
    for line_no, raw in enumerate(_stream(source), start=1):
        if line_no == 1 and raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM):]
        yield line_no, raw


def validate_predictions(store: Store, source: BinaryIO | bytes) -> UploadCheck:
    """Check every line of an uploaded predictions file; nothing is graded or stored. The checks and their
    order are `grade`'s (unreadable line, unknown id, repeated id, invalid action), so the lines found bad
    here are the lines the grading of the same file reports."""
    check = UploadCheck()
    first: dict[str, int] = {}  # id -> the first line naming it (that line is graded, or is the id's error)
    pending: list[tuple[int, str, str | None]] = []  # (line, id, action problem)

    def bad(line_no: int, dp_id: Any, problem: str) -> None:
        check.n_bad += 1
        if len(check.bad) < MAX_REPORTED:
            check.bad.append({"line": line_no, "id": dp_id if isinstance(dp_id, str) else None, "problem": problem})

    def resolve() -> None:
        """Look up the pending ids in the store, then judge their lines in order."""
        ids = list(dict.fromkeys(dp_id for _, dp_id, _ in pending))
        known = {r[0] for r in store.fetch_in("SELECT id FROM decision_points WHERE id IN ({marks})", ids)}
        for line_no, dp_id, problem in pending:
            if dp_id not in known:
                bad(line_no, dp_id, f"unknown decision point id {dp_id[:200]!r}")
            elif dp_id in first:
                bad(line_no, dp_id, f"duplicate id (first on line {first[dp_id]}); not graded again")
            else:
                first[dp_id] = line_no
                if problem is None:
                    check.n_good += 1
                else:
                    bad(line_no, dp_id, problem)
        pending.clear()

    for line_no, raw in iter_lines(source):
        if not raw.strip():
            check.n_blank += 1
            continue
        check.n_lines += 1
        pred = read_prediction_line(raw)
        if pred.error is not None:
            bad(line_no, pred.dp_id, pred.error)
            continue
        problem = None
        try:
            parse_answer(pred.obj["action"])
        except ActionError as exc:
            problem = problem_text(exc)
        except Exception as exc:  # noqa: BLE001 - one line's problem, whatever it is
            problem = unexpected_problem(exc)
        pending.append((line_no, pred.obj["id"], problem))
        if len(pending) >= ID_BATCH:
            resolve()
    resolve()
    check.bad.sort(key=lambda b: b["line"])
    return check


def release_memory() -> None:
    """Hand the memory freed after grading back to the operating system. The app's server lives on after an
    upload, and glibc keeps freed heap pages mapped (RSS stayed near its peak); `malloc_trim` returns them.
    Elsewhere (not glibc) it does nothing."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    gc.collect()
    trim(0)


def grade_upload(store: Store, source: BinaryIO | bytes, *, run_name: str, filename: str | None = None,
                 grader: str = "auto", llm: Any = None) -> tuple[FileGradeResult, UploadCheck]:
    """Grade an upload into a new run of kind `upload` (see the module docstring); the check returned is
    what grading found (the same lines `validate_predictions` reports)."""
    try:
        result = grade_file(store, _stream(source), run_name=run_name, grader=grader, llm=llm, kind="upload",
                            low_memory=True)
    finally:
        release_memory()
    if filename:
        with store.transaction() as conn:
            conn.execute("UPDATE runs SET source_file = ? WHERE id = ?", (f"upload: {Path(filename).name}", result.run_id))
    check = UploadCheck(n_lines=result.n_lines, n_blank=result.n_blank, n_good=result.n_lines - result.n_problems,
                        bad=list(result.problems), n_bad=result.n_problems)
    return result, check
