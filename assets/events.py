"""Event assets: the raw log (external, holds raw user ids, never copied) and validated,
pseudonymised interactions from the log plus the events the service landed."""

import dagster as dg
import pandas as pd

from assets.data_quality import record_validation
from assets.reporting import contract_check, quarantine_metadata, table_md
from assets.resources import (
    FOLLOW_UPSTREAM,
    Pseudonymiser,
    RawData,
    VidrecStorage,
    warehouse_asset,
)
from expectations.suites import events_suite
from expectations.validate import validate_frame
from vidrec.feedback import logged_impressions as logged_feedback
from vidrec.impressions import read_landed_impressions
from vidrec.ingest import landed_events, prepare_events, quarantine, quarantine_duplicate_events
from vidrec.items import accepted_item_ids
from vidrec.landing import read_landed_events
from vidrec.sources import OPTIONAL_EVENT_COLUMNS, absent_event_columns, read_events

GROUP = "events"
OWNERS = ["team:ml-platform"]

raw_events = dg.AssetSpec(
    "raw_events",
    group_name=GROUP,
    description="The raw event log (events.parquet) with raw user ids. Read only by "
    "`interactions`, which pseudonymises users before anything is written. A source that "
    "never recorded position, propensity, watch_s or converted leaves the column out.",
    kinds={"parquet"},
    owners=OWNERS,
    metadata={
        "path": "$VIDREC_DATA/events.parquet",
        "columns": "event_id, ts, user_id, video_id, session_id, position, surface, propensity, "
        "clicked, watch_s, converted",
    },
)


@warehouse_asset(GROUP, deps=[raw_events], automation_condition=FOLLOW_UPSTREAM)
def interactions(
    raw_data: RawData,
    pseudonymiser: Pseudonymiser,
    storage: VidrecStorage,
    video_probe: pd.DataFrame,
    video_metadata: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Impressions with clicks, watch time and conversions from the event log and the service's
    landing area: users pseudonymised with a keyed hash, checked against the `events` suite, bad
    rows quarantined with a reason. Optional columns the log leaves out stay NULL (never filled in) and
    are checked with the `events__no_<column>` suite, which accepts those NULLs."""
    accepted = accepted_item_ids(video_probe, video_metadata)  # imported media-less items included
    try:
        absent = absent_event_columns(raw_data.directory)
        raw = read_events(raw_data.directory)
    except (FileNotFoundError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        # The log itself is unreadable or lacks columns: retrying cannot fix that, so fail at once.
        raise dg.Failure(
            description=f"cannot read the event log in {raw_data.directory}: {error}", allow_retries=False
        ) from error
    logged = prepare_events(raw, pseudonymiser.key, accepted)
    landed, bad_lines, joined = landed_events(storage.paths.landing, accepted)
    events = logged if landed.empty else pd.concat([logged, landed[logged.columns]], ignore_index=True)
    events = quarantine_duplicate_events(events.sort_values(["ts", "event_id"], kind="stable").reset_index(drop=True))
    suite = events_suite(absent).name
    # A column that is present but NULL throughout is most likely a signal the source never had.
    all_null = [c for c in OPTIONAL_EVENT_COLUMNS if c not in absent and len(raw) and raw[c].isna().all()]
    report = validate_frame(
        events[events["status"] == "accepted"].drop(columns=["status", "reason"]), suite, id_column="event_id"
    )
    events = quarantine(events, report.row_failures, "event_id")
    ok = events[events["status"] == "accepted"]
    return dg.Output(
        events,
        metadata={
            **quarantine_metadata(events, "event_id"),
            "suite": suite,
            # Left out of events.parquet by the source: NULL here; offline_evaluation skips what needs them.
            "absent_columns": dg.MetadataValue.json(list(absent)),
            "hint": (
                f"{', '.join(all_null)} is NULL in every row of events.parquet, so every event is quarantined; "
                "if the source never recorded it, leave the column out (docs/import.md)"
            )
            if all_null
            else "none",
            "from_log": len(logged),
            "from_landing": len(landed),
            # The service's impression log joined to /events feedback on request_id (vidrec/feedback.py).
            **{f"landing_{name}": value for name, value in joined.items()},
            # Lines that are not complete JSON (e.g. a write cut short by a crash) cannot become rows.
            "landing_unreadable_lines": len(bad_lines),
            "landing_unreadable_examples": table_md(pd.DataFrame({"line": bad_lines}), 5),
            "users": int(ok["user_key"].nunique()),
            "sessions": int(ok["session_id"].nunique()),
            "ctr": round(float(ok["clicked"].mean()), 4) if len(ok) else None,
            "first_ts": str(ok["ts"].min()),
            "last_ts": str(ok["ts"].max()),
            "days": int(ok["ts"].dt.floor("D").nunique()),
        },
    )


@dg.asset_check(asset=interactions, blocking=True)
def interactions_contract(
    context: dg.AssetCheckExecutionContext, interactions: pd.DataFrame, storage: VidrecStorage, raw_data: RawData
) -> dg.AssetCheckResult:
    """Accepted events satisfy the `events` suite (invariants: watch_s > 0 only if clicked,
    converted only if clicked; NULLs only in the optional columns the log leaves out); counts reconcile."""
    judged = interactions[~interactions["reason"].fillna("").str.startswith("video is not")]
    suite = events_suite(absent_event_columns(raw_data.directory)).name
    report = validate_frame(judged.drop(columns=["status", "reason"]), suite, id_column="event_id")
    return record_validation(context, storage, "interactions", report, contract_check(interactions, report, "event_id"))


@warehouse_asset(GROUP, kinds={"duckdb"})
def logged_impressions(storage: VidrecStorage) -> dg.Output[pd.DataFrame]:
    """What the service showed (its impression log: request, model tag, arm, policy, position, score,
    propensity), each row with the feedback that names it merged in (clicked, watch_s, converted). The live
    A/B analysis (`online_experiment`) reads it; `interactions` holds the same impressions as events rows."""
    shown = read_landed_impressions(storage.paths.landing)
    frame = logged_feedback(shown.rows, read_landed_events(storage.paths.landing).rows)
    return dg.Output(
        frame,
        metadata={
            "impressions": len(frame),
            "landed_rows": len(shown.rows),
            "repeated_rows_dropped": len(shown.rows) - len(frame),
            "unreadable_lines": len(shown.bad_lines),
            "requests": int(frame["request_id"].nunique()),
            "clicked": int(frame["clicked"].sum()),
            "by_arm": dg.MetadataValue.json(frame.groupby("arm").size().to_dict() if len(frame) else {}),
        },
    )
