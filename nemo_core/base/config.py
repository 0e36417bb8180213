"""Where things live by default. One place, so the CLI, the pages and the tests agree."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DATA_DIR = REPO_ROOT / "data"
DEMO_DIR = DATA_DIR / "demo"
DEFAULT_DB = DATA_DIR / "nemo.db"
DEMO_DB = DATA_DIR / "demo.db"

SPLITS = ("tool_calling", "interactive_agent")
ACTION_TYPES = ("function_call", "message")
SUBMIT_MESSAGE = "submit_message"

HF_REPO_ID = "nvidia/Nemotron-Agentic-v1"
HF_FILES = {"tool_calling": "data/tool_calling.jsonl", "interactive_agent": "data/interactive_agent.jsonl"}


def default_db_path() -> Path:
    """`NEMO_DB` when set, else `data/nemo.db`."""
    env = os.environ.get("NEMO_DB")
    return Path(env) if env else DEFAULT_DB
