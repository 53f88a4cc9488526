"""Landed uploads as the pipeline's second raw-data source: the videos ``POST /videos`` landed under
``<landing>/videos/`` (``<video_id>.mp4`` + the form metadata in ``<video_id>.json``), listed beside the
raw-data location's videos so the next run probes, featurises and trains on them.

Every landed upload is one row (the union of the ``.mp4`` and ``.json`` stems), so files seen = location
files + landed uploads = accepted + quarantined. An upload whose record is unreadable or breaks the
upload form's rules, whose file is missing, or whose id a location file already uses, carries its
quarantine reason in ``upload_problem``; ``quarantine_uploads`` applies it after the probe, together with
the two rules only the probe's content hash can decide (bytes changed since upload, duplicate content).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from vidrec.landing import uploads_dir
from vidrec.media.file_facts import VIDEOS_COLUMNS
from vidrec.sources import FILE_COLUMNS, METADATA_COLUMNS, video_id_of

LOCATION, UPLOAD = "location", "upload"  # the ``source`` column of raw_videos and video_probe
# The bounds of the upload form (bentos/service.py ``upload``), checked again here because the landing
# folder is a plain folder: anything may have written to it.
TEXT_FIELDS = {"title": (1, 300), "category": (1, 64), "creator_id": (1, 128), "description": (0, 5000)}
REQUIRED = ("title", "category", "creator_id", "uploaded_at")
FLAGS = ("is_product", "is_live_host")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_AGAIN = "upload the video again through POST /videos"

NO_RECORD = f"landed upload without its form metadata (<video_id>.json is missing): {_AGAIN}"
NO_FILE = f"landed upload without its video file (<video_id>.mp4 is missing): {_AGAIN}"
ID_TAKEN = "landed upload's video_id is already a file of the raw-data location: rename one of the two"
DUPLICATE = "duplicate upload: the same bytes as {owner}, which the catalogue keeps; nothing to do"
CHANGED = "landed upload's bytes changed after upload (sha256 {now}… vs {then}… in its record): " + _AGAIN
FILE_EXTRA = ["source", "upload_problem", "recorded_sha256"]


@dataclass(frozen=True)
class LandedUploadSet:
    """What the landing area holds: one ``files`` row per landed upload (FILE_COLUMNS + FILE_EXTRA) and the
    typed metadata (METADATA_COLUMNS, the sidecar's types) of those whose record passed the form rules."""

    files: pd.DataFrame
    metadata: pd.DataFrame


def record_problems(record: Any, video_id: str) -> list[str]:
    """The upload form rules a landed record breaks (empty when it may enter the catalogue)."""
    if not isinstance(record, dict):
        return ["the record is not a JSON object"]
    found = [f"{name} is missing" for name in REQUIRED if record.get(name) in (None, "")]
    if "video_id" in record and video_id_of(str(record["video_id"])) != video_id:
        found.append(f"video_id {record['video_id']!r} differs from the file name {video_id!r}")
    for name, (low, high) in TEXT_FIELDS.items():
        value = record.get(name, "")
        if value in (None, "") and name in REQUIRED:
            continue  # already reported as missing
        if not isinstance(value, str):
            found.append(f"{name} must be text")
        elif not low <= len(value.strip()) <= high:
            found.append(f"{name} must have {low} to {high} characters")
    tags = record.get("tags", [])
    if not (isinstance(tags, str) or (isinstance(tags, list) and all(isinstance(t, str) for t in tags))):
        found.append("tags must be a list of text")
    for name in FLAGS:
        if not isinstance(record.get(name, False), bool):
            found.append(f"{name} must be true or false")
    price = record.get("price")
    if price is not None and (
        isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price < 0
    ):
        found.append("price must be empty or a number >= 0")
    if record.get("uploaded_at") not in (None, "") and _uploaded_at(record["uploaded_at"]) is None:
        found.append("uploaded_at must be epoch seconds or an ISO 8601 time")
    sha = record.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha)):
        found.append("sha256 must be 64 lowercase hex digits")
    return found


def _uploaded_at(value: Any) -> pd.Timestamp | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return pd.Timestamp(datetime.fromtimestamp(value, UTC)) if math.isfinite(value) and value >= 0 else None
    try:
        stamp = pd.Timestamp(str(value))
    except ValueError:
        return None
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def _metadata_row(record: dict, video_id: str) -> dict[str, Any]:
    """One sidecar-typed metadata row (tags as the sidecar's ``|``-joined text, upload time as published_at)."""
    tags = record.get("tags", [])
    tags = [t.strip() for t in tags.split(",")] if isinstance(tags, str) else tags
    price = record.get("price")
    return {
        "video_id": video_id,
        "title": record["title"].strip(),
        "description": (record.get("description") or "").strip(),
        "tags": "|".join(t for t in tags if t),
        "category": record["category"].strip(),
        "creator_id": record["creator_id"].strip(),
        "is_product": bool(record.get("is_product", False)),
        "price": float(price) if price is not None else float("nan"),
        "is_live_host": bool(record.get("is_live_host", False)),
        "published_at": _uploaded_at(record["uploaded_at"]),
    }


def _read_record(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"landed upload record {path.name} is unreadable ({error}): {_AGAIN}"


def read_landed_uploads(landing: Path) -> LandedUploadSet:
    """Every landed upload under ``<landing>/videos/``, sorted by video_id; dot-files (a writer's
    temporaries, renamed into place when complete) are not uploads yet."""
    folder = uploads_dir(landing)
    stems = (
        sorted({p.stem for p in folder.glob("*.mp4")} | {p.stem for p in folder.glob("*.json")})
        if folder.is_dir()
        else []
    )
    files, metadata = [], []
    for stem in (s for s in stems if not s.startswith(".")):
        video_id = video_id_of(stem)
        video, meta = folder / f"{stem}.mp4", folder / f"{stem}.json"
        record, problem = _read_record(meta) if meta.is_file() else (None, NO_RECORD)
        if problem is None:
            broken = record_problems(record, video_id)
            problem = f"landed upload's form fields are invalid: {'; '.join(broken)}; {_AGAIN}" if broken else None
        if problem is None and not video.is_file():
            problem = NO_FILE
        stat = video.stat() if video.is_file() else None
        files.append(
            {
                "video_id": video_id,
                "url": str(video),
                "path": str(video.resolve()) if stat else str(video.absolute()),
                "bytes": stat.st_size if stat else 0,
                "mtime_ns": stat.st_mtime_ns if stat else None,
                "extension": ".mp4",
                "source": UPLOAD,
                "upload_problem": problem,
                "recorded_sha256": record.get("sha256") if problem is None else None,
            }
        )
        if problem is None:
            metadata.append(_metadata_row(record, video_id))
    frame = pd.DataFrame(files, columns=[*FILE_COLUMNS, *FILE_EXTRA]).astype({"bytes": "Int64", "mtime_ns": "Int64"})
    meta_frame = pd.DataFrame(metadata, columns=list(METADATA_COLUMNS))
    meta_frame["published_at"] = pd.to_datetime(meta_frame["published_at"], utc=True)
    return LandedUploadSet(frame, meta_frame)


def with_uploads(location_files: pd.DataFrame, uploads: LandedUploadSet) -> pd.DataFrame:
    """The location's files followed by the landed uploads, with ``source`` and ``upload_problem``; an upload
    whose video_id a location file already has is kept as a row with ID_TAKEN (never merged, never dropped)."""
    files = location_files.assign(source=LOCATION, upload_problem=None, recorded_sha256=None)
    landed = uploads.files.copy()
    taken = landed["video_id"].isin(set(files["video_id"]))
    landed.loc[taken, "upload_problem"] = ID_TAKEN
    if landed.empty:
        return files.reset_index(drop=True)
    return pd.concat([files, landed], ignore_index=True)


def upload_metadata(uploads: LandedUploadSet, files: pd.DataFrame) -> pd.DataFrame:
    """Metadata rows of the uploads ``files`` (raw_videos) took in without a problem: an upload that landed
    after the files were listed waits for the next run instead of arriving as metadata without a file."""
    ok = files.loc[(files["source"] == UPLOAD) & files["upload_problem"].isna(), "video_id"]
    return uploads.metadata[uploads.metadata["video_id"].isin(set(ok))].reset_index(drop=True)


def probe_targets(files: pd.DataFrame) -> pd.DataFrame:
    """The rows of raw_videos the probe opens: every location file, and the uploads with a file whose id is
    their own (a missing file has nothing to probe; a taken id would collide with the location's row)."""
    skip = (files["source"] == UPLOAD) & files["upload_problem"].isin([NO_FILE, ID_TAKEN])
    return files[~skip].reset_index(drop=True)


def quarantine_uploads(probed: pd.DataFrame, files: pd.DataFrame) -> pd.DataFrame:
    """``probed`` (the probe's rows for ``probe_targets(files)``, in that order) with ``source``, the uploads'
    own reasons applied to rows the probe accepted, and a quarantined row for each upload not probed."""
    targets = probe_targets(files)
    out = probed.assign(source=targets["source"].to_numpy())
    problem = targets["upload_problem"].to_numpy()
    recorded = targets["recorded_sha256"].to_numpy()
    accepted = (out["status"] == "accepted").to_numpy()
    for index in range(len(out)):
        if not accepted[index]:
            continue
        reason = problem[index]
        sha, then = out["sha256"].iat[index], recorded[index]
        if reason is None and isinstance(then, str) and sha != then:
            reason = CHANGED.format(now=str(sha)[:12], then=then[:12])
        if reason is not None:
            out.loc[out.index[index], ["status", "reason"]] = ["quarantined", reason]
    out = _quarantine_duplicates(out)
    skipped = files[(files["source"] == UPLOAD) & files["upload_problem"].isin([NO_FILE, ID_TAKEN])]
    if skipped.empty:
        return out
    rows = pd.DataFrame(
        [
            {
                **dict.fromkeys(VIDEOS_COLUMNS),
                "video_id": r.video_id,
                "path": r.path,
                "status": "quarantined",
                "reason": r.upload_problem,
                "source": UPLOAD,
            }
            for r in skipped.itertuples(index=False)
        ],
        columns=[*VIDEOS_COLUMNS, "source"],
    )
    return pd.concat([out, rows.astype(out.dtypes.to_dict())], ignore_index=True)


def _quarantine_duplicates(videos: pd.DataFrame) -> pd.DataFrame:
    """An accepted upload with the bytes of an accepted location file, or of an accepted upload with a smaller
    id, is a duplicate: quarantined naming the video the catalogue keeps. ``duplicate_of`` then names the
    location's file first (the probe names the smallest id, and ``up_…`` sorts before most)."""
    out = videos.copy()
    hashed = out[out["sha256"].notna() & (out["status"] == "accepted")]
    order = hashed.assign(_upload=hashed["source"] == UPLOAD).sort_values(["_upload", "video_id"], kind="stable")
    owner = out["sha256"].map(order.groupby("sha256")["video_id"].first())
    other = owner.notna() & (owner != out["video_id"])
    out["duplicate_of"] = out["duplicate_of"].where(owner.isna(), owner.where(other, None))
    hit = (out["source"] == UPLOAD) & (out["status"] == "accepted") & other
    out.loc[hit, "status"] = "quarantined"
    out.loc[hit, "reason"] = [DUPLICATE.format(owner=o) for o in owner[hit]]
    return out


def upload_counts(videos: pd.DataFrame) -> dict[str, int]:
    """landed = accepted + quarantined for the upload rows of video_probe (deleted uploads apart), with
    duplicates (a kind of quarantine) named apart; raises when the counts do not reconcile."""
    rows = videos[(videos["source"] == UPLOAD) & ~videos["reason"].fillna("").str.startswith("deleted:")]
    reasons = rows["reason"].fillna("")
    counts = {
        "uploads_landed": len(rows),
        "uploads_accepted": int((rows["status"] == "accepted").sum()),
        "uploads_quarantined": int((rows["status"] != "accepted").sum()),
        "uploads_duplicate": int(reasons.str.startswith("duplicate upload").sum()),
    }
    if counts["uploads_landed"] != counts["uploads_accepted"] + counts["uploads_quarantined"]:
        raise ValueError(f"upload counts do not reconcile: {counts}")
    return counts
