"""Download an export from a page: the Browse page's filtered view, a run's predictions on the Runs page.

The file is built only when the button is clicked (Streamlit runs the callable in another thread, which
opens the database read-only on its own: `export.export_bytes`) and is held in memory to be sent, so a page
offers at most `PAGE_EXPORT_LIMIT` decision points; beyond that it shows the `export` command line that
writes the same selection to a file, streamed.
"""

from __future__ import annotations

import streamlit as st

from nemo_core.data.dp_stream import Selection
from nemo_core.runs.export import cli_command, export_bytes

PAGE_EXPORT_LIMIT = 10_000
SUFFIX = {"parquet": "parquet", "jsonl": "jsonl", "csv": "csv", "openai-ft": "openai-ft.jsonl",
          "nemo-gym": "nemo-gym.jsonl"}
MIME = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}
DESCRIPTION = {
    "parquet": "Parquet: one row per decision point (pandas, Hugging Face datasets)",
    "jsonl": "JSONL: one decision point a line, as `show --json` prints it",
    "csv": "CSV: the Parquet columns",
    "openai-ft": "OpenAI fine-tuning lines (messages + tools)",
    "nemo-gym": "NeMo Gym rows (single-step tool use)",
}


def download_section(db_path: str, selection: Selection, n: int, *, formats: tuple[str, ...], stem: str, key: str,
                     what: str = "decision points", run_name: str | None = None) -> None:
    """A format choice and a download button for `selection` (`n` rows), or the command line past the limit."""
    fmt = st.selectbox("Format", formats, key=f"{key}_format", format_func=lambda f: DESCRIPTION.get(f, f))
    command = cli_command(selection, fmt, f"{stem}.{SUFFIX[fmt]}", run_name=run_name, db=db_path)
    if n > PAGE_EXPORT_LIMIT:
        st.info(f"{n:,} {what}: more than the {PAGE_EXPORT_LIMIT:,} a page download holds. This command writes "
                "them all to a file, streamed:")
        st.code(command, language="bash")
        return
    st.download_button(f"Download {n:,} {what} ({fmt})", data=lambda: export_bytes(db_path, selection, fmt),
                       file_name=f"{stem}.{SUFFIX[fmt]}", mime=MIME.get(fmt, "application/jsonl"),
                       key=f"{key}_button", on_click="ignore")
    st.caption("Rows in store order. The same from the command line (any size):")
    st.code(command, language="bash")
