"""Implicit-feedback logs of the common public shape (MovieLens, Amazon, Yelp dumps): one row per
(user, item, timestamp[, rating]) with a configurable separator, and an item table with text fields only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import fsspec
import numpy as np
import pandas as pd

from vidrec.imports.report import ImportReport
from vidrec.imports.tables import ImportResult, clean_events, clean_items, require, signal_notes, skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogFormat:
    """How to read an interaction log.

    ``columns`` names the file's columns in order when it has no header (e.g. MovieLens ``ratings.dat``:
    ``sep="::"``, ``columns=("user_id", "video_id", "rating", "ts")``, ``header=False``). A rating column
    makes rows with ``rating < rating_threshold`` non-positives (skipped and counted); ``ts_unit`` is the
    unit of numeric timestamps (``s``, ``ms``, ``us``).
    """

    sep: str = ","
    header: bool = True
    columns: tuple[str, ...] | None = None
    rating_threshold: float | None = None
    ts_unit: str = "s"


def _read_table(path: str, sep: str, header: bool, columns: tuple[str, ...] | None) -> pd.DataFrame:
    # Multi-character separators (MovieLens "::") need the python engine; the C engine is much faster.
    engine = "c" if len(sep) == 1 or sep == r"\s+" else "python"
    with fsspec.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        return pd.read_csv(
            handle,
            sep=sep,
            header=0 if header else None,
            names=list(columns) if columns else None,
            dtype="string[pyarrow]" if engine == "c" else str,
            keep_default_na=False,
            engine=engine,
            skipinitialspace=True,
        )


def read_text_items(path: str, sep: str = ",", rename: dict[str, str] | None = None) -> pd.DataFrame:
    """An item table with a header and at least ``video_id`` (after ``rename``); any of title,
    description, tags ("|"-separated), category are used as the item's text. No media columns."""
    if str(path).endswith((".jsonl", ".json")):
        with fsspec.open(path, "rt", encoding="utf-8") as handle:
            raw = pd.read_json(handle, lines=True, dtype=False).astype("string")
    elif str(path).endswith(".parquet"):
        with fsspec.open(path, "rb") as handle:
            raw = pd.read_parquet(handle).astype("string")
    else:
        raw = _read_table(path, sep, True, None)
    raw = raw.rename(columns=rename or {})
    require(raw, ["video_id"], f"item table {path}")
    return raw.drop(columns=[c for c in ("media_path", "media_kind") if c in raw])


def import_logs(
    events_path: str, items_path: str | None, fmt: LogFormat = LogFormat(), rename: dict[str, str] | None = None
) -> ImportResult:
    """Import an interaction log and (optionally) its text-only item table.

    Without an item table the items are the distinct ids in the log (no text). Items never have media
    here, so they reach the models with the visual and audio modalities marked missing.
    """
    started = time.perf_counter()
    report = ImportReport(source=events_path, format="logs")
    raw = _read_table(events_path, fmt.sep, fmt.header, fmt.columns).rename(columns=rename or {})
    require(raw, ["user_id", "video_id", "ts"], f"interaction log {events_path}")
    raw["source_row"] = np.arange(len(raw))
    report.table("events").rows_read = len(raw)
    log.info("read %d log rows from %s in %.1f s", len(raw), events_path, time.perf_counter() - started)

    if items_path is not None:
        items = clean_items(read_text_items(items_path, rename=rename), report, f"item table {items_path}")
    else:
        ids = raw.loc[raw["video_id"].str.strip() != "", "video_id"].str.strip().drop_duplicates()
        items = clean_items(pd.DataFrame({"video_id": ids}), report, "item ids in the log")
        report.notes.append("no item table given: items are the distinct ids in the log, without text")
    items["media_kind"], items["has_visual"], items["has_audio"] = "none", False, False

    events = raw
    if "rating" in raw and fmt.rating_threshold is not None:
        show = ["user_id", "video_id", "ts", "rating"]
        rating = pd.to_numeric(raw["rating"], errors="coerce")
        events = skip(events, rating.isna(), report, "events", "non-numeric rating", show)
        rating = rating[events.index]
        below = rating < fmt.rating_threshold
        events = skip(events, below, report, "events", f"rating below {fmt.rating_threshold:g} (not a positive)", show)
    events = events.drop(columns=[c for c in events.columns if c not in ("source_row", "user_id", "video_id", "ts")])
    events, out_of_order = clean_events(
        events,
        report,
        set(items["video_id"]),
        ts_unit=fmt.ts_unit,
        dedupe_on=["user_id", "video_id", "ts"],
        surface="import",
    )
    if out_of_order:
        report.notes.append(f"{out_of_order} rows were out of time order for their user; kept and sorted by ts")
    signals = {
        "position": False,
        "propensity": False,
        "watch_s": False,
        "converted": False,
        "impressions": False,
        "clock_time": True,
    }
    report.notes += signal_notes(signals)
    report.check()
    log.info("imported %d events over %d items in %.1f s", len(events), len(items), time.perf_counter() - started)
    return ImportResult(items=items, events=events, report=report, signals=signals)
