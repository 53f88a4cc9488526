"""Turning raw tables into validated ones: every row is kept, as accepted or quarantined with a reason."""

from __future__ import annotations

import pandas as pd

from vidrec.privacy import pseudonymise_column
from vidrec.text import item_text

EVENT_COLUMNS = ("event_id", "ts", "user_key", "video_id", "session_id", "position", "surface",
                 "propensity", "clicked", "watch_s", "converted")


def quarantine(frame: pd.DataFrame, row_failures: dict[str, list[str]], id_column: str,
               prefix: str = "failed expectation") -> pd.DataFrame:
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
    out["text"] = [item_text(t, g.split("|") if isinstance(g, str) and g else [], d)
                   for t, g, d in zip(out["title"], out["tags"], out["description"])]
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
