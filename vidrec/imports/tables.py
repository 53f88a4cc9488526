"""The tables every importer produces, and the row checks they share (missing fields, unknown ids,
duplicates, unparseable values, out-of-order timestamps): each bad row is skipped with a counted reason.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.imports.report import ImportReport
from vidrec.sources import METADATA_COLUMNS, OPTIONAL_EVENT_COLUMNS, RAW_EVENT_COLUMNS
from vidrec.text import item_text

# video_metadata columns, then where the item's media is and which modalities it can have.
ITEM_COLUMNS = (*METADATA_COLUMNS, "media_path", "media_kind", "has_visual", "has_audio", "text")
MEDIA_KINDS = ("video", "image", "none")
# Optional signals of the events contract: absent in most public logs, and never invented here.
# (position too, but every native log has one: vidrec.sources.OPTIONAL_EVENT_COLUMNS lists all four.)
OPTIONAL_SIGNALS = ("propensity", "watch_s", "converted")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


@dataclass
class ImportResult:
    """``items`` (ITEM_COLUMNS, one row per accepted item), ``events`` (the raw ``events`` contract with
    the source's user ids, sorted by time), ``signals`` (which optional columns the source really has)."""

    items: pd.DataFrame
    events: pd.DataFrame
    report: ImportReport
    signals: dict[str, bool] = field(default_factory=dict)

    def positives(self) -> pd.DataFrame:
        """Clicked (positive) interactions as ``user_id, video_id, ts`` in time order, for the protocols."""
        clicked = self.events[self.events["clicked"].astype(bool)]
        return clicked[["user_id", "video_id", "ts"]].reset_index(drop=True)

    def absent_event_columns(self) -> tuple[str, ...]:
        """The optional ``events`` columns this source does not have (``signals`` says False)."""
        return tuple(c for c in OPTIONAL_EVENT_COLUMNS if self.signals.get(c) is False)

    def write_raw_dir(self, directory: Path) -> Path:
        """Write ``metadata.csv`` and ``events.parquet`` (and hard-link or copy ``videos/`` and ``covers/``) in
        the layout that ``vidrec.sources`` and the pipeline's raw assets read.

        ``events.parquet`` leaves out the optional columns the source lacks (``absent_event_columns``): that
        is how the pipeline learns to keep them NULL and skip what needs them (``vidrec.sources``).

        ``metadata.csv`` carries ``media_kind`` and ``media_path`` so the pipeline knows which rows have no
        video file on purpose: a cover (``image``, its file under ``covers/``) becomes a one-frame video
        shard and a text-only item (``none``) an all-zero one, both with the missing modalities masked,
        instead of being quarantined as a metadata row without a file."""
        directory = Path(directory)
        (directory / "videos").mkdir(parents=True, exist_ok=True)
        meta = self.items[list(METADATA_COLUMNS)].copy()
        meta["published_at"] = meta["published_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["media_kind"], meta["media_path"] = self.items["media_kind"].to_numpy(), ""
        with_media = (self.items["media_kind"] != "none") & ~blank(self.items["media_path"])
        for row in self.items[with_media].itertuples():
            folder = "videos" if row.media_kind == "video" else "covers"
            relative = f"{folder}/{row.video_id}{Path(row.media_path).suffix.lower()}"
            _place(Path(row.media_path), directory / relative)
            if row.media_kind == "image":  # a video is found by its name under videos/
                meta.loc[row.Index, "media_path"] = relative
        meta.to_csv(directory / "metadata.csv", index=False)
        absent = self.absent_event_columns()
        columns = [c for c in RAW_EVENT_COLUMNS if c not in absent]
        self.events[columns].to_parquet(directory / "events.parquet", index=False)
        return directory


def _place(source: Path, target: Path) -> None:
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:  # a hard link is a plain file to every lister (symlinks are not) and costs no space
        os.link(source, target)
    except OSError:  # another filesystem
        shutil.copyfile(source, target)


def blank(value: pd.Series) -> pd.Series:
    """True where a raw value is missing: null, NaN, or only whitespace."""
    text = value.astype("string[pyarrow]").str.strip()  # Arrow string kernels: ~10x faster than object str
    return (text.isna() | text.isin(["", "nan", "NaN", "None", "null"])).fillna(True).astype(bool)


def missing_array(kind: str, n: int) -> pd.api.extensions.ExtensionArray:
    """``n`` missing values of a nullable dtype (built from masks: ``pd.array([pd.NA] * n)`` is slow)."""
    mask = np.ones(n, dtype=bool)
    if kind == "boolean":
        return pd.arrays.BooleanArray(np.zeros(n, dtype=bool), mask)
    if kind == "Int64":
        return pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), mask)
    return pd.arrays.FloatingArray(np.zeros(n, dtype=np.float64), mask)


def parse_flag(values: pd.Series) -> pd.Series:
    """true/false words or 1/0 to a nullable boolean; anything else becomes <NA>."""
    text = values.astype(str).str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(_TRUE)] = True
    out[text.isin(_FALSE)] = False
    return out


def parse_ts(values: pd.Series, unit: str | None) -> pd.Series:
    """Timestamps as UTC: numbers are epoch ``unit`` (s, ms, us); strings are ISO 8601. Bad ones become NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    numeric = pd.to_numeric(values, errors="coerce")
    if unit and numeric.notna().any():
        out = pd.to_datetime(numeric, unit=unit, utc=True, errors="coerce")
        text = numeric.isna() & values.notna()
        if text.any():  # a mixed column: parse the non-numeric cells as ISO strings
            out[text] = pd.to_datetime(values[text], utc=True, errors="coerce", format="ISO8601")
        return out
    return pd.to_datetime(values.astype("string"), utc=True, errors="coerce", format="ISO8601")


def skip(
    frame: pd.DataFrame, bad: pd.Series, report: ImportReport, table: str, reason: str, show: list[str]
) -> pd.DataFrame:
    """Drop the rows where ``bad`` holds, recording them (``source_row`` + ``show`` columns) with ``reason``."""
    bad = bad.fillna(True).astype(bool)
    if bad.any():
        report.reject(table, frame.loc[bad, ["source_row", *[c for c in show if c in frame]]], reason)
    return frame[~bad]


def require(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    """Raise naming the input when whole columns are missing (no row could be imported)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{source} lacks required column(s) {missing}; it has {list(frame.columns)}")


def clean_items(raw: pd.DataFrame, report: ImportReport, source: str) -> pd.DataFrame:
    """Items with ``video_id`` (+ any METADATA_COLUMNS, media_path, media_kind): missing or duplicate ids
    are skipped; absent metadata columns become nulls; typed like ``vidrec.sources.read_metadata``."""
    require(raw, ["video_id"], source)
    items = raw.copy()
    items["source_row"] = np.arange(len(items))
    report.table("items").rows_read += len(items)
    show = [c for c in ("video_id", "title") if c in items]
    items["video_id"] = items["video_id"].astype("string").str.strip()
    items = skip(items, blank(items["video_id"]), report, "items", "missing video_id", show)
    items = skip(
        items, items["video_id"].duplicated(keep="first"), report, "items", "duplicate video_id (first row kept)", show
    )
    for column in (*METADATA_COLUMNS, "media_path"):
        if column not in items:
            items[column] = None
    items["title"] = items["title"].where(~blank(items["title"]), None)
    for column in ("is_product", "is_live_host"):
        items[column] = parse_flag(items[column]).fillna(False).astype(bool)
    items["price"] = pd.to_numeric(items["price"], errors="coerce")
    items["published_at"] = parse_ts(items["published_at"], unit="s")
    if "media_kind" not in items:
        items["media_kind"] = np.where(items["media_path"].isna(), "none", "video")
    unknown = ~items["media_kind"].isin(MEDIA_KINDS)
    items = skip(items, unknown, report, "items", f"media_kind not one of {list(MEDIA_KINDS)}", [*show, "media_kind"])
    items["has_visual"] = items["media_kind"] != "none"
    # Audio is known only after probing a video; images and text-only items have none.
    items["has_audio"] = pd.Series(
        np.where(items["media_kind"] == "video", pd.NA, False), index=items.index, dtype="boolean"
    )
    items["text"] = [
        item_text(t, g.split("|") if isinstance(g, str) and g else [], d)
        for t, g, d in zip(items["title"].fillna(""), items["tags"], items["description"].fillna(""))
    ]
    report.table("items").accepted += len(items)
    return items[list(ITEM_COLUMNS)].sort_values("video_id").reset_index(drop=True)


def clean_events(
    raw: pd.DataFrame,
    report: ImportReport,
    known_items: set[str] | None,
    *,
    ts_unit: str | None,
    dedupe_on: list[str],
    surface: str,
) -> tuple[pd.DataFrame, int]:
    """Check event rows (``source_row, user_id, video_id, ts`` + any contract columns) and fill the rest
    of the ``events`` contract. Returns the accepted events in time order and how many rows were out of
    time order per user in the file (they are kept and sorted, not dropped)."""
    events = raw  # the caller counted rows_read: it may have skipped rows (e.g. by rating) before this
    show = ["user_id", "video_id", "ts"]
    for column in ("user_id", "video_id", "ts"):
        events = skip(events, blank(events[column]), report, "events", f"missing {column}", show)
    events = events.assign(
        user_id=events["user_id"].astype("string[pyarrow]").str.strip().astype(object),
        video_id=events["video_id"].astype("string[pyarrow]").str.strip().astype(object),
    )
    parsed = parse_ts(events["ts"], ts_unit)
    events = skip(events, parsed.isna(), report, "events", "unparseable timestamp", show)
    events = events.assign(ts=parsed[parsed.notna()])
    if known_items is not None:
        unknown = ~events["video_id"].isin(known_items)
        events = skip(events, unknown, report, "events", "unknown item id (not in the item table)", show)
    events = skip(
        events,
        events.duplicated(subset=dedupe_on, keep="first"),
        report,
        "events",
        f"duplicate event (same {', '.join(dedupe_on)}; first kept)",
        show,
    )
    # Out-of-order rows are legal input (logs are often merged from shards); count them, then sort.
    previous_max = events.groupby("user_id", sort=False)["ts"].cummax().groupby(events["user_id"]).shift()
    out_of_order = int((events["ts"] < previous_max).sum())
    events = events.sort_values(["ts", "source_row"], kind="stable")
    if "event_id" not in events:
        events["event_id"] = "r" + events["source_row"].astype(str)
    if "session_id" not in events:
        # Without sessions in the source, one user-day is one session (documented in docs/import.md).
        codes, days = pd.factorize(events["ts"].dt.floor("D"))  # format each distinct day once
        events["session_id"] = events["user_id"] + "@" + np.asarray(days.strftime("%Y-%m-%d"), dtype=object)[codes]
    if "position" not in events:
        events["position"] = missing_array("Int64", len(events))
    if "surface" not in events:
        events["surface"] = surface
    if "clicked" not in events:
        events["clicked"] = True  # an implicit-feedback log lists only positive interactions
    for column in OPTIONAL_SIGNALS:
        if column not in events:
            events[column] = missing_array("boolean" if column == "converted" else "Float64", len(events))
    report.table("events").accepted += len(events)
    return events[list(RAW_EVENT_COLUMNS)].reset_index(drop=True), out_of_order


def signal_notes(signals: dict[str, bool]) -> list[str]:
    """One sentence per absent signal, naming the metrics that will be skipped because of it."""
    skipped = {
        "position": "no position column: the ranker trains at the serving position and the logging "
        "policy's ordering is not evaluated",
        "propensity": "no propensity column: inverse-propensity (IPS/SNIPS) estimates are skipped",
        "watch_s": "no watch_s column: watch-time metrics are skipped",
        "converted": "no converted column: conversion metrics are skipped",
        "impressions": "positives only (no non-clicked impressions): click AUC and CTR are skipped",
        "clock_time": "timestamps are sequence positions, not clock times: the global temporal split "
        "is refused (use leave-one-out or a random split)",
    }
    return [
        skipped[name] + ("" if name == "clock_time" else " (never estimated or filled in)")
        for name, present in signals.items()
        if not present and name in skipped
    ]
