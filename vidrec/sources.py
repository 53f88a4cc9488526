"""Reading a raw-data location: video files, the metadata sidecar and the event log.

A location is a local folder or any fsspec URL (``file://``, ``s3://``, ``gs://``,
``memory://`` ...) laid out as ``videos/<video_id>.<ext>``, ``metadata.csv`` (or
``metadata.jsonl``) and ``events.parquet``. Files on a remote filesystem are copied once
into a local landing folder (named by content hash) because decoders need a local path.
Sidecar columns are documented in docs/ingestion.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from vidrec.lineage import data_version, dvc_version
from vidrec.localise import localise as localise

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
METADATA_COLUMNS = (
    "video_id",
    "title",
    "description",
    "tags",
    "category",
    "creator_id",
    "is_product",
    "price",
    "is_live_host",
    "published_at",
)
RAW_EVENT_COLUMNS = (
    "event_id",
    "ts",
    "user_id",
    "video_id",
    "session_id",
    "position",
    "surface",
    "propensity",
    "clicked",
    "watch_s",
    "converted",
)
# Event columns a source may lack (left out of events.parquet), with the nullable dtype they get then.
OPTIONAL_EVENT_COLUMNS = {"position": "Int64", "propensity": "Float64", "watch_s": "Float64", "converted": "boolean"}
MEDIA_COLUMNS = ("media_kind", "media_path")  # optional sidecar columns, see read_metadata
FILE_COLUMNS = ["video_id", "url", "path", "bytes", "mtime_ns", "extension"]
_TRUE = {"true", "1", "yes", "y", "t"}


def _filesystem(location: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(str(location))
    return fs, root.rstrip("/")


def _mtime_ns(info: dict[str, Any]) -> int | None:
    """Modification time from an fsspec info dict; None when the filesystem reports none."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, (int, float)):
            return int(value * 1e9)
        if isinstance(value, str):
            try:
                return int(pd.Timestamp(value).timestamp() * 1e9)
            except ValueError:
                continue
    return None


def list_videos(location: str | Path) -> pd.DataFrame:
    """One row per file under ``<location>/videos/`` (video_id = file stem), sorted by video_id.

    ``path`` is the local path when the filesystem is local, else empty until ``localise``
    copies the file; ``url`` is where the file lives. Files of any extension are listed (a
    mis-named file is the probe's to reject, not the lister's to hide).
    """
    fs, root = _filesystem(location)
    folder = f"{root}/videos"
    if not fs.isdir(folder):
        raise FileNotFoundError(f"{location}/videos does not exist: a raw-data location needs a videos/ folder")
    local = isinstance(fs, LocalFileSystem)
    rows = []
    for name, info in sorted(fs.find(folder, detail=True).items()):
        # Every entry but a folder gets a row: links to files count as files (DVC checks data out as
        # symlinks when configured to), and a broken link, a link loop or a pipe is the probe's to
        # quarantine with a reason, not the lister's to drop (nor to crash on).
        if info.get("type") == "directory":
            continue
        base = name.rsplit("/", 1)[-1]
        stem, dot, ext = base.rpartition(".")
        # One spelling per id: macOS and some archives store names decomposed (NFD), sidecars are
        # usually composed (NFC); both must give the same video_id.
        stem = video_id_of(stem if dot else base)
        url = name if local else fs.unstrip_protocol(name)
        rows.append(
            {
                "video_id": stem,
                "url": url,
                "path": _local_path(name) if local else None,
                "bytes": int(info.get("size") or 0),
                "mtime_ns": _mtime_ns(info),
                "extension": f".{ext.lower()}" if dot else "",
            }
        )
    frame = pd.DataFrame(rows, columns=FILE_COLUMNS)
    return frame.astype({"bytes": "Int64", "mtime_ns": "Int64"})


def video_id_of(text: str) -> str:
    """The canonical spelling of a video_id: Unicode NFC, surrounding whitespace removed."""
    return unicodedata.normalize("NFC", str(text)).strip()


def _local_path(name: str) -> str:
    """The resolved path of a file, or the link's own path when the link leads nowhere (its target
    is missing, or links loop): the probe then names the link in its reason."""
    try:
        return str(Path(name).resolve(strict=True))
    except (OSError, RuntimeError):  # FileNotFoundError, ELOOP; RuntimeError: a loop on older Pythons
        return str(Path(name).absolute())


def _flag(series: pd.Series) -> pd.Series:
    return series.fillna("").astype(str).str.strip().str.lower().isin(_TRUE)


def _read_text(fs: fsspec.AbstractFileSystem, path: str) -> str:
    # Uploaded sidecars are not always UTF-8: undecodable bytes become U+FFFD (visible in the
    # text and counted in the asset's metadata) instead of failing every row of the file.
    with fs.open(path, "rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


def _jsonl_rows(text: str, where: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where} line {number} is not valid JSON ({error}); fix or remove it") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where} line {number} is not a JSON object")
        if isinstance(row.get("tags"), list):  # JSONL may carry tags as a list
            row["tags"] = "|".join(str(tag) for tag in row["tags"])
        rows.append({k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in row.items()})
    return rows


def read_metadata(location: str | Path) -> pd.DataFrame:
    """The metadata sidecar with typed columns; unparseable values become nulls that the
    ``video_metadata`` suite then reports (nothing is dropped here)."""
    fs, root = _filesystem(location)
    csv, jsonl = f"{root}/metadata.csv", f"{root}/metadata.jsonl"
    if fs.exists(csv):
        raw = pd.read_csv(io.StringIO(_read_text(fs, csv)), dtype=str, keep_default_na=False)
        where = f"{location}/metadata.csv"
    elif fs.exists(jsonl):
        where = f"{location}/metadata.jsonl"
        raw = pd.DataFrame(_jsonl_rows(_read_text(fs, jsonl), where), dtype=str)
    else:
        raise FileNotFoundError(f"no metadata.csv or metadata.jsonl in {location}")
    missing = [c for c in METADATA_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{where} lacks columns {missing}; expected {list(METADATA_COLUMNS)}")
    # media_kind / media_path are optional: rows of imported items without a video file (docs/import.md).
    frame = raw[[*METADATA_COLUMNS, *[c for c in MEDIA_COLUMNS if c in raw.columns]]].fillna("").copy()
    frame["video_id"] = frame["video_id"].map(video_id_of)
    if "media_kind" in frame:
        frame["media_kind"] = frame["media_kind"].astype(str).str.strip().str.lower().replace("", "video")
    if "media_path" in frame:  # relative paths are relative to the location, like videos/
        frame["media_path"] = [
            p if not p or p.startswith("/") or "://" in p else _joined(fs, root, p)
            for p in frame["media_path"].astype(str).str.strip()
        ]
    frame["is_product"] = _flag(frame["is_product"])
    frame["is_live_host"] = _flag(frame["is_live_host"])
    frame["price"] = pd.to_numeric(frame["price"].replace("", None), errors="coerce")
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True, errors="coerce", format="ISO8601")
    return frame


def _joined(fs: fsspec.AbstractFileSystem, root: str, relative: str) -> str:
    path = f"{root}/{relative}"
    return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)


def absent_event_columns(directory: Path) -> tuple[str, ...]:
    """The optional ``events`` columns (OPTIONAL_EVENT_COLUMNS) that ``events.parquet`` leaves out.

    Leaving a column out is how a source declares it never recorded that signal (docs/import.md):
    the pipeline then keeps it NULL instead of inventing values, the ``events`` suite accepts the
    NULLs, and the metrics and gate rules that need it are skipped with a note. A column that is
    present must be filled on every row. Only the file's schema is read."""
    path = Path(directory) / "events.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no events.parquet in {directory}")
    present = set(pq.read_schema(path).names)
    return tuple(c for c in OPTIONAL_EVENT_COLUMNS if c not in present)


def read_events(directory: Path) -> pd.DataFrame:
    """``events.parquet`` with the RAW_EVENT_COLUMNS in order and ``ts`` as UTC. An optional column the
    file leaves out (see ``absent_event_columns``) comes back as typed NULLs; any other missing column
    is an error naming the file."""
    path = directory / "events.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no events.parquet in {directory}")
    events = pd.read_parquet(path)
    missing = [c for c in RAW_EVENT_COLUMNS if c not in events.columns and c not in OPTIONAL_EVENT_COLUMNS]
    if missing:
        raise ValueError(
            f"{path} lacks columns {missing}; expected {list(RAW_EVENT_COLUMNS)} "
            f"(of which {list(OPTIONAL_EVENT_COLUMNS)} may be left out when the source lacks them)"
        )
    for column, dtype in OPTIONAL_EVENT_COLUMNS.items():
        if column not in events.columns:
            events[column] = pd.Series(pd.NA, index=events.index, dtype=dtype)
    events = events[list(RAW_EVENT_COLUMNS)].copy()
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    events["video_id"] = events["video_id"].map(video_id_of, na_action="ignore")
    return events


def source_version(location: str | Path, files: pd.DataFrame) -> dict[str, str]:
    """What data a run read: ``data_version`` (the fingerprint model labels carry) and, when the
    folder is DVC-tracked, ``dvc_md5`` from its ``.dvc`` file or ``dvc.lock``."""
    fs, root = _filesystem(location)
    if isinstance(fs, LocalFileSystem):
        # The same fingerprint the promoted model's lineage labels carry.
        version = {"data_version": data_version(Path(root))}
        dvc = dvc_version(Path(root))  # written by vidrec.lineage for DVC-tracked folders
        return {**version, "dvc_md5": dvc} if dvc else version
    digest = hashlib.sha256()
    for name in ("metadata.csv", "metadata.jsonl"):
        if fs.exists(f"{root}/{name}"):
            digest.update(fs.cat_file(f"{root}/{name}"))
    for row in files.sort_values("video_id").itertuples(index=False):
        digest.update(f"{row.video_id}:{row.bytes}:{row.mtime_ns}\n".encode())
    return {"data_version": digest.hexdigest()[:16]}
