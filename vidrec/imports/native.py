"""The native format, from a local folder or any fsspec URL (s3://, gs://, memory://, file://):

    <root>/videos/<video_id>.<ext>          video files, or cover images (a one-frame video)
    <root>/metadata.csv | .jsonl | .parquet  video_id + any video_metadata columns
    <root>/events.parquet | .csv | .jsonl    the ``events`` contract with raw ``user_id``

position, propensity, watch_s and converted may be absent (or empty in every row); the result's ``signals``
say so, ``write_raw_dir`` leaves them out of events.parquet, and the metrics that need them are skipped,
never filled in.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd

from vidrec.imports.covers import IMAGE_EXTENSIONS
from vidrec.imports.report import ImportReport
from vidrec.imports.tables import (
    OPTIONAL_SIGNALS,
    ImportResult,
    clean_events,
    clean_items,
    parse_flag,
    require,
    signal_notes,
    skip,
)
from vidrec.media.hashing import stat_files, unreadable_reason
from vidrec.sources import VIDEO_EXTENSIONS, list_videos, localise, video_id_of

log = logging.getLogger(__name__)

REQUIRED_EVENT_COLUMNS = ("event_id", "ts", "user_id", "video_id", "session_id", "surface", "clicked")
UNREADABLE_MEDIA = (
    "media file cannot be read (a broken symbolic link, a link loop or not a regular file): "
    "restore or replace it; remove the file to import the item as text only"
)


def _read_any(fs: fsspec.AbstractFileSystem, root: str, stem: str) -> tuple[pd.DataFrame, str]:
    for suffix in (".parquet", ".csv", ".jsonl"):
        path = f"{root}/{stem}{suffix}"
        if fs.exists(path):
            with fs.open(path, "rb") as handle:
                if suffix == ".parquet":
                    frame = pd.read_parquet(handle)
                elif suffix == ".csv":
                    frame = pd.read_csv(handle, dtype=str, keep_default_na=False, encoding_errors="replace")
                else:
                    frame = pd.read_json(handle, lines=True, dtype=False)
            return frame, path
    raise FileNotFoundError(f"no {stem}.parquet, {stem}.csv or {stem}.jsonl under {root}")


def _media(location: str, fs: fsspec.AbstractFileSystem, root: str, cache_dir: Path | None) -> pd.DataFrame:
    """video_id, media_path (a local path), media_kind for each file under videos/, listed by the pipeline's
    own lister (``vidrec.sources.list_videos``); remote files are copied into ``cache_dir`` by
    ``vidrec.sources.localise`` because the decoders need local files."""
    columns = ["video_id", "media_path", "media_kind", "extension"]
    if not fs.isdir(f"{root}/videos"):
        return pd.DataFrame(columns=columns)
    files = list_videos(location)
    if files["path"].isna().any():
        if cache_dir is None:
            raise ValueError(f"{location} is remote: pass cache_dir, a local folder to copy its media into")
        files = localise(files, Path(cache_dir))
    kind = np.where(
        files["extension"].isin(VIDEO_EXTENSIONS),
        "video",
        np.where(files["extension"].isin(IMAGE_EXTENSIONS), "image", "unknown"),
    )
    return pd.DataFrame(
        {
            "video_id": files["video_id"],
            "media_path": files["path"],
            "media_kind": kind,
            "extension": files["extension"],
        },
        columns=columns,
    )


def _join_media(meta: pd.DataFrame, media: pd.DataFrame, report: ImportReport) -> tuple[pd.DataFrame, set[str]]:
    """Attach each metadata row's media file; files that cannot be attached are counted in ``media``.
    Also returns the video_ids whose file is listed but unreadable (their items must be skipped)."""
    table = report.table("media")
    table.rows_read = len(media)
    media = media.assign(source_row=np.arange(len(media)))
    media = skip(
        media,
        media["media_kind"] == "unknown",
        report,
        "media",
        f"not a video ({', '.join(VIDEO_EXTENSIONS)}) or image ({', '.join(IMAGE_EXTENSIONS)}) file",
        ["video_id", "media_path"],
    )
    media = skip(
        media,
        media["video_id"].duplicated(keep="first"),
        report,
        "media",
        "two files for one video_id (first in name order kept)",
        ["video_id", "media_path"],
    )
    media = skip(
        media,
        ~media["video_id"].isin(set(meta["video_id"])),
        report,
        "media",
        "file has no metadata row",
        ["video_id", "media_path"],
    )
    table.accepted = len(media)
    # A file that is listed but cannot be read does not make its item text-only unnoticed: the file is
    # counted here and the item is skipped by the caller (``_skip_unreadable``), like the pipeline's probe.
    stats = stat_files(media["media_path"].astype(str).tolist()).set_index(media.index)
    media = media.assign(
        problem=[None if ok else unreadable_reason(row) for ok, row in zip(stats["is_file"], stats.to_dict("records"))]
    )
    bad = media["problem"].notna()
    unreadable = set(media.loc[bad, "video_id"].astype(str))
    if bad.any():
        examples = "; ".join(f"{row.video_id}: {row.problem}" for row in media[bad].head(3).itertuples())
        report.notes.append(f"{int(bad.sum())} media files cannot be read and their items are skipped, e.g. {examples}")
    media = skip(media, bad, report, "media", UNREADABLE_MEDIA, ["video_id", "media_path", "problem"])
    table.accepted = len(media)
    out = meta.drop(columns=[c for c in ("media_path", "media_kind") if c in meta])
    out = out.merge(media[["video_id", "media_path", "media_kind"]], on="video_id", how="left")
    no_file = out["media_path"].isna()
    if no_file.any():
        report.notes.append(
            f"{int(no_file.sum())} items have no media file: their visual and audio "
            "modalities are marked missing (text only)"
        )
    out["media_kind"] = out["media_kind"].fillna("none")
    return out, unreadable


def _skip_unreadable(items: pd.DataFrame, ids: set[str], meta: pd.DataFrame, report: ImportReport) -> pd.DataFrame:
    """Skip the items whose media file is listed but unreadable (counted in the media table too)."""
    bad = items["video_id"].astype(str).isin(ids)
    if not bad.any():
        return items
    first_row = {v: i for i, v in reversed(list(enumerate(meta["video_id"].astype(str))))}
    rows = items.loc[bad, ["video_id", "title"]]
    rows.insert(0, "source_row", rows["video_id"].astype(str).map(first_row).to_numpy())
    report.reject("items", rows, UNREADABLE_MEDIA)
    report.table("items").accepted -= int(bad.sum())
    return items[~bad].reset_index(drop=True)


def _empty(values: pd.Series) -> pd.Series:
    return (values.isna() | (values.str.strip() == "")).fillna(True).astype(bool)


def _typed_events(raw: pd.DataFrame, report: ImportReport) -> tuple[pd.DataFrame, dict[str, bool]]:
    """Parse the contract's typed columns; a value that does not parse skips its row with a reason."""
    events = raw.astype({c: "string" for c in raw.columns if c not in ("ts",)})
    show = ["event_id", "user_id", "video_id"]
    clicked = parse_flag(events["clicked"])
    events = skip(events, clicked.isna(), report, "events", "clicked is not true/false", show + ["clicked"])
    events = events.assign(clicked=clicked[events.index].astype(bool))
    signals = {"position": "position" in events and not _empty(events["position"]).all()}
    if signals["position"]:
        position = pd.to_numeric(events["position"], errors="coerce")
        events = skip(events, position.isna(), report, "events", "non-numeric position", show + ["position"])
        events = events.assign(position=position[events.index].astype("Int64"))
    else:
        events = events.drop(columns=["position"], errors="ignore")
    for column in OPTIONAL_SIGNALS:
        signals[column] = column in events and not _empty(events[column]).all()
        if not signals[column]:
            events = events.drop(columns=[column], errors="ignore")
            continue
        value = parse_flag(events[column]) if column == "converted" else pd.to_numeric(events[column], errors="coerce")
        events = skip(
            events,
            value.isna() & ~_empty(events[column]),
            report,
            "events",
            f"{column} does not parse",
            show + [column],
        )
        events = events.assign(**{column: value[events.index]})
    return events, signals


def import_native(location: str, cache_dir: Path | None = None, ts_unit: str = "s") -> ImportResult:
    """Import a native-format folder or fsspec URL (see the module docstring)."""
    started = time.perf_counter()
    fs, root = fsspec.core.url_to_fs(str(location))
    root = root.rstrip("/")
    report = ImportReport(source=str(location), format="native")
    meta_raw, meta_path = _read_any(fs, root, "metadata")
    require(meta_raw, ["video_id"], f"metadata table {meta_path}")
    media = _media(str(location), fs, root, cache_dir)
    meta_raw = meta_raw.astype({"video_id": "string"})
    meta_raw["video_id"] = meta_raw["video_id"].map(video_id_of, na_action="ignore").astype("string")
    joined, unreadable = _join_media(meta_raw, media, report)
    items = clean_items(joined, report, f"metadata table {meta_path}")
    items = _skip_unreadable(items, unreadable, meta_raw, report)

    raw, events_path = _read_any(fs, root, "events")
    if "user_id" not in raw and "user_key" in raw:  # an export of already-pseudonymised interactions
        raw = raw.rename(columns={"user_key": "user_id"})
        report.notes.append("events carry user_key (already pseudonymised); it is used as the user id")
    require(raw, list(REQUIRED_EVENT_COLUMNS), f"event table {events_path}")
    raw = raw.assign(source_row=np.arange(len(raw)))
    if "video_id" in raw:  # the same NFC spelling as the items' ids
        raw["video_id"] = raw["video_id"].map(lambda v: video_id_of(v) if isinstance(v, str) else v)
    report.table("events").rows_read = len(raw)
    typed, signals = _typed_events(raw, report)
    events, out_of_order = clean_events(
        typed, report, set(items["video_id"]), ts_unit=ts_unit, dedupe_on=["event_id"], surface="import"
    )
    if out_of_order:
        report.notes.append(f"{out_of_order} rows were out of time order for their user; kept and sorted by ts")
    signals["impressions"] = bool((~events["clicked"]).any())
    signals["clock_time"] = True
    report.notes += signal_notes(signals)
    report.check()
    log.info(
        "imported %d items and %d events from %s in %.1f s",
        len(items),
        len(events),
        location,
        time.perf_counter() - started,
    )
    return ImportResult(items=items, events=events, report=report, signals=signals)
