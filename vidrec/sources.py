"""Reading a raw-data directory: video files, the metadata sidecar and the event log.

Layout: ``videos/<video_id>.<ext>``, ``metadata.csv`` (or ``.jsonl``), ``events.parquet``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
METADATA_COLUMNS = ("video_id", "title", "description", "tags", "category", "creator_id",
                    "is_product", "price", "is_live_host", "published_at")
RAW_EVENT_COLUMNS = ("event_id", "ts", "user_id", "video_id", "session_id", "position", "surface",
                     "propensity", "clicked", "watch_s", "converted")
_TRUE = {"true", "1", "yes", "y", "t"}


def list_videos(directory: Path) -> pd.DataFrame:
    """One row per file under ``videos/`` (video_id = file stem), sorted by video_id."""
    folder = directory / "videos"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: a raw-data directory needs a videos/ folder")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return pd.DataFrame({
        "video_id": [p.stem for p in files],
        "path": [str(p.resolve()) for p in files],
        "bytes": [p.stat().st_size for p in files],
        "extension": [p.suffix.lower() for p in files],
    }, columns=["video_id", "path", "bytes", "extension"])


def _flag(series: pd.Series) -> pd.Series:
    return series.fillna("").astype(str).str.strip().str.lower().isin(_TRUE)


def read_metadata(directory: Path) -> pd.DataFrame:
    """The metadata sidecar with typed columns; unparseable values become nulls that the
    ``video_metadata`` suite then reports (nothing is dropped here)."""
    csv, jsonl = directory / "metadata.csv", directory / "metadata.jsonl"
    if csv.exists():
        # Raw bytes as latin-1 never fail to decode; text normalisation repairs them later.
        raw = pd.read_csv(csv, dtype=str, keep_default_na=False, encoding="utf-8", encoding_errors="replace")
    elif jsonl.exists():
        raw = pd.read_json(jsonl, lines=True, dtype=False).astype(str)
    else:
        raise FileNotFoundError(f"no metadata.csv or metadata.jsonl in {directory}")
    missing = [c for c in METADATA_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"metadata in {directory} lacks columns {missing}; expected {list(METADATA_COLUMNS)}")
    frame = raw[list(METADATA_COLUMNS)].copy()
    frame["is_product"] = _flag(frame["is_product"])
    frame["is_live_host"] = _flag(frame["is_live_host"])
    frame["price"] = pd.to_numeric(frame["price"].replace("", None), errors="coerce")
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True, errors="coerce")
    return frame


def read_events(directory: Path) -> pd.DataFrame:
    path = directory / "events.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no events.parquet in {directory}")
    events = pd.read_parquet(path)
    missing = [c for c in RAW_EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; expected {list(RAW_EVENT_COLUMNS)}")
    events = events[list(RAW_EVENT_COLUMNS)].copy()
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    return events
