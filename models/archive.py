"""The feedback archive: every event that leaves Redis is first written here, as Parquet
partitioned by the date it was received (``DIR/date=YYYY-MM-DD/<stream>-<first>-<last>.parquet``).

Files are written to a temporary name, fsynced and renamed, and named by the stream ids
they hold, so writing the same events twice replaces a file instead of duplicating it;
readers also drop repeated event ids. The archive plus what is still in the streams is
the complete record of feedback.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from app.events import STREAM_FIELDS

# The feedback stream's record fields, and where in Redis each event was read.
COLUMNS = [*STREAM_FIELDS, "stream", "stream_id"]


def write(events: list[dict[str, str]], archive_dir: Path) -> list[Path]:
    """Archive stream events (as read from Redis); returns the files written."""
    if not events:
        return []
    frame = pd.DataFrame(events).reindex(columns=COLUMNS)
    for column in ("value", "timestamp", "received_at", "position"):
        frame[column] = pd.to_numeric(frame[column].replace("", None), errors="coerce")
    frame["date"] = [
        datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d") for t in frame["received_at"].fillna(0)
    ]
    written = []
    for (date, stream), part in frame.groupby(["date", "stream"], sort=True):
        folder = archive_dir / f"date={date}"
        folder.mkdir(parents=True, exist_ok=True)
        safe_stream = "".join(c if c.isalnum() else "_" for c in str(stream))
        first, last = part["stream_id"].iloc[0], part["stream_id"].iloc[-1]
        path = folder / f"{safe_stream}-{first}-{last}.parquet"
        tmp = path.with_suffix(".tmp")
        part.drop(columns=["date"]).to_parquet(tmp, index=False)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        written.append(path)
    return written


def read(archive_dir: Path) -> pd.DataFrame:
    """Every archived event once, oldest first (canonical interaction columns included;
    files written before a field existed have it empty)."""
    files = sorted(archive_dir.glob("date=*/*.parquet")) if archive_dir.exists() else []
    if not files:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).reindex(columns=COLUMNS)
    frame = frame.drop_duplicates("event_id", keep="first")
    return frame.sort_values(["received_at", "stream_id"], kind="stable").reset_index(drop=True)
