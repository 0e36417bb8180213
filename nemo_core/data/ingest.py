"""Streaming ingest of raw Nemotron-Agentic-v1 JSONL into the store.

Why it is shaped this way:
- Lines are read one at a time with a size cap, so memory stays flat whatever the file size (and a
  pathological line cannot blow it up).
- Files are cut into byte ranges that end at line ends. Worker processes (both cores) read their own
  range and parse, normalise, extract and compress it; the main process only writes SQLite, in file
  order, one batch of whole conversations per transaction, and turns chunk-local line numbers into file
  line numbers. An interrupted ingest loses at most the batch in flight, never half a conversation.
- Every line that is not stored is accounted for: rejected with file, line and reason (a uuid repeated
  in the input is one: its first copy is kept), or skipped as stored by an earlier ingest (same split +
  uuid), or a blank line.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from ..base.config import ACTION_TYPES, SPLITS
from ..base.errors import BadRow, InputFileError, NemoError
from .extract import extract_conversation
from .grading_view import build_view
from .jsontext import scan_line
from .records import JSONLimitError, check_depth, loads_json_counted, validate_row
from .compression import compress
from .store import InsertedConversations, PreparedConversation, Store, is_row_error
from .tuning import tuned

MAX_LINE_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 4 * 1024 * 1024  # ~250 real rows: big enough to amortise a transaction, small for memory
MAX_REPORTED_REJECTS = 1000
MAX_REASON_CHARS = 300
# counted in the report's notes: such a row is stored and read with each lone surrogate as U+FFFD (`jsontext`)
REPAIRED_NOTE = "rows with lone UTF-16 surrogates (\\ud800-\\udfff escapes), read as U+FFFD"
BULK_BYTES = 256 * 1024 * 1024  # inputs above this (and above the database's size) are bulk loads
INGEST_CACHE_KIB = 128 * 1024  # SQLite page cache while ingesting: the unique indexes (~100 MB at full scale) stay in memory


def split_for_file(path: str | Path, override: str | None = None) -> str:
    """The split of an input file: `--split` when given, else from its name."""
    if override:
        if override not in SPLITS:
            raise InputFileError(f"unknown split {override!r}", f"use --split {' or --split '.join(SPLITS)}")
        return override
    name = Path(path).name
    for split in SPLITS:
        if name.startswith(split) and name.endswith(".jsonl"):
            return split
    raise InputFileError(
        f"{path}: cannot tell the split from the file name",
        "name it tool_calling*.jsonl or interactive_agent*.jsonl, or pass --split tool_calling|interactive_agent",
    )


def read_lines(path: Path, max_line_bytes: int = MAX_LINE_BYTES, start: int = 0,
               end: int | None = None) -> Iterator[tuple[int, bytes | None, str | None]]:
    """(line number, bytes, None) for each line starting in [start, end), or (line number, None, reason)
    for one over the cap. Numbers count from 1 at `start`.

    Reading is binary: invalid UTF-8 is the parser's to report, with its line number.
    """
    with open(path, "rb") as fh:
        fh.seek(start)
        pos = start
        line_no = 0
        while end is None or pos < end:
            line = fh.readline(max_line_bytes + 1)
            if not line:
                return
            line_no += 1
            pos += len(line)
            if pos == len(line) and line.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark opens the file
                line = line[3:]
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                size = len(line)
                while True:  # skip the rest of the oversized line without holding it
                    rest = fh.readline(1024 * 1024)
                    size += len(rest)
                    pos += len(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
                yield line_no, None, f"line is {size:,} bytes, over the {max_line_bytes:,}-byte limit"
                continue
            yield line_no, line, None


def plan_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, int]]:
    """Byte ranges of about `chunk_bytes` that each end just after a newline (or at the end of file)."""
    size = path.stat().st_size
    start = 0
    with open(path, "rb") as fh:
        while start < size:
            target = start + chunk_bytes
            if target >= size:
                yield start, size
                return
            fh.seek(target - 1)
            end = size
            while True:  # find the end of the line that straddles `target`, in small reads
                buf = fh.read(1 << 16)
                if not buf:
                    break
                i = buf.find(b"\n")
                if i >= 0:
                    end = fh.tell() - len(buf) + i + 1
                    break
            yield start, end
            start = end


def parse_line(line: bytes, brackets: int | None = None) -> tuple[Any, int]:
    """JSON of one line and the number of lone surrogates repaired in it (`jsontext`); invalid UTF-8, bad
    JSON and JSON beyond the limits (nesting, integer length) raise `BadRow` with the position or limit.
    `brackets`: the line's opening brackets when already counted (`scan_line`)."""
    try:
        obj, repaired = loads_json_counted(line)
        check_depth(obj, line, brackets=brackets)
    except UnicodeDecodeError as exc:
        raise BadRow(f"invalid UTF-8 at byte {exc.start}") from None
    except JSONLimitError as exc:
        raise BadRow(str(exc)) from None
    except ValueError as exc:
        raise BadRow(f"malformed JSON: {exc}") from None
    return obj, repaired


def prepare_row(line: bytes, split: str, source_file: str, line_no: int, with_fts: bool) -> PreparedConversation:
    """Parse, validate and extract one line; the line itself is what gets stored (compressed)."""
    long_digits, brackets = scan_line(line)
    obj, repaired = parse_line(line, brackets)
    validate_row(obj)
    extracted = extract_conversation(obj, split, with_fts=with_fts)
    if repaired:
        extracted.notes[REPAIRED_NOTE] += 1
    return PreparedConversation(
        split=split,
        uuid=obj["uuid"],
        source_file=source_file,
        source_line=line_no,
        n_messages=extracted.n_messages,
        body=compress(line.rstrip(b"\r\n")),
        rows=extracted.rows,
        fts_text=extracted.fts_text,
        notes=extracted.notes,
        grading_view=build_view(obj, line, long_digits=long_digits),
    )


@dataclass
class ChunkResult:
    """What a worker made of one byte range; line numbers are local to the range (from 1)."""

    prepared: list[PreparedConversation]
    prepared_rows: list[int]  # each prepared item's row ordinal in the range (for --limit)
    rejected: list[tuple[int, int, str]]  # (local line, row ordinal, reason)
    rows_read: int
    blank_lines: int
    n_lines: int
    nbytes: int
    file_error: str | None = None  # why reading stopped before the end of the range (the file vanished, ...)


def prepare_range(split: str, source_file: str, start: int, end: int, with_fts: bool,
                  max_line_bytes: int = MAX_LINE_BYTES) -> ChunkResult:
    """Worker side: read, parse, validate, extract and compress the lines in [start, end)."""
    result = ChunkResult([], [], [], 0, 0, 0, end - start)
    try:
        _prepare_lines(result, split, source_file, start, end, with_fts, max_line_bytes)
    except OSError as exc:  # the file went away or became unreadable: keep what was read, say why it stopped
        result.file_error = exc.strerror or str(exc)
    return result


def _prepare_lines(result: ChunkResult, split: str, source_file: str, start: int, end: int, with_fts: bool,
                   max_line_bytes: int) -> None:
    for line_no, line, reason in read_lines(Path(source_file), max_line_bytes, start, end):
        result.n_lines = line_no
        if line is not None and not line.strip():
            result.blank_lines += 1
            continue
        row = result.rows_read
        result.rows_read += 1
        if line is None:
            result.rejected.append((line_no, row, reason or "unreadable line"))
            continue
        try:
            item = prepare_row(line, split, source_file, line_no, with_fts)
        except BadRow as exc:
            result.rejected.append((line_no, row, str(exc)))
            continue
        except RecursionError:
            result.rejected.append((line_no, row, "JSON nested too deeply"))
            continue
        except Exception as exc:  # noqa: BLE001 - whatever one row raises is that row's error, never the ingest's
            result.rejected.append((line_no, row, unexpected_reason(exc)))
            continue
        result.prepared.append(item)
        result.prepared_rows.append(row)


def unexpected_reason(exc: BaseException, what: str = "the row could not be read") -> str:
    """A rejection reason for an error no check foresaw: one line, bounded, safe to store as UTF-8."""
    text = " ".join(f"{what}: {type(exc).__name__}: {exc}".split())
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


def reason_kind(reason: str) -> str:
    """A rejection reason without its specifics, for grouping counts (`messages[3]` -> `messages[i]`)."""
    kind = re.sub(r"\[\d+\]", "[i]", reason)
    kind = re.sub(r"'[^']*'|\"[^\"]*\"", "…", kind)
    kind = re.sub(r"\d[\d,]*", "N", kind)
    return kind.split(":")[0] if kind.startswith("malformed JSON") else kind


@dataclass
class IngestReport:
    files: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    blank_lines: int = 0
    conversations_stored: int = 0
    conversations_skipped_existing: int = 0
    decision_points_stored: dict[str, dict[str, int]] = field(default_factory=dict)
    rows_rejected: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_by_reason: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    status: str = "running"
    error: str | None = None
    seconds: float = 0.0
    bytes_read: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error,
            "files": self.files,
            "rows_read": self.rows_read,
            "blank_lines": self.blank_lines,
            "conversations_stored": self.conversations_stored,
            "conversations_skipped_existing": self.conversations_skipped_existing,
            "decision_points_stored": self.decision_points_stored,
            "rows_rejected": self.rows_rejected,
            "rejected_by_reason": dict(self.rejected_by_reason.most_common()),
            "rejected": self.rejected,
            "notes": dict(sorted(self.notes.items())),
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
            "bytes_read": self.bytes_read,
        }

    def to_text(self) -> str:
        lines = [
            f"status: {self.status}" + (f" ({self.error})" if self.error else ""),
            f"rows read: {self.rows_read:,}" + (f" (and {self.blank_lines:,} blank lines)" if self.blank_lines else ""),
            f"conversations stored: {self.conversations_stored:,}",
            f"conversations stored by an earlier ingest, skipped: {self.conversations_skipped_existing:,}",
            "decision points stored:",
        ]
        for split, by_type in self.decision_points_stored.items():
            parts = ", ".join(f"{t} {n:,}" for t, n in by_type.items())
            lines.append(f"  {split}: {sum(by_type.values()):,} ({parts})")
        lines.append(f"rows rejected: {self.rows_rejected:,}")
        for kind, n in self.rejected_by_reason.most_common():
            lines.append(f"  {n:,} × {kind}")
        for item in self.rejected[:20]:
            lines.append(f"  {item['file']}:{item['line']}: {item['reason']}")
        if self.rows_rejected > 20:
            lines.append(f"  … {self.rows_rejected - 20:,} more (see --report FILE or the overview page)")
        if self.notes:
            lines.append("normalised on the way (not errors):")
            lines.extend(f"  {n:,} × {k}" for k, n in sorted(self.notes.items()))
        lines.extend(f"warning: {w}" for w in self.warnings)
        mb = self.bytes_read / 1e6
        if self.seconds > 0:
            lines.append(f"time: {self.seconds:.1f} s ({mb / self.seconds:.1f} MB/s)")
        return "\n".join(lines)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def ingest(
    store: Store,
    paths: list[str | Path],
    *,
    split: str | None = None,
    limit: int | None = None,
    workers: int | None = None,
    with_fts: bool = True,
    progress: bool = False,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> IngestReport:
    """Ingest raw JSONL files; returns the report (also stored in `ingests`).

    Input problems that concern a whole file (missing, unreadable, unknown split) are raised before
    anything is written. `limit` caps the rows read over all files.
    """
    files = _input_files(paths, split)
    store.writable_or_raise()
    report = IngestReport(decision_points_stored={s: dict.fromkeys(ACTION_TYPES, 0) for s in SPLITS})
    started = time.perf_counter()
    total_bytes = sum(p.stat().st_size for p, _ in files)
    # A load that is large next to what is stored builds its indexes once at the end instead of row by row.
    bulk = total_bytes > BULK_BYTES and total_bytes > store.path.stat().st_size
    with tuned(store, cache_kib=INGEST_CACHE_KIB):
        ingest_id = store.start_ingest([str(p) for p, _ in files], _now())
        if bulk:
            store.drop_decision_point_indexes()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="ingest", dynamic_ncols=True)
        n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        pool = multiprocessing.get_context("spawn" if os.name == "nt" else "fork").Pool(n_workers) if n_workers > 1 else None
        try:
            _read_files(store, files, _Reading(report, ingest_id, bar, pool, n_workers, limit, with_fts, max_line_bytes))
            report.status = "completed"
        except KeyboardInterrupt as exc:
            report.status = "interrupted"
            report.error = "stopped by the user; whole conversations stored so far are kept"
            exc.ingest_report = report  # type: ignore[attr-defined]  # so the CLI can still write --report
            raise
        except sqlite3.Error as exc:  # the database (full, read-only, locked, damaged): one line, no traceback
            failure = store.storage_error(exc)
            report.status = "failed"
            report.error = failure.one_line()
            failure.ingest_report = report  # type: ignore[attr-defined]
            raise failure from None
        except BaseException as exc:
            report.status = "failed"
            report.error = exc.one_line() if isinstance(exc, NemoError) else f"{type(exc).__name__}: {exc}"
            exc.ingest_report = report  # type: ignore[attr-defined]
            raise
        finally:
            _wind_up(store, pool, bar, bulk, report)
            report.seconds = time.perf_counter() - started
            if report.rows_read == 0 and report.status == "completed":
                report.warnings.append("no rows were read from the input")
            _record_end(store, ingest_id, report)
    return report


def _input_files(paths: list[str | Path], split: str | None) -> list[tuple[Path, str]]:
    """Each input file with its split, checked before anything is written."""
    files: list[tuple[Path, str]] = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise InputFileError(f"{path}: no such file", "check the path, or download the data: python -m nemo_core download")
        if not path.is_file():
            raise InputFileError(f"{path}: not a file", "give the .jsonl files themselves")
        if not os.access(path, os.R_OK):
            raise InputFileError(f"{path}: not readable", "check the file's permissions")
        files.append((path, split_for_file(path, split)))
    return files


@dataclass
class _Reading:
    """What reading the files shares: the report, where progress goes, the worker pool, the limits."""

    report: IngestReport
    ingest_id: int
    bar: Any
    pool: Any
    n_workers: int
    limit: int | None
    with_fts: bool
    max_line_bytes: int


def _read_files(store: Store, files: list[tuple[Path, str]], r: _Reading) -> None:
    """Every file's chunks, prepared by the workers (at most two per worker ahead) and stored here in order,
    until the files or `limit` run out."""
    remaining = r.limit
    for path, file_split in files:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise InputFileError(f"{path}: cannot be read any more ({exc.strerror}): deleted or moved during the ingest",
                                 "the conversations stored so far are kept; put the file back and run the same "
                                 "command again to continue") from None
        file_info = {"path": str(path), "split": file_split, "bytes": size, "rows_read": 0}
        r.report.files.append(file_info)
        if file_info["bytes"] == 0:
            r.report.warnings.append(f"{path}: empty file, no rows read")
        state = {"line_base": 0, "remaining": remaining}
        pending: deque = deque()
        for start, end in plan_chunks(path):
            args = (file_split, str(path), start, end, r.with_fts, r.max_line_bytes)
            pending.append(r.pool.apply_async(prepare_range, args) if r.pool else prepare_range(*args))
            while len(pending) > 2 * r.n_workers or (pending and not r.pool):
                _absorb(store, pending.popleft(), r.report, file_info, r.ingest_id, r.bar, state)
            if state["remaining"] is not None and state["remaining"] <= 0:
                break
        while pending and (state["remaining"] is None or state["remaining"] > 0):
            _absorb(store, pending.popleft(), r.report, file_info, r.ingest_id, r.bar, state)
        remaining = state["remaining"]
        if remaining is not None and remaining <= 0:
            break


def _wind_up(store: Store, pool: Any, bar: Any, bulk: bool, report: IngestReport) -> None:
    """After the reading, however it ended: the workers stopped (chunks past --limit are discarded), the
    indexes a bulk load dropped built again, the planner's statistics refreshed. These write too: after a
    failure of the database they may fail again, and must not hide the first error."""
    if pool is not None:
        pool.terminate()
        pool.join()
    if bar is not None:
        bar.close()
    for step in ((store.create_decision_point_indexes,) if bulk else ()) + (
            (store.analyze,) if report.conversations_stored else ()):
        try:
            step()
        except (sqlite3.Error, OSError):
            if report.status == "completed":
                raise


def _record_end(store: Store, ingest_id: int, report: IngestReport) -> None:
    """Record how the ingest ended. After a full disk the whole report may not fit: then the WAL is
    checkpointed and truncated (giving its space back) and only the status and error are written. Should
    even that fail, the row stays `running` until the next open finds this process gone and marks it
    `interrupted` (`Store.mark_abandoned_ingests`)."""
    try:
        store.finish_ingest(ingest_id, report.status, _now(), report.to_json())
        return
    except (sqlite3.Error, OSError):
        pass
    try:
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except (sqlite3.Error, OSError):
        pass
    try:
        store.finish_ingest(ingest_id, report.status, _now(), {"status": report.status, "error": report.error})
    except (sqlite3.Error, OSError):
        pass


def _insert_each(store: Store, items: list[PreparedConversation],
                 ingest_id: int) -> tuple[InsertedConversations, list[tuple[PreparedConversation, Exception]]]:
    """After a batch failed on one of its rows: each conversation in its own transaction, so the good ones
    are stored and each bad one becomes its own rejected row (with what the database said)."""
    merged = InsertedConversations()
    failed: list[tuple[PreparedConversation, Exception]] = []
    for item in items:
        try:
            one = store.insert_conversations([item], ingest_id)
        except Exception as exc:  # noqa: BLE001
            if not is_row_error(exc):
                raise
            failed.append((item, exc))
            continue
        merged.stored += one.stored
        merged.repeated += one.repeated
        merged.n_existing += one.n_existing
    return merged, failed


def _absorb(store: Store, pending: Any, report: IngestReport, file_info: dict, ingest_id: int, bar: Any,
            state: dict) -> None:
    """Main side: store one chunk's conversations (whole, in one transaction) and account for its lines."""
    result: ChunkResult = pending.get() if hasattr(pending, "get") else pending
    base = state["line_base"]
    state["line_base"] += result.n_lines
    prepared, rejected, rows_read = result.prepared, result.rejected, result.rows_read
    remaining = state["remaining"]
    if remaining is not None and rows_read > remaining:  # --limit ends inside this chunk
        prepared = [p for p, row in zip(result.prepared, result.prepared_rows) if row < remaining]
        rejected = [r for r in rejected if r[1] < remaining]
        rows_read = remaining
    if remaining is not None:
        state["remaining"] = remaining - rows_read
    for item in prepared:
        item.source_line += base
    try:
        inserted = store.insert_conversations(prepared, ingest_id)
        failed: list[tuple[PreparedConversation, Exception]] = []
    except Exception as exc:  # noqa: BLE001
        if not is_row_error(exc):  # the database itself (full, read-only, locked): the ingest cannot go on
            raise
        inserted, failed = _insert_each(store, prepared, ingest_id)
    stored_items = inserted.stored
    report.conversations_stored += len(stored_items)
    report.conversations_skipped_existing += inserted.n_existing
    # a uuid twice in this input: the first copy is kept, the later one is accounted for as a rejected line
    rejected = [*rejected, *((item.source_line - base, None,
                              f"uuid {item.uuid!r} repeated in this input: the copy on line {line} of "
                              f"{Path(first_file).name!r} was kept")
                             for item, first_file, line in inserted.repeated),
                *((item.source_line - base, None, unexpected_reason(err, "the row could not be stored"))
                  for item, err in failed)]
    for item in stored_items:
        report.notes.update(item.notes)
        for row in item.rows:
            report.decision_points_stored[row[1]][row[5]] += 1
    source = file_info["path"]
    store.add_rejected(ingest_id, [(source, base + line, reason) for line, _row, reason in rejected])
    report.rows_rejected += len(rejected)
    for line, _row, reason in rejected:
        report.rejected_by_reason[reason_kind(reason)] += 1
        if len(report.rejected) < MAX_REPORTED_REJECTS:
            report.rejected.append({"file": source, "line": base + line, "reason": reason})
    report.rows_read += rows_read
    report.blank_lines += result.blank_lines
    report.bytes_read += result.nbytes
    file_info["rows_read"] += rows_read
    if bar is not None:
        bar.update(result.nbytes)
    if result.file_error is not None:  # what was read of it is stored above; the rest cannot be read
        raise InputFileError(
            f"{source}: could not be read to the end ({result.file_error}): deleted, moved or made unreadable "
            f"during the ingest, after line {state['line_base']:,}",
            "the conversations stored so far are kept; put the file back and run the same command again to continue")
