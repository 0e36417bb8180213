"""Which app this server is: the whole workbench, or a server for annotators (`NEMO_APP_MODE=annotate`).

An annotate-mode server serves the Annotate page alone (no page there can reveal an expected action) and shows
nothing about the server itself: no database path, no way to open another file, no error detail that could
name a path (see `ui.db` and `app.py`).
"""

from __future__ import annotations

import os

ANNOTATE = "annotate"


def annotate_mode() -> bool:
    return os.environ.get("NEMO_APP_MODE") == ANNOTATE
