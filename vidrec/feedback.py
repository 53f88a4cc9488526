"""Logged impressions joined to the feedback that names them: the service's own traffic as ``events`` rows.

For traffic the service logged, the impression log says what was shown (position, propensity, model,
arm) and ``/events`` says what happened (click, watch time, conversion) with the ``request_id``. The join
turns each logged impression into one ``events`` row, so non-clicked impressions come from the log rather
than from inference:
  - ``event_id`` is ``<request_id>:<position>``, ``session_id`` the request id (one slate), ``surface``
    "recommend", ``ts`` when it was shown;
  - feedback on the same shown item merges: clicked or converted if any report says so, watch time the
    largest reported (clients report progress);
  - feedback with a ``request_id`` that no landed impression has is quarantined with a reason (the
    request's impressions were lost in a crash within the log's flush interval, or not landed yet), as is
    feedback on a video the named slate did not show (the service refuses both at ``/events``; a row can
    still arrive through an older client or a copied landing file);
  - a repeated impression row (the same request and position landed twice) is quarantined.
Feedback without a ``request_id`` passes through unchanged: it is its own impression row, as before.
Counts reconcile: every landed impression is an accepted row or a quarantined one, and every landed
event with a ``request_id`` is joined or quarantined.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vidrec.ingest import EVENT_COLUMNS

NO_IMPRESSION = "request_id has no logged impression (lost in a crash before the log's flush, or not landed yet)"
NOT_IN_SLATE = "video was not in the slate of its request_id"
DUPLICATE_IMPRESSION = "duplicate impression row (the same request_id and position landed twice)"


def join_feedback(impressions: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """``events`` rows (``EVENT_COLUMNS`` + status/reason) from the logged impressions and the landed events
    (which carry ``request_id``, NULL when absent), and the counts that reconcile them. The video rule
    (``vidrec.ingest.landed_events``) applies afterwards, to impression and standalone rows alike."""
    has_request = events["request_id"].notna() & (events["request_id"].astype(str) != "")
    standalone = events[~has_request].drop(columns=["request_id"]).assign(status="accepted", reason=None)
    feedback = events[has_request]
    shown = impressions.assign(status="accepted", reason=None).reset_index(drop=True)
    repeat = shown.duplicated(["request_id", "position"], keep="first")
    shown.loc[repeat, ["status", "reason"]] = ["quarantined", DUPLICATE_IMPRESSION]
    live = shown[~repeat]

    known_requests = set(live["request_id"])
    joined, matched = _with_outcomes(live, feedback)
    orphan = feedback[~matched].assign(status="quarantined")
    orphan["reason"] = [NOT_IN_SLATE if r in known_requests else NO_IMPRESSION for r in orphan["request_id"]]
    rows = pd.concat(
        [
            _as_events(joined),
            _as_events(shown[repeat].assign(clicked=False, watch_s=0.0, converted=False)),
        ],
        ignore_index=True,
    )
    rows["status"] = list(joined["status"]) + list(shown.loc[repeat, "status"])
    rows["reason"] = list(joined["reason"]) + list(shown.loc[repeat, "reason"])
    parts = [standalone, orphan.drop(columns=["request_id"]), rows]
    out = pd.concat([p for p in parts if len(p)] or parts[-1:], ignore_index=True)
    counts = {
        "impressions_landed": len(impressions),
        "impressions_accepted": int((rows["status"] == "accepted").sum()),
        "impressions_quarantined": int((rows["status"] != "accepted").sum()),
        "impressions_clicked": int(rows.loc[rows["status"] == "accepted", "clicked"].sum()),
        "feedback_with_request_id": len(feedback),
        "feedback_joined": int(matched.sum()),
        "feedback_quarantined": len(orphan),
        "feedback_without_request_id": len(standalone),
    }
    return out, counts


def logged_impressions(impressions: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The impression log (``IMPRESSION_COLUMNS``, repeated rows dropped) with each shown item's merged
    feedback (clicked, watch_s, converted): what the live A/B analysis reads (model tag and arm per row)."""
    has_request = events["request_id"].notna() & (events["request_id"].astype(str) != "")
    live = impressions.drop_duplicates(["request_id", "position"], keep="first").reset_index(drop=True)
    joined, _ = _with_outcomes(live, events[has_request])
    return joined


def _with_outcomes(live: pd.DataFrame, feedback: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """``live`` impressions with the merged outcome of the feedback naming them (no feedback: not clicked),
    and which feedback rows matched an impression."""
    slate = feedback.merge(live[["request_id", "video_id"]], on=["request_id", "video_id"], how="left", indicator=True)
    matched = (slate["_merge"] == "both").to_numpy()
    outcome = (
        feedback[matched]
        .groupby(["request_id", "video_id"], sort=False)
        .agg(clicked=("clicked", "max"), watch_s=("watch_s", "max"), converted=("converted", "max"))
        .reset_index()
    )
    joined = live.merge(outcome, on=["request_id", "video_id"], how="left")
    for column, empty in (("clicked", False), ("watch_s", 0.0), ("converted", False)):
        values = joined[column].to_numpy(dtype=object)
        joined[column] = np.where(pd.isna(values), empty, values).astype(type(empty))
    return joined, matched


def _as_events(shown: pd.DataFrame) -> pd.DataFrame:
    """Impression rows in the ``events`` contract's columns."""
    out = pd.DataFrame(
        {
            "event_id": shown["request_id"].astype(str) + ":" + shown["position"].astype(int).astype(str),
            "ts": shown["ts"],
            "user_key": shown["user_key"],
            "video_id": shown["video_id"],
            "session_id": shown["request_id"],
            "position": shown["position"].astype(int),
            "surface": "recommend",
            "propensity": shown["propensity"].astype(float),
            "clicked": shown["clicked"].astype(bool),
            "watch_s": shown["watch_s"].astype(float),
            "converted": shown["converted"].astype(bool),
        }
    )
    return out[list(EVENT_COLUMNS)]
