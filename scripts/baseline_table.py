"""Print the Markdown table of mean reward with 95% CI by split × action type from `report --json` output.

The README's baseline table is this script's output for the demo database's baseline runs, never typed in
(tests/test_baselines.py regenerates it and compares). Feed it one or more `report --json` objects, as files
or on stdin, one run per row, in the order given:

    for p in always-message first-tool keyword-router copy-last-call; do
      python -m nemo_core report --db data/demo.db --run baseline-$p --json
    done | python scripts/baseline_table.py

`--update README.md` writes the table between the `<!-- baseline-table:begin -->` and
`<!-- baseline-table:end -->` lines of that file instead of printing it.

It reads only the JSON (standard library only): a run of a baseline policy (model `baseline:NAME`) is shown
as NAME, any other run by its name. A column's `n` goes in its header when every run has the same n there
(the usual case: runs over the same decision points), else in each cell.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BEGIN = "<!-- baseline-table:begin -->"
END = "<!-- baseline-table:end -->"
SPLITS = ("tool_calling", "interactive_agent")
ACTION_TYPES = ("function_call", "message")


class TableError(Exception):
    """Input that is not `report --json` output, or a README without the markers."""


def read_reports(text: str, where: str = "<stdin>") -> list[dict[str, Any]]:
    """Every JSON object in `text`, in order (`report --json` prints indented objects, one after another)."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise TableError(f"{where}: not JSON at character {pos} ({exc})") from None
        if not isinstance(obj, dict) or "by_split_and_action_type" not in obj or "mean_reward" not in obj:
            raise TableError(f"{where}: object {len(out) + 1} is not `report --json` output "
                             "(no by_split_and_action_type or mean_reward)")
        out.append(obj)


def row_name(report: dict[str, Any]) -> str:
    model = report.get("model") or ""
    return model.split(":", 1)[1] if model.startswith("baseline:") else str(report["run"])


def _cell(ci: dict[str, Any] | None, with_n: bool) -> str:
    if ci is None:
        return "—"
    if ci["mean"] is None:
        return f"n/a ({ci['n_ungraded']} ungraded)"
    text = f"{ci['mean']:.3f} [{ci['ci_low']:.3f}, {ci['ci_high']:.3f}]"
    return f"{text} (n={ci['n']})" if with_n else text


def _n_label(ci: dict[str, Any] | None) -> str:
    if ci is None:
        return "n=0"
    return f"n={ci['n']}" + (f", {ci['n_ungraded']} ungraded" if ci["n_ungraded"] else "")


def markdown_table(reports: list[dict[str, Any]]) -> str:
    """The table: a row per run, a column per split × action type (then all of them), mean [95% CI]."""
    if not reports:
        raise TableError("no report given")
    columns: list[tuple[str, Any]] = [
        (f"{split} / {action_type}", lambda r, s=split, t=action_type: r["by_split_and_action_type"].get(s, {}).get(t))
        for split in SPLITS for action_type in ACTION_TYPES]
    columns.append(("all", lambda r: r["mean_reward"]))
    headers, shared_n = [], []
    for title, get in columns:
        labels = {_n_label(get(r)) for r in reports}
        same = len(labels) == 1
        shared_n.append(same)
        headers.append(f"{title} ({labels.pop()})" if same else title)
    lines = ["| policy | " + " | ".join(headers) + " |", "|---|" + "---|" * len(columns)]
    for report in reports:
        cells = [_cell(get(report), not same) for (_, get), same in zip(columns, shared_n)]
        lines.append(f"| {row_name(report)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_block(document: str, table: str, where: str) -> str:
    """`document` with the text between the markers replaced by `table`."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise TableError(f"{where}: no {BEGIN} ... {END} block")
    return document[:start + len(BEGIN)] + "\n" + table + "\n" + document[end:]


def block_of(document: str) -> str:
    """The table between the markers (what `replace_block` wrote)."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise TableError(f"no {BEGIN} ... {END} block")
    return document[start + len(BEGIN):end].strip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="report --json outputs (default: stdin)")
    parser.add_argument("--update", type=Path, metavar="FILE", help="write the table into FILE between the markers")
    args = parser.parse_args(argv)
    try:
        reports = []
        if args.files:
            for path in args.files:
                reports += read_reports(path.read_text(encoding="utf-8"), str(path))
        else:
            reports = read_reports(sys.stdin.read())
        table = markdown_table(reports)
        if args.update:
            args.update.write_text(replace_block(args.update.read_text(encoding="utf-8"), table, str(args.update)),
                                   encoding="utf-8")
        else:
            print(table)
    except (TableError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
