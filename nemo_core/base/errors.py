"""Small named errors, each carrying the fix, so the CLI and the pages can print one clear line.

Following sqlite-utils: the library raises these, `cli.py` turns them into `error: ... (fix: ...)`.
"""

from __future__ import annotations


class NemoError(Exception):
    """Base of every error the core raises on purpose; `hint` says what the user can do about it."""

    hint: str = ""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        text = str(self)
        return f"{text} ({self.hint})" if self.hint else text


class BadRow(NemoError):
    """A raw dataset row that cannot be used; the reader records it with file and line."""


class InputFileError(NemoError):
    """An input file that cannot be read at all (missing, unreadable, split unknown)."""


class StoreError(NemoError):
    """The database cannot be opened or written."""


class UnknownDecisionPoint(NemoError):
    """An id that is not in the store (or is not an id at all)."""

    hint = "ids look like tool_calling/<uuid>/<message index>; `python -m nemo_core stats` shows what is loaded"


class DownloadError(NemoError):
    """The raw dataset could not be fetched."""


class OptionError(NemoError):
    """A command option whose value cannot work (a count out of range, an output path in no folder): raised
    before any work is done, so nothing is left half-made."""
