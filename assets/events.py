"""Event assets: the raw log (external, holds raw user ids, never copied) and validated,
pseudonymised interactions."""


import dagster as dg
import pandas as pd

from assets.reporting import contract_check, quarantine_metadata
from assets.resources import Pseudonymiser, RawData
from expectations.validate import validate_frame
from vidrec.ingest import prepare_events, quarantine
from vidrec.sources import read_events

raw_events = dg.AssetSpec(
    "raw_events",
    group_name="events",
    description="The raw event log (events.parquet) with raw user ids. Read only by "
                "`interactions`, which pseudonymises users before anything is written.",
    kinds={"parquet"},
)


@dg.asset(group_name="events", deps=[raw_events], kinds={"python", "duckdb"}, io_manager_key="warehouse_io",
          owners=["team:ml-platform"])
def interactions(raw_data: RawData, pseudonymiser: Pseudonymiser, video_probe: pd.DataFrame,
                 video_metadata: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Impressions with clicks, watch time and conversions: users pseudonymised with a keyed
    hash, checked against the `events` suite, bad rows quarantined with a reason."""
    accepted = set(video_probe.loc[video_probe["status"] == "accepted", "video_id"]) & set(
        video_metadata.loc[video_metadata["status"] == "accepted", "video_id"])
    events = prepare_events(read_events(raw_data.directory), pseudonymiser.key, accepted)
    report = validate_frame(events[events["status"] == "accepted"].drop(columns=["status", "reason"]),
                            "events", id_column="event_id")
    events = quarantine(events, report.row_failures, "event_id")
    ok = events[events["status"] == "accepted"]
    return dg.Output(events, metadata={
        **quarantine_metadata(events, "event_id"),
        "users": int(ok["user_key"].nunique()),
        "sessions": int(ok["session_id"].nunique()),
        "ctr": round(float(ok["clicked"].mean()), 4) if len(ok) else None,
        "first_ts": str(ok["ts"].min()), "last_ts": str(ok["ts"].max()),
    })


@dg.asset_check(asset=interactions, blocking=True)
def interactions_contract(interactions: pd.DataFrame) -> dg.AssetCheckResult:
    """Accepted events satisfy the `events` suite (invariants: watch_s > 0 only if clicked,
    converted only if clicked); counts reconcile."""
    judged = interactions[~interactions["reason"].fillna("").str.startswith("video is not")]
    report = validate_frame(judged.drop(columns=["status", "reason"]), "events", id_column="event_id")
    return contract_check(interactions, report, "event_id")
