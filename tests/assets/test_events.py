"""`interactions` joins the event log with the events the service landed: pseudonymised once,
duplicates and unknown videos quarantined with reasons, unreadable landing lines counted, and an
unreadable log failing at once (no retries)."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.events import interactions
from assets.resources import Pseudonymiser, RawData, VidrecStorage
from vidrec.config import Paths
from vidrec.impressions import ImpressionLog, issue_request_id
from vidrec.landing import EventLanding, FeedbackEvent
from vidrec.privacy import pseudonymise

KEY = "test-key"
T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def _log(raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3"],
            "ts": [T0, T0, T0],
            "user_id": ["u1", "u2", "u1"],
            "video_id": ["v1", "v2", "v9"],
            "session_id": ["s1", "s2", "s1"],
            "position": [0, 1, 2],
            "surface": ["home"] * 3,
            "propensity": [0.5, 0.25, 0.5],
            "clicked": [True, False, False],
            "watch_s": [4.0, 0.0, 0.0],
            "converted": [False, False, False],
        }
    ).to_parquet(raw / "events.parquet")


def _upstream() -> dict[str, pd.DataFrame]:
    accepted = pd.DataFrame({"video_id": ["v1", "v2"], "status": ["accepted", "accepted"]})
    return {"video_probe": accepted, "video_metadata": accepted}


def test_landed_events_join_the_log_and_every_row_is_accounted_for(tmp_path: Path) -> None:
    raw, root = tmp_path / "raw", tmp_path / "state"
    _log(raw)
    landing = Paths(root).ensure().landing
    EventLanding(landing, KEY).append(
        [
            FeedbackEvent(
                user_id="u3",
                video_id="v2",
                ts=datetime(2026, 3, 2, 10, tzinfo=UTC),
                clicked=True,
                watch_s=2.0,
                propensity=0.5,
                session_id="s9",
                event_id="n1",
            ),
            FeedbackEvent(
                user_id="u1",
                video_id="v1",
                ts=T0,
                clicked=True,
                watch_s=4.0,
                propensity=0.5,
                session_id="s1",
                event_id="e1",
            ),  # a client retry of a logged event
            FeedbackEvent(
                user_id="u4",
                video_id="v404",
                ts=datetime(2026, 3, 2, 11, tzinfo=UTC),
                propensity=0.5,
                session_id="s8",
                event_id="n2",
            ),
        ]
    )
    (landing / "events" / "date=2026-03-02" / "crashed-writer.jsonl").write_text('{"event_id": "n3", "ts"')
    result = interactions(
        raw_data=RawData(path=str(raw)),
        pseudonymiser=Pseudonymiser(key=KEY),
        storage=VidrecStorage(root=str(root)),
        **_upstream(),
    )
    events = result.value
    meta = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
    assert meta["from_log"] == 3 and meta["from_landing"] == 3 and meta["landing_unreadable_lines"] == 1
    assert meta["scanned"] == len(events) == 6 == meta["accepted"] + meta["quarantined"]
    by_id = events.groupby("event_id")["status"].apply(list).to_dict()
    assert by_id["n1"] == ["accepted"] and sorted(by_id["e1"]) == ["accepted", "quarantined"]
    reasons = events.set_index("event_id")["reason"]
    assert (
        "duplicate event_id"
        in events.loc[events["status"].eq("quarantined") & events["event_id"].eq("e1"), "reason"].iloc[0]
    )
    assert reasons["e3"].startswith("video is not") and reasons["n2"].startswith("video is not")
    # Landed users were pseudonymised by the landing writer, and not hashed a second time here.
    assert events.set_index("event_id").loc["n1", "user_key"] == pseudonymise("u3", KEY)
    assert "user_id" not in events.columns


def test_an_unreadable_event_log_fails_without_retries(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events.parquet").write_bytes(b"not parquet")
    with pytest.raises(dg.Failure, match="cannot read the event log") as failure:
        interactions(
            raw_data=RawData(path=str(raw)),
            pseudonymiser=Pseudonymiser(key=KEY),
            storage=VidrecStorage(root=str(tmp_path / "state")),
            **_upstream(),
        )
    assert failure.value.allow_retries is False


def _interactions(raw: Path, root: Path) -> tuple[pd.DataFrame, dict]:
    result = interactions(
        raw_data=RawData(path=str(raw)),
        pseudonymiser=Pseudonymiser(key=KEY),
        storage=VidrecStorage(root=str(root)),
        **_upstream(),
    )
    return result.value, {k: getattr(v, "value", v) for k, v in result.metadata.items()}


def test_columns_left_out_of_the_log_stay_null_and_are_not_quarantined(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _log(raw)
    log = pd.read_parquet(raw / "events.parquet")
    log.drop(columns=["propensity", "watch_s"]).to_parquet(raw / "events.parquet")
    events, meta = _interactions(raw, tmp_path / "state")
    assert meta["suite"] == "events__no_propensity__no_watch_s" and meta["absent_columns"] == ["propensity", "watch_s"]
    assert events[["propensity", "watch_s"]].isna().all().all() and meta["hint"] == "none"
    assert list(events.loc[events["status"] == "quarantined", "event_id"]) == ["e3"]  # its unknown video only


def test_a_column_present_but_null_throughout_is_quarantined_with_a_hint(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _log(raw)
    pd.read_parquet(raw / "events.parquet").assign(propensity=None).to_parquet(raw / "events.parquet")
    events, meta = _interactions(raw, tmp_path / "state")
    assert meta["suite"] == "events" and meta["accepted"] == 0  # present means filled: nothing is assumed
    assert events.set_index("event_id").loc["e1", "reason"] == "failed expectation: propensity is present"
    assert meta["hint"].startswith("propensity is NULL in every row of events.parquet")


def test_logged_impressions_become_rows_joined_to_their_feedback(tmp_path: Path) -> None:
    """The service's own traffic: non-clicked impressions come from the log, clicks join on request_id."""
    raw, root = tmp_path / "raw", tmp_path / "state"
    _log(raw)
    landing = Paths(root).ensure().landing
    user_key = pseudonymise("u5", KEY)
    request_id = issue_request_id(KEY, user_key, ["v1", "v2"])
    log = ImpressionLog(landing, flush_s=3600)
    shown = dict(request_id=request_id, ts=T0.isoformat(), user_key=user_key, model_tag="m:1", arm="production")
    log.log(
        [
            {**shown, "policy": "eps_swap", "video_id": v, "position": i, "score": 0.5, "propensity": p}
            for i, (v, p) in enumerate([("v1", 0.95), ("v2", 0.0025)])
        ]
    )
    log.close()
    EventLanding(landing, KEY).append(
        [FeedbackEvent(user_id="u5", video_id="v2", ts=T0, clicked=True, watch_s=7.0, request_id=request_id)]
    )
    result = interactions(
        raw_data=RawData(path=str(raw)),
        pseudonymiser=Pseudonymiser(key=KEY),
        storage=VidrecStorage(root=str(root)),
        **_upstream(),
    )
    events = result.value.set_index("event_id")
    meta = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
    assert meta["landing_impressions_landed"] == 2 and meta["landing_feedback_joined"] == 1
    assert meta["scanned"] == 3 + 2  # the log's 3 rows and the 2 impressions (the click merged into one)
    first, second = events.loc[f"{request_id}:0"], events.loc[f"{request_id}:1"]
    assert (first["clicked"], first["propensity"], first["status"]) == (False, 0.95, "accepted")
    assert (second["clicked"], second["watch_s"], second["propensity"]) == (True, 7.0, 0.0025)
    assert first["session_id"] == request_id and first["user_key"] == user_key
