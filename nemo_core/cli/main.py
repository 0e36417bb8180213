"""`python -m nemo_core COMMAND`: parses arguments, calls the library, prints.

Each command lives in `nemo_core/cli/commands/<name>.py` with `register(subparsers)` and `run(args) -> int`;
the helpers they share (the `--db` option, checks of option values) are in `options.py`, below this module.
The library's `NemoError`s become one line on stderr that says what to do, and exit code 1.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys

from .commands import COMMANDS
from ..base.errors import NemoError
from ..data.store import storage_error
from .options import HelpFormatter
from ..base.config import DEFAULT_DB


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nemo_core",
        description="Nemotron-Agentic Workbench: decision points of Nemotron-Agentic-v1 in SQLite, and their grading.",
        epilog="Run `python -m nemo_core COMMAND --help` for a command's options and an example.",
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except NemoError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: whole conversations stored so far are kept; re-run to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except sqlite3.Error as exc:  # the database itself failed (full, read-only, locked, damaged): one line
        print(f"error: {storage_error(_db_in_use(args), exc).one_line()}", file=sys.stderr)
        return 1


def _db_in_use(args: argparse.Namespace) -> str:
    """The database a command was working on, for an error message (`resolve_db`'s choice, without its
    side effects)."""
    import os

    return str(getattr(args, "db", None) or os.environ.get("NEMO_DB") or DEFAULT_DB)
