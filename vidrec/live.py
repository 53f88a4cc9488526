"""Live sessions (creator_id, start, end): read from a data folder, and which videos' hosts are live at a time.

The ranker's ``live_now`` input and the service's live boost both ask ``live_at``; a schedule that is
absent or empty means nobody is live, so data without live sessions scores exactly as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.world.commerce import LIVE_COLUMNS, LiveSchedule

LIVE_SESSIONS_CSV = "live_sessions.csv"


def read_live_sessions(directory: Path) -> pd.DataFrame:
    """``live_sessions.csv`` of a data folder (live_id, creator_id, start, end; ISO 8601 UTC), or an empty
    table when the folder has none. A row whose end is not after its start is an error naming the row."""
    path = Path(directory) / LIVE_SESSIONS_CSV
    if not path.is_file():
        return pd.DataFrame(
            {c: pd.Series(dtype="datetime64[ns, UTC]" if c in ("start", "end") else object) for c in LIVE_COLUMNS}
        )
    frame = pd.read_csv(path, dtype={"live_id": str, "creator_id": str})
    missing = [c for c in ("creator_id", "start", "end") if c not in frame]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; expected {list(LIVE_COLUMNS)}")
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    bad = frame[~(frame["end"] > frame["start"])]
    if len(bad):
        raise ValueError(f"{path}: {len(bad)} session(s) do not end after they start, e.g. row {int(bad.index[0])}")
    return frame


def live_at(sessions: pd.DataFrame, creators: np.ndarray, ts_ns: np.ndarray | int | None) -> np.ndarray:
    """Elementwise: is ``creators[i]`` in a session with start <= ts < end (``ts_ns`` int64 ns, broadcast)."""
    return LiveSchedule(sessions).live_now(np.asarray(creators, dtype=object), ts_ns)
