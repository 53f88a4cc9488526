"""The commerce tables the models read from a data folder: products (for each video's brand) and live sessions
(creator_id, start, end), and which videos' hosts are live at a time.

The ranker's ``live_now`` input and the service's live boost both come from the live sessions; a folder
without them means nobody is live, and one without products means no video has a brand, so such data
scores exactly as before. Products go through the importer's checks (vidrec.imports.commerce): a bad row
is skipped with its reason, logged here, and the importer's report is where it is read in full.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.imports.commerce import clean_products
from vidrec.imports.report import ImportReport
from vidrec.world.commerce import LIVE_COLUMNS, LiveSchedule

log = logging.getLogger(__name__)
LIVE_SESSIONS_CSV = "live_sessions.csv"
PRODUCTS_CSV = "products.csv"


def read_products(directory: Path) -> pd.DataFrame | None:
    """The accepted rows of ``products.csv`` (sku, brand, category, price, currency, video_ids), or None
    when the folder has no products."""
    path = Path(directory) / PRODUCTS_CSV
    if not path.is_file():
        return None
    report = ImportReport(source=str(path), format="csv")
    products = clean_products(pd.read_csv(path, dtype=str), report, str(path), None)
    skipped = len(report.rejected)
    if skipped:
        reasons = report.rejected["reason"].value_counts().to_dict() if "reason" in report.rejected else {}
        log.warning("%s: %d product row(s) skipped: %s", path, skipped, reasons)
    return products


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
