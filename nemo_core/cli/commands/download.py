from __future__ import annotations

from pathlib import Path

from ...base.config import DATA_DIR, SPLITS

HELP = """Fetch the raw Nemotron-Agentic-v1 JSONL files (about 5.9 GB) from Hugging Face with huggingface_hub.

Without network access it fails fast; ingest local copies of the files instead.

example:
  python -m nemo_core download --split interactive_agent --dest data/raw
  python -m nemo_core ingest data/raw/data/interactive_agent.jsonl
"""


def register(sub) -> None:
    from ..options import HelpFormatter

    p = sub.add_parser("download", help="fetch the raw dataset files from Hugging Face", description=HELP, formatter_class=HelpFormatter)
    p.add_argument("--split", action="append", choices=SPLITS, help="a split to fetch (repeatable; default: both)")
    p.add_argument("--revision", default=None, help="a dataset revision (commit, branch or tag; default: main)")
    p.add_argument("--dest", type=Path, default=DATA_DIR / "raw", help="folder to write to (default: data/raw)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the Hub before giving up (default: 10)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ...data.download import download

    paths = download(args.split or list(SPLITS), revision=args.revision, dest=args.dest, timeout=args.timeout)
    for split, path in paths.items():
        print(f"{split}: {path}")
    print("next: python -m nemo_core ingest " + " ".join(str(p) for p in paths.values()))
    return 0
