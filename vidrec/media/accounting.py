"""Counts that reconcile: every file seen is accepted or quarantined, at the probe and after features.

A file can pass the probe and still fail feature extraction; without a combined summary it would
vanish between ``video_probe`` (accepted) and the items (absent). These summaries say where each
file ended, and raise when a file is unaccounted for (a bug, not bad input).
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

DELETED_PREFIX = "deleted:"  # rows kept for files no longer in the source (vidrec.media.probe.deleted_rows)


def reason_heads(reasons: pd.Series) -> dict[str, int]:
    """Quarantine reasons grouped by their leading phrase (before any ':' or '(' or ';')."""
    heads = reasons.fillna("unknown").astype(str).str.split(r"[:(;]", n=1, regex=True).str[0].str.strip()
    return {str(k): int(v) for k, v in heads.value_counts().items()}


def _seen(videos: pd.DataFrame) -> pd.DataFrame:
    return videos[~videos["reason"].fillna("").str.startswith(DELETED_PREFIX)]


def probe_summary(videos: pd.DataFrame) -> dict[str, int]:
    """files_seen = files_accepted + files_quarantined for the files present now (deleted files apart)."""
    seen = _seen(videos)
    counts = Counter(seen["status"])
    summary = {
        "files_seen": len(seen),
        "files_accepted": counts.get("accepted", 0),
        "files_quarantined": counts.get("quarantined", 0),
        "deleted": len(videos) - len(seen),
    }
    if summary["files_seen"] != summary["files_accepted"] + summary["files_quarantined"]:
        raise ValueError(f"video_probe counts do not reconcile: {summary}, statuses {dict(counts)}")
    return summary


def media_summary(videos: pd.DataFrame, features: pd.DataFrame) -> dict[str, object]:
    """Where each file seen ended: quarantined at the probe, quarantined at feature extraction, or
    accepted with features; the three add up to files_seen or this raises naming the missing ids.

    ``features`` may also hold rows for imported items without a video file (covers, text only);
    only rows of probed files count here."""
    seen = _seen(videos)
    accepted_ids = set(seen.loc[seen["status"] == "accepted", "video_id"].astype(str))
    rows = features[features["video_id"].astype(str).isin(accepted_ids)]
    failed = rows[rows["status"] != "accepted"]
    done = rows[rows["status"] == "accepted"]
    missing = sorted(accepted_ids - set(rows["video_id"].astype(str)))
    at_probe = int((seen["status"] != "accepted").sum())
    summary: dict[str, object] = {
        "files_seen": len(seen),
        "quarantined_at_probe": at_probe,
        "quarantined_at_features": len(failed),
        "accepted_with_features": len(done),
        "feature_quarantine_reasons": reason_heads(failed["reason"]),
    }
    if missing or len(seen) != at_probe + len(failed) + len(done):
        raise ValueError(
            f"media counts do not reconcile: {summary}; accepted videos without a feature row: {missing[:5]}"
        )
    return summary
