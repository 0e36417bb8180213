"""What the CLI's commands share: the help formatter, the `--db` option and the database it names,
checks of option values made before any work, and the progress bar. Below `main.py` (which imports every command), so a command
never imports the module that imports it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..base.errors import OptionError, StoreError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    pass


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", type=Path, default=None,
        help="database file (default: $NEMO_DB, else data/nemo.db, else the bundled demo database)",
    )


def max_workers() -> int:
    """The most worker processes a command accepts: beyond this, forking is a typo, not a plan."""
    import os

    return max(64, 2 * (os.cpu_count() or 1))


def check_workers(workers: int | None, *, zero: str) -> None:
    """`--workers N`, checked before anything is opened or stored: 0 means `zero`; negative and absurd
    counts are one-line errors (a negative count used to reach `multiprocessing.Pool` after the run was
    created, and left it `running`)."""
    if workers is None:
        return
    if workers < 0 or workers > max_workers():
        raise OptionError(f"--workers {workers}: must be from 0 ({zero}) to {max_workers()}",
                          "leave --workers out for one per core")


def check_output_path(path: Path | str | None, option: str) -> None:
    """An output file option (`--out`, `--report`), checked before any work: its folder must exist (it is
    not created, so a typo does not make folders) and be writable, and the path must not be a folder.
    None and '-' (stdout) pass."""
    import os

    if path is None or str(path) == "-":
        return
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise OptionError(f"{option} {path}: the folder {folder} does not exist",
                          "create it first, or give a path in an existing folder")
    if target.is_dir():
        raise OptionError(f"{option} {path}: is a folder, not a file", "give a file name, e.g. results.jsonl")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise OptionError(f"{option} {path}: cannot write there (permission denied)", "give a path you can write")


def resolve_db(path: Path | None, *, write: bool = False) -> Path:
    """The database a command works on.

    `--db` wins, then `$NEMO_DB`, then `data/nemo.db`. A command that only reads falls back to the demo
    database (built on first use) when none of those exists, so a fresh checkout works with no setup.
    """
    import os

    # read when called, not bound at import: the demo module (and ingest under it) only loads when needed,
    # and tests point DEFAULT_DB / ensure_demo_db elsewhere
    from ..base.config import DEFAULT_DB
    from ..people.demo_content import ensure_full_demo_db

    env = os.environ.get("NEMO_DB")
    if path is None and env:  # like --db: a typo in NEMO_DB must not silently create an empty database
        path = Path(env)
    if path is not None:
        if not write and not path.exists():
            raise StoreError(f"no database at {path}", f"ingest data first: python -m nemo_core ingest FILE --db {path}")
        return path
    if write or DEFAULT_DB.exists():
        return DEFAULT_DB
    print("note: no data/nemo.db yet, using the bundled demo database (data/demo.db)", file=sys.stderr)
    return ensure_full_demo_db()


@contextmanager
def progress_bar(total: int, *, unit: str, desc: str, quiet: bool) -> Iterator[Any]:
    """A command's tqdm progress bar on stderr, or None with `--quiet`; closed however the block ends (Ctrl-C
    included), so the bar's line is finished. A command that prints its own message on Ctrl-C before the bar
    closes catches `KeyboardInterrupt` inside the block, one that prints it after catches it outside."""
    if quiet:
        yield None
        return
    from tqdm import tqdm  # only when a bar is shown: it is not needed for --quiet

    bar = tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
