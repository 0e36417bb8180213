"""`run-model --write-batch FILE`: the requests `run-model` would send, as OpenAI Batch API input files.

Each line is `{"custom_id": <decision point id>, "method": "POST", "url": "/v1/chat/completions", "body": ...}`
with `body` exactly what `ModelRunner.request_body` sends for that decision point (model, messages, tools,
`tool_choice` "required", and the temperature and token limit when set). The Batch API takes at most
`MAX_REQUESTS` requests and `MAX_BYTES` bytes per input file, so the lines are split into files under both:
`FILE` itself when one is enough, else `FILE`'s name with `-001`, `-002`, ... before its suffix. Each file is
written as `.partial` and renamed when complete. Numbered files already there (an earlier, larger batch) are
refused before anything is written, and a `FILE` left from an earlier batch is removed when this one is
split: every file named after `FILE` is then this batch's, so "upload each file" cannot send a stale one.

The selection is `run-model`'s (`model_runner.select_ids`): the filter's decision points in store order, the
first `limit` of them, or with `sample_seed` the same seeded sample, read as a stream (`dp_stream`), so 1.2 M
requests are written with flat memory. A server that refuses `tool_choice="required"` makes `run-model` ask
again with "auto"; a batch cannot, so the files say "required" as the first live request would.

The Batch API's output file is graded by `grade` directly (`answer_formats`: `custom_id` is the id, the
answer is `response.body`, a failed request is reported per line as not graded).
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import OptionError
from ..data.dp_stream import Selection, iter_decision_points
from ..data.jsontext import dumps_bytes
from ..data.store import Store

MAX_REQUESTS = 50_000
MAX_BYTES = 200_000_000  # "up to 200 MB": counted in decimal megabytes, the stricter reading
URL = "/v1/chat/completions"


@dataclass
class BatchFiles:
    """The input files written, and how many requests and bytes in all."""

    paths: list[Path] = field(default_factory=list)
    n_requests: int = 0
    bytes: int = 0


def batch_line(runner: Any, dp: Any) -> bytes:
    """One Batch API input line: the request `runner` sends for `dp`."""
    return dumps_bytes({"custom_id": dp.id, "method": "POST", "url": URL, "body": runner.request_body(dp)}) + b"\n"


class _Parts:
    """Input files under the limits, numbered `-001`, `-002`, ...; a single one is renamed to the name asked."""

    def __init__(self, out: Path, max_requests: int, max_bytes: int):
        self.out, self.max_requests, self.max_bytes = out, max_requests, max_bytes
        self.written: list[Path] = []
        self.fh: Any = None
        self.n = self.size = 0

    def _name(self, k: int) -> Path:
        return self.out.with_name(f"{self.out.stem}-{k:03d}{self.out.suffix}")

    def _close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            final = self._name(len(self.written) + 1)
            Path(self.fh.name).replace(final)
            self.written.append(final)
            self.fh = None

    def write(self, line: bytes) -> None:
        if self.fh is not None and (self.n >= self.max_requests or self.size + len(line) > self.max_bytes):
            self._close()
        if self.fh is None:
            self.fh = open(self._name(len(self.written) + 1).with_suffix(self.out.suffix + ".partial"), "wb")
            self.n = self.size = 0
        self.fh.write(line)
        self.n += 1
        self.size += len(line)

    def stale(self) -> list[Path]:
        """Numbered files of an earlier batch with this name."""
        return sorted(self.out.parent.glob(f"{glob.escape(self.out.stem)}-[0-9][0-9][0-9]{glob.escape(self.out.suffix)}"))

    def finish(self) -> list[Path]:
        self._close()
        if len(self.written) == 1:
            self.written[0].replace(self.out)
            self.written = [self.out]
        else:
            self.out.unlink(missing_ok=True)  # a single file left from an earlier batch
        return self.written

    def abandon(self) -> None:
        if self.fh is not None:
            self.fh.close()
            Path(self.fh.name).unlink(missing_ok=True)
            self.fh = None


def write_batch(store: Store, runner: Any, selection: Selection, out: Path | str, *, limit: int | None = None,
                max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES,
                on_progress: Callable[[int], None] | None = None) -> BatchFiles:
    """Write the requests for the selection (at most `limit`, in store order) as Batch API input files."""
    parts = _Parts(Path(out), max_requests, max_bytes)
    stale = parts.stale()
    if stale:
        raise OptionError(f"{stale[0]} already exists ({len(stale)} numbered file(s) of an earlier batch)",
                          "remove them or choose another file name: they would be uploaded with this batch")
    result = BatchFiles()
    try:
        for dp in iter_decision_points(store, selection, on_batch=on_progress):
            if limit is not None and result.n_requests >= limit:
                break
            line = batch_line(runner, dp)
            parts.write(line)
            result.n_requests += 1
            result.bytes += len(line)
        result.paths = parts.finish()
    except BaseException:
        parts.abandon()
        raise
    return result
