"""One number format for every page and export (issue 19): rewards and CIs with 3 decimals, counts with
thousands separators and the right plural, times as `YYYY-MM-DD HH:MM UTC`, durations in seconds with one
decimal, and one mark ("—") for a value that does not exist.

Pages call these instead of writing their own f-strings, so 0.7449 / 0.35 / 0.618 on three pages becomes
0.745 / 0.350 / 0.618, and "None", "–" and "—" become one "—".
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from pandas.io.formats.style import Styler

NONE = "—"
REWARD_FORMAT = "%.3f"  # for st.column_config.NumberColumn(format=...)
SECONDS_FORMAT = "%.1f"


def reward(value: float | None, *, signed: bool = False) -> str:
    """A reward, mean or difference: 3 decimals (`+` for a difference when `signed`)."""
    if value is None:
        return NONE
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def ci(low: float | None, high: float | None, *, signed: bool = False) -> str:
    """A 95% interval as `[0.550, 0.700]`."""
    if low is None or high is None:
        return NONE
    return f"[{reward(low, signed=signed)}, {reward(high, signed=signed)}]"


def count(n: int | None) -> str:
    return NONE if n is None else f"{n:,}"


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 decision point`, `6,497 decision points`."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"


def when(iso: str | None) -> str:
    """A stored ISO timestamp as `2026-11-30 03:59 UTC` (the text as given when it is not ISO)."""
    if not iso:
        return NONE
    try:
        moment = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M") + " UTC"


def seconds(value: float | None) -> str:
    """A duration: `17.4 s`."""
    return NONE if value is None else f"{value:.1f} s"


def table(frame: pd.DataFrame) -> Styler:
    """A table for `st.dataframe` in the one format: decimals with 3 places, whole numbers with thousands
    separators, a missing text as "—". Streamlit draws every null as a grey "None" whatever the style says, so
    missing values in text columns (and columns with no value at all) are written as "—" in a copy; a number
    column keeps its numbers (sorting and downloads work on values) and Streamlit's grey mark for a missing one."""
    import pandas as pd

    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) and values.isna().any():
            frame[column] = values.astype(object).where(values.notna(), NONE)
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    whole = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])]
    styler = frame.style
    if floats:
        styler = styler.format("{:.3f}", subset=floats, na_rep=NONE)
    if whole:
        styler = styler.format("{:,}", subset=whole, na_rep=NONE)
    return styler
