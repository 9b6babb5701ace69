"""Tables for people: times as ISO local time, numbers rounded, no NaN cells (the report, ``workbench runs``).

``runs_table(session.runs())`` is what the exported report shows and what ``workbench runs`` can print:
``started`` (seconds since the epoch in the store) becomes ``2026-11-30 17:42:05``, missing values
become empty cells instead of ``NaN`` or ``None``.
"""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd

TIME_COLUMNS = ("started", "ended", "finished", "time", "created")


def local_time(seconds) -> str:
    """Seconds since the epoch as ISO local time to the second (``2026-11-30 17:42:05``); "" when missing."""
    try:
        v = float(seconds)
    except (TypeError, ValueError):
        return "" if seconds is None else str(seconds)
    if not math.isfinite(v):
        return ""
    return datetime.fromtimestamp(v).isoformat(sep=" ", timespec="seconds")


def cell(v, digits: int = 4) -> str:
    """One table cell: numbers to ``digits`` significant figures, missing values empty."""
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.{digits}g}"
    return str(v)


def runs_table(df: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """``session.runs()`` (or any table) with time columns as local ISO times and every cell a readable string."""
    out = df.copy()
    for col in out.columns:
        if col in TIME_COLUMNS:
            out[col] = [local_time(v) for v in out[col]]
        else:
            out[col] = [cell(v, digits) for v in out[col]]
    return out
