"""Turning raw tables into validated ones: every row is kept, as accepted or quarantined with a reason."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vidrec.privacy import pseudonymise_column
from vidrec.sources import RAW_EVENT_COLUMNS
from vidrec.text import item_text

# The source columns with the user pseudonymised: user_id becomes user_key, in the same place.
EVENT_COLUMNS = tuple("user_key" if c == "user_id" else c for c in RAW_EVENT_COLUMNS)


def quarantine(
    frame: pd.DataFrame, row_failures: dict[str, list[str]], id_column: str, prefix: str = "failed expectation"
) -> pd.DataFrame:
    """Mark rows named in ``row_failures`` as quarantined (keeping any earlier reason)."""
    out = frame.copy()
    if "status" not in out:
        out["status"], out["reason"] = "accepted", None
    ids = out[id_column].astype(str)
    for row_id, failures in row_failures.items():
        hit = (ids == row_id) & (out["status"] == "accepted")
        out.loc[hit, "status"] = "quarantined"
        out.loc[hit, "reason"] = f"{prefix}: " + "; ".join(failures)
    return out


def with_text(metadata: pd.DataFrame) -> pd.DataFrame:
    """Adds the normalised item text the text encoder reads."""
    out = metadata.copy()
    out["text"] = [
        item_text(t, g.split("|") if isinstance(g, str) and g else [], d)
        for t, g, d in zip(out["title"], out["tags"], out["description"])
    ]
    return out


def prepare_events(raw: pd.DataFrame, key: str, accepted_videos: set[str]) -> pd.DataFrame:
    """Pseudonymise users before anything is stored, then quarantine events whose video is
    unknown or quarantined (they cannot be featurised)."""
    events = raw.copy()
    events.insert(2, "user_key", pseudonymise_column(events.pop("user_id"), key))
    events = events[list(EVENT_COLUMNS)]
    events["status"], events["reason"] = "accepted", None
    unknown = ~events["video_id"].isin(accepted_videos)
    events.loc[unknown, "status"] = "quarantined"
    events.loc[unknown, "reason"] = "video is not an accepted video (missing file, quarantined, or no metadata)"
    return events.sort_values(["ts", "event_id"], kind="stable").reset_index(drop=True)


NO_METADATA_REASON = (
    "no metadata row for this file in the sidecar: add a row with this video_id to "
    "metadata.csv (or .jsonl); the file is picked up on the next run"
)
NO_FILE_REASON = (
    "no video file for this metadata row: add videos/<video_id>.mp4, or declare media_kind image "
    "or none for an item without video (docs/import.md)"
)


def quarantine_unmatched(frame: pd.DataFrame, known_ids: set[str], reason: str) -> pd.DataFrame:
    """Quarantine accepted rows whose video_id is not in ``known_ids`` (a file without a
    metadata row, or a metadata row without a file), keeping every other column."""
    out = frame.copy()
    if "status" not in out:
        out["status"], out["reason"] = "accepted", None
    hit = ~out["video_id"].astype(str).isin(known_ids) & (out["status"] == "accepted")
    out.loc[hit, "status"] = "quarantined"
    out.loc[hit, "reason"] = reason
    return out


def duplicate_groups(videos: pd.DataFrame) -> pd.DataFrame:
    """One row per set of video_ids sharing the same bytes: sha256, video_ids, count."""
    dup = videos[videos["sha256"].notna() & videos["sha256"].duplicated(keep=False)]
    groups = dup.groupby("sha256")["video_id"].apply(lambda ids: ", ".join(sorted(ids)))
    counts = dup.groupby("sha256").size()
    return pd.DataFrame(
        {"sha256": groups.index, "video_ids": groups.to_numpy(), "count": counts.loc[groups.index].to_numpy()}
    )


def repaired_text_count(metadata: pd.DataFrame) -> int:
    """Rows whose title, description or tags held bytes that were not UTF-8 (now U+FFFD)."""
    columns = [c for c in ("title", "description", "tags") if c in metadata]
    bad = pd.Series(False, index=metadata.index)
    for column in columns:
        bad |= metadata[column].fillna("").astype(str).str.contains("\ufffd", regex=False)
    return int(bad.sum())


MEDIA_LESS_KINDS = ("image", "none")  # sidecar media_kind of imported items without a video file


def media_less_ids(metadata: pd.DataFrame) -> set[str]:
    """video_ids whose accepted sidecar row declares no video file (``media_kind`` image: a cover, or
    none: text only). Always empty for a native video catalogue, whose sidecar has no ``media_kind``."""
    if "media_kind" not in metadata:
        return set()
    hit = metadata["media_kind"].isin(MEDIA_LESS_KINDS)
    if "status" in metadata:
        hit &= metadata["status"] == "accepted"
    return set(metadata.loc[hit, "video_id"].astype(str))


def quarantine_media(metadata: pd.DataFrame, file_ids: set[str]) -> pd.DataFrame:
    """The file rule for metadata rows: a row needs a file in videos/ (NO_FILE_REASON) unless it declares
    ``media_kind`` image (with a ``media_path``) or none; such a row must then not also have a file, and an
    unknown ``media_kind`` is refused. Every other column is kept."""
    out = metadata.copy()
    if "status" not in out:
        out["status"], out["reason"] = "accepted", None
    if "media_kind" not in out:
        return quarantine_unmatched(out, file_ids, NO_FILE_REASON)
    kind = out["media_kind"].astype(str)
    path = out["media_path"].fillna("").astype(str) if "media_path" in out else pd.Series("", index=out.index)
    has_file = out["video_id"].astype(str).isin(file_ids)
    rules = [
        (~kind.isin(("video", *MEDIA_LESS_KINDS)), "media_kind is not one of video, image, none"),
        ((kind == "image") & (path.str.strip() == ""), "media_kind is image but media_path is empty"),
        (kind.isin(MEDIA_LESS_KINDS) & has_file, "media_kind says no video file, but videos/ has one for this row"),
        ((kind == "video") & ~has_file, NO_FILE_REASON),
    ]
    for hit, reason in rules:
        hit = hit & (out["status"] == "accepted")
        out.loc[hit, "status"] = "quarantined"
        out.loc[hit, "reason"] = reason
    return out


def accepted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The accepted rows of a table that carries ``status``/``reason``, without those two columns."""
    return frame[frame["status"] == "accepted"].drop(columns=["status", "reason"]).reset_index(drop=True)


def landed_events(landing: Path, accepted_videos: set[str]) -> tuple[pd.DataFrame, list[str], dict[str, int]]:
    """Events the service landed (already pseudonymised), its logged impressions joined to the feedback
    that names them (``vidrec/feedback.py``), with ``status``/``reason`` by the same video rule as the log;
    the landing lines that could not be read (a write cut short by a crash); and the join's counts."""
    from vidrec.feedback import join_feedback  # both import this module's column list
    from vidrec.impressions import read_landed_impressions
    from vidrec.landing import read_landed_events

    landed = read_landed_events(landing)
    shown = read_landed_impressions(landing)
    events, counts = join_feedback(shown.rows, landed.rows)
    unknown = ~events["video_id"].isin(accepted_videos) & (events["status"] == "accepted")
    events.loc[unknown, "status"] = "quarantined"
    events.loc[unknown, "reason"] = "video is not an accepted video (missing file, quarantined, or no metadata)"
    return events, landed.bad_lines + shown.bad_lines, counts


def quarantine_duplicate_events(events: pd.DataFrame) -> pd.DataFrame:
    """A landed event can repeat one already in the log (a client retry): the first copy wins."""
    repeat = events["event_id"].duplicated(keep="first") & (events["status"] == "accepted")
    events.loc[repeat, "status"] = "quarantined"
    events.loc[repeat, "reason"] = "duplicate event_id (an earlier copy was accepted)"
    return events
