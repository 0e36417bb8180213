"""Decision points out of the store, streamed: Parquet, JSONL, CSV, OpenAI fine-tuning lines, NeMo Gym rows.

`export(store, selection, fmt, out)` reads the selection a batch at a time (`dp_stream`: rowid order, each
conversation decompressed once per batch) and writes as it reads, so memory stays flat at 1.2 M decision
points. The file is written beside `out` as `out.partial` and renamed when complete: an interrupted export
never leaves a file that looks whole.

Formats (`FORMATS`):
- `parquet`, `jsonl`, `csv`: one row per decision point with the keys of `show --json` (`ROW_COLUMNS`):
  id, split, conversation_uuid, turn_index, action_type, flags, context, tools, expected. In Parquet and CSV
  the three structured values are JSON text (their shapes differ row to row, which Arrow cannot type: the
  reason SPEC §1 reads the raw files rather than through `datasets`), `flags` a list of strings (CSV: joined
  with commas); in JSONL they are nested JSON, so a line is exactly `show ID --json`. A run export
  (`Selection.run_id`) adds `RUN_COLUMNS`: the prediction, reward, match columns, grader, reason, error,
  the taxonomy category and the breakdown. Parquet is written through pyarrow, one row group per batch,
  zstd-compressed; `pandas.read_parquet` and `datasets.load_dataset("parquet", ...)` read it as it is.
- `openai-ft`, `nemo-gym`: one training line per usable decision point (`training_formats.py`); the others
  are counted by reason in the result, never silently dropped.

With `workers` > 0 the batches are converted in worker processes while this process reads the store and
writes the file (bounded: at most `IN_FLIGHT_PER_WORKER` batches per worker are in flight). Conversion is
what costs (decompressing, parsing and re-encoding every conversation); reading and writing are cheap.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.dp_stream import RawBatch, Selection, count, decision_points, iter_raw_batches
from ..base.errors import NemoError
from ..data.jsontext import dumps_bytes
from ..data.store import Store
from ..grading.training_formats import SKIP_REASONS, Skipped, nemo_gym_row, openai_ft_line

FORMATS = ("parquet", "jsonl", "csv", "openai-ft", "nemo-gym")
TABLE_FORMATS = ("parquet", "jsonl", "csv")  # the formats a run export takes
ROW_COLUMNS = ("id", "split", "conversation_uuid", "turn_index", "action_type", "flags", "context", "tools",
               "expected")
JSON_COLUMNS = frozenset({"context", "tools", "expected", "prediction", "extra", "breakdown"})
RUN_COLUMNS = ("prediction", "extra", "reward", "action_type_match", "name_match", "arg_match", "grader",
               "grader_model", "reason", "error", "category", "sub_kind", "breakdown")
_PREDICTION_SQL = ("SELECT p.dp_id, p.action, p.extra, p.reward, p.action_type_match, p.name_match, p.arg_match, "
                   "p.grader, p.grader_model, p.reason, p.error, {taxonomy}, p.breakdown "
                   "FROM predictions AS p {join} WHERE p.run_id = ? AND p.dp_id IN ({{marks}})")
IN_FLIGHT_PER_WORKER = 3
PARALLEL_MIN_ROWS = 20_000  # below this, starting processes costs more than it saves


class ExportError(NemoError):
    """An export that cannot be made as asked."""


@dataclass
class ExportResult:
    """What an export wrote: the file, rows written, decision points left out by reason, time."""

    path: Path
    fmt: str
    n_selected: int = 0
    n_written: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # reason -> the first decision point left out for it
    seconds: float = 0.0
    bytes: int = 0

    def summary(self) -> str:
        text = f"{self.n_written:,} {'rows' if self.fmt in TABLE_FORMATS else 'lines'} written to {self.path} " \
               f"({self.bytes / 1e6:,.1f} MB, {self.seconds:.1f} s)"
        if self.skipped:
            text += "; left out: " + ", ".join(f"{n:,} {reason} ({SKIP_REASONS.get(reason, reason)}; e.g. "
                                               f"{self.examples.get(reason, '?')})"
                                               for reason, n in self.skipped.most_common())
        return text


# ---- converting one batch (pure: runs in a worker process or here) ------------------------------------
@dataclass
class _Job:
    fmt: str
    raw: RawBatch
    predictions: dict[str, tuple] | None = None  # dp id -> RUN_COLUMNS values (a run export)
    submit_message_tool: bool = False


@dataclass
class _Chunk:
    """A converted batch: column lists (parquet) or encoded lines (the others, CSV rows included: encoding
    them is most of a CSV export's work, so it is done here, in a worker when there are workers)."""

    columns: dict[str, list] | None = None
    lines: bytes = b""
    n_rows: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (reason, decision point id)


class _ConversationJSON:
    """A conversation's messages encoded once each; a context is the join of the first i (the same bytes
    `dumps_bytes(messages[:i])` gives, without encoding each message again for every later decision point)."""

    def __init__(self, messages: list[Any]):
        self.messages = messages
        self.parts: list[bytes] = []
        self.tools: bytes | None = None

    def context(self, i: int) -> bytes:
        while len(self.parts) < i:
            self.parts.append(dumps_bytes(self.messages[len(self.parts)]))
        return b"[" + b",".join(self.parts[:i]) + b"]"


def _table_values(dp: Any, cache: _ConversationJSON) -> dict[str, Any]:
    if cache.tools is None:
        cache.tools = dumps_bytes(dp.tools)
    return {"id": dp.id, "split": dp.split, "conversation_uuid": dp.conversation_uuid, "turn_index": dp.turn_index,
            "action_type": dp.action_type, "flags": list(dp.flags), "context": cache.context(dp.turn_index),
            "tools": cache.tools, "expected": dumps_bytes(dp.expected())}


def _jsonl_line(values: dict[str, Any]) -> bytes:
    """`values` as one JSON line, JSON columns (already encoded) embedded as they are."""
    parts = [dumps_bytes(k) + b":" + (values[k] if k in JSON_COLUMNS and values[k] is not None else dumps_bytes(values[k]))
             for k in values]
    return b"{" + b",".join(parts) + b"}\n"


def convert(job: _Job) -> _Chunk:
    """One batch in the job's format (see the module docstring)."""
    chunk = _Chunk(columns={} if job.fmt == "parquet" else None)
    lines: list[bytes] = []
    caches: dict[tuple[str, str], _ConversationJSON] = {}
    columns = (*ROW_COLUMNS, *(RUN_COLUMNS if job.predictions is not None else ()))
    if chunk.columns is not None:
        chunk.columns = {c: [] for c in columns}
    for dp, conv in decision_points(job.raw):
        if job.fmt in TABLE_FORMATS:
            key = (dp.split, dp.conversation_uuid)
            cache = caches.get(key) or caches.setdefault(key, _ConversationJSON(conv["raw"]["messages"]))
            values = _table_values(dp, cache)
            if job.predictions is not None:
                values.update(zip(RUN_COLUMNS, job.predictions.get(dp.id, (None,) * len(RUN_COLUMNS))))
            if chunk.columns is not None:
                for c in columns:
                    chunk.columns[c].append(values[c])
            elif job.fmt == "csv":
                lines.append(b",".join([_csv_field(values[c]) for c in columns]) + b"\r\n")
            else:
                lines.append(_jsonl_line(values))
            chunk.n_rows += 1
            continue
        line = openai_ft_line(dp, submit_message_tool=job.submit_message_tool) if job.fmt == "openai-ft" \
            else nemo_gym_row(dp)
        if isinstance(line, Skipped):
            chunk.skipped.append((line.reason, dp.id))
            continue
        lines.append(dumps_bytes(line) + b"\n")
        chunk.n_rows += 1
    chunk.lines = b"".join(lines)
    return chunk


# ---- writing --------------------------------------------------------------------------------------------
def _parquet_schema(run: bool) -> Any:
    import pyarrow as pa

    fields = [("id", pa.string()), ("split", pa.string()), ("conversation_uuid", pa.string()),
              ("turn_index", pa.int32()), ("action_type", pa.string()), ("flags", pa.list_(pa.string())),
              ("context", pa.string()), ("tools", pa.string()), ("expected", pa.string())]
    if run:
        fields += [("prediction", pa.string()), ("extra", pa.string()), ("reward", pa.float64()),
                   ("action_type_match", pa.int8()), ("name_match", pa.int8()), ("arg_match", pa.float64()),
                   ("grader", pa.string()), ("grader_model", pa.string()), ("reason", pa.string()),
                   ("error", pa.string()), ("category", pa.string()), ("sub_kind", pa.string()),
                   ("breakdown", pa.string())]
    return pa.schema(fields)


class _Sink:
    """Where converted chunks go: a Parquet writer (one row group per chunk), CSV, or plain lines."""

    def __init__(self, fmt: str, path: Path, run: bool):
        self.fmt = fmt
        self.fh = path.open("wb")
        self.writer: Any = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self.schema = _parquet_schema(run)
            self.writer = pq.ParquetWriter(self.fh, self.schema, compression="zstd",
                                           use_dictionary=["split", "action_type", "grader", "reason", "category"])
        elif fmt == "csv":
            header = io.StringIO()
            csv.writer(header).writerow([*ROW_COLUMNS, *(RUN_COLUMNS if run else ())])
            self.fh.write(header.getvalue().encode("utf-8"))

    def write(self, chunk: _Chunk) -> None:
        if self.fmt == "parquet":
            import pyarrow as pa

            if chunk.n_rows:
                self.writer.write_batch(pa.record_batch([pa.array(chunk.columns[f.name], type=f.type)
                                                         for f in self.schema], schema=self.schema))
        else:
            self.fh.write(chunk.lines)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if not self.fh.closed:
            self.fh.close()


_CSV_SPECIAL = (b",", b'"', b"\r", b"\n")


def _csv_field(value: Any) -> bytes:
    """One CSV field as the `csv` module writes it (minimal quoting, quotes doubled, None empty, a list joined
    with commas), on bytes: the JSON columns are already UTF-8 bytes, and `bytes.replace` doubles their quotes
    several times faster than `csv.writer` scans decoded text (the CSV export's main cost)."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, list):
        raw = ",".join(value).encode()
    else:
        raw = str(value).encode()
    if any(c in raw for c in _CSV_SPECIAL):
        return b'"' + raw.replace(b'"', b'""') + b'"'
    return raw


# ---- the export -----------------------------------------------------------------------------------------
def _run_predictions(store: Store, run_id: int, ids: list[str]) -> dict[str, tuple]:
    """RUN_COLUMNS of the run's predictions for these decision points (JSON columns as bytes)."""
    from .taxonomy import taxonomy_table

    table = taxonomy_table(run_id)
    has_taxonomy = store.scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    sql = _PREDICTION_SQL.format(
        taxonomy="t.category, t.sub_kind" if has_taxonomy else "NULL, NULL",
        join=f"LEFT JOIN {table} AS t ON t.prediction_id = p.id" if has_taxonomy else "")
    out = {}
    for dp_id, *values in store.fetch_in(sql, ids, (run_id,)):
        out[dp_id] = tuple((v.encode() if v else None) if name in JSON_COLUMNS else v
                           for name, v in zip(RUN_COLUMNS, values))
    return out


def _jobs(store: Store, selection: Selection, fmt: str, submit_message_tool: bool):
    for raw in iter_raw_batches(store, selection):
        predictions = None
        if selection.run_id is not None:
            predictions = _run_predictions(store, selection.run_id, [r["id"] for r in raw.rows])
        yield _Job(fmt, raw, predictions, submit_message_tool)


def _chunks(jobs, workers: int):
    """Converted chunks in order: here, or in `workers` processes with a bounded number in flight."""
    if not workers:
        for job in jobs:
            yield convert(job)
        return
    ctx = multiprocessing.get_context("fork" if os.name != "nt" else "spawn")
    with ctx.Pool(workers) as pool:
        in_flight: deque = deque()
        for job in jobs:
            in_flight.append(pool.apply_async(convert, (job,)))
            if len(in_flight) >= IN_FLIGHT_PER_WORKER * workers:
                yield in_flight.popleft().get()
        while in_flight:
            yield in_flight.popleft().get()


def check_format(fmt: str, selection: Selection) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}", f"choose one of {', '.join(FORMATS)}")
    if selection.run_id is not None and fmt not in TABLE_FORMATS:
        raise ExportError(f"a run is exported as {', '.join(TABLE_FORMATS)}, not {fmt}",
                          "leave out --run for a training export of the decision points")


def export(store: Store, selection: Selection, fmt: str, out: Path | str, *, submit_message_tool: bool = False,
           workers: int | None = None, on_progress: Callable[[int], None] | None = None) -> ExportResult:
    """Write the selection to `out` in `fmt` (see the module docstring). `workers`: None chooses one per core
    for a large selection from a single-threaded program (forking beside other threads can deadlock the
    child), 0 converts here. `on_progress(n)` after every n decision points read."""
    import threading

    check_format(fmt, selection)
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    result = ExportResult(out, fmt, n_selected=count(store, selection))
    if workers is None:
        big = result.n_selected >= PARALLEL_MIN_ROWS and threading.active_count() == 1
        workers = (os.cpu_count() or 1) if big and (os.cpu_count() or 1) > 1 else 0
    started = time.perf_counter()
    sink = _Sink(fmt, partial, selection.run_id is not None)
    try:
        for chunk in _chunks(_jobs(store, selection, fmt, submit_message_tool), workers):
            sink.write(chunk)
            result.n_written += chunk.n_rows
            for reason, dp_id in chunk.skipped:
                result.skipped[reason] += 1
                result.examples.setdefault(reason, dp_id)
            if on_progress is not None:
                on_progress(chunk.n_rows + len(chunk.skipped))
        sink.close()
    except BaseException:
        sink.close()
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)
    result.seconds = time.perf_counter() - started
    result.bytes = out.stat().st_size
    return result


def export_bytes(db_path: Path | str, selection: Selection, fmt: str, *, submit_message_tool: bool = False) -> bytes:
    """A (small) export as bytes, for a page's download button: written to a temporary file through a
    read-only connection of its own (the button runs this in another thread), read back, deleted."""
    import tempfile

    store = Store.open(db_path, readonly=True)
    try:
        with tempfile.TemporaryDirectory(prefix="nemo-export-") as tmp:
            out = Path(tmp) / f"export.{fmt}"
            export(store, selection, fmt, out, submit_message_tool=submit_message_tool, workers=0)
            return out.read_bytes()
    finally:
        store.close()


_FILTER_OPTIONS = {"split": "--split", "action_type": "--action-type", "tool": "--tool", "text": "--text",
                   "min_tools": "--min-tools", "max_tools": "--max-tools", "min_turn": "--min-turn",
                   "max_turn": "--max-turn"}


def cli_command(selection: Selection, fmt: str, out: str, *, run_name: str | None = None,
                db: str | None = None) -> str:
    """The `python -m nemo_core export` command line that exports the same selection (shell-quoted), for a
    page to show when its download would be too large."""
    import shlex

    args = ["python", "-m", "nemo_core", "export", "--format", fmt]
    if db:
        args += ["--db", db]
    flt = selection.filter
    for name, option in _FILTER_OPTIONS.items():
        value = getattr(flt, name)
        if value not in (None, ""):
            args += [option, str(value)]
    for flag in flt.flags:
        args += ["--flag", flag]
    for flag in flt.exclude_flags:
        args += ["--exclude-flag", flag]
    if selection.sample is not None:
        args += ["--sample", str(selection.sample), "--seed", str(selection.seed or 0)]
    if run_name is not None:
        args += ["--run", run_name]
    return shlex.join([*args, "--out", out])
