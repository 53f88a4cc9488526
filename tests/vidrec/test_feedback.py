"""Logged impressions join to the feedback that names them; every landed row is accounted for."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vidrec.feedback import DUPLICATE_IMPRESSION, NO_IMPRESSION, NOT_IN_SLATE
from vidrec.impressions import (
    ImpressionLog,
    RequestIdError,
    issue_request_id,
    read_landed_impressions,
    request_seed,
    verify_request_id,
)
from vidrec.ingest import landed_events
from vidrec.landing import EventLanding, FeedbackEvent
from vidrec.privacy import pseudonymise

KEY = "test-key"
TS = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_a_request_id_names_its_user_and_slate() -> None:
    slate = ["v1", "v2", "v3"]
    rid = issue_request_id(KEY, "alice", slate)
    issued = verify_request_id(KEY, "alice", rid)
    assert [issued.position_of(v) for v in [*slate, "v9"]] == [0, 1, 2, None]
    assert issued.nonce == request_seed(rid)
    with pytest.raises(RequestIdError, match="not issued by this service to this user_id"):
        verify_request_id(KEY, "bob", rid)
    with pytest.raises(RequestIdError, match="not issued by this service"):
        verify_request_id("another-key", "alice", rid)
    tampered = rid[:-3] + ("AAA" if not rid.endswith("AAA") else "BBB")
    with pytest.raises(RequestIdError):
        verify_request_id(KEY, "alice", tampered)
    for garbage in ["", "nope", "r1.!!.??", "r2.AAAA.AAAA"]:
        with pytest.raises(RequestIdError):
            verify_request_id(KEY, "alice", garbage)


def _shown(log: ImpressionLog, user: str, slate: list[str], ts: datetime) -> str:
    user_key = pseudonymise(user, KEY)
    rid = issue_request_id(KEY, user_key, slate)
    log.log(
        [
            dict(
                request_id=rid,
                ts=ts.isoformat(),
                user_key=user_key,
                model_tag="m:1",
                arm="production",
                policy="deterministic",
                video_id=v,
                position=i,
                score=1.0 - i / 10,
                propensity=1.0,
            )
            for i, v in enumerate(slate)
        ]
    )
    return rid


def test_impressions_join_feedback_and_every_row_is_accounted_for(tmp_path: Path) -> None:
    log = ImpressionLog(tmp_path, flush_s=3600)  # flushed by hand below
    first = _shown(log, "alice", ["v1", "v2", "v3"], TS)
    second = _shown(log, "bob", ["v2", "v4"], TS + timedelta(minutes=1))
    log.flush()
    # The same request landed twice (a copied file): its rows are duplicates, not new impressions.
    (path,) = (tmp_path / "impressions").rglob("*.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines) + lines[3] + '{"request_id": "torn"')  # plus a torn last line
    events = EventLanding(tmp_path, KEY)
    at = TS + timedelta(seconds=30)
    events.append(
        [
            FeedbackEvent("alice", "v2", at, clicked=True, watch_s=3.0, request_id=first),
            FeedbackEvent("alice", "v2", at, clicked=True, watch_s=9.0, converted=True, request_id=first),
            FeedbackEvent("alice", "v9", at, clicked=True, request_id=first),  # not in the slate
            FeedbackEvent("alice", "v1", at, clicked=True, request_id=issue_request_id(KEY, "x", ["v1"])),  # lost
            FeedbackEvent("carol", "v1", at, clicked=True, watch_s=2.0),  # no request_id: its own impression
        ]
    )
    out, counts, bad = _landed(tmp_path)
    assert len(bad) == 1 and "jsonl:7" in bad[0]
    accepted = out[out["status"] == "accepted"].set_index("event_id")
    # 5 distinct impressions + carol's standalone event; feedback merged onto alice's v2 impression.
    assert len(accepted) == 6
    v2 = accepted.loc[f"{first}:1"]
    assert (v2["clicked"], v2["watch_s"], v2["converted"], v2["session_id"]) == (True, 9.0, True, first)
    assert not accepted.loc[f"{first}:0", "clicked"] and not accepted.loc[f"{second}:0", "clicked"]
    assert accepted.loc[f"{second}:1", "propensity"] == 1.0
    reasons = out.loc[out["status"] != "accepted", "reason"].tolist()
    assert sorted(reasons) == sorted([DUPLICATE_IMPRESSION, NOT_IN_SLATE, NO_IMPRESSION])
    assert counts == {
        "impressions_landed": 6,
        "impressions_accepted": 5,
        "impressions_quarantined": 1,
        "impressions_clicked": 1,
        "feedback_with_request_id": 4,
        "feedback_joined": 2,
        "feedback_quarantined": 2,
        "feedback_without_request_id": 1,
    }
    # Reconciliation: landed impressions and feedback are each fully accounted for.
    assert counts["impressions_landed"] == counts["impressions_accepted"] + counts["impressions_quarantined"]
    assert counts["feedback_with_request_id"] == counts["feedback_joined"] + counts["feedback_quarantined"]


def test_impressions_on_unknown_videos_get_the_video_rule(tmp_path: Path) -> None:
    log = ImpressionLog(tmp_path, flush_s=3600)
    _shown(log, "alice", ["v1", "gone"], TS)
    log.close()
    out, _, _ = _landed(tmp_path, accepted={"v1"})
    assert out.set_index("video_id").loc["gone", "reason"].startswith("video is not an accepted video")


def test_the_log_flushes_in_the_background_and_on_close(tmp_path: Path) -> None:
    log = ImpressionLog(tmp_path, flush_s=0.01)
    _shown(log, "alice", ["v1"], TS)
    for _ in range(200):
        if len(read_landed_impressions(tmp_path).rows) == 1:
            break
        import time

        time.sleep(0.01)
    assert len(read_landed_impressions(tmp_path).rows) == 1
    _shown(log, "bob", ["v1", "v2"], TS)
    log.close()
    assert len(read_landed_impressions(tmp_path).rows) == 3


def _landed(root: Path, accepted: set[str] | None = None):
    out, bad, counts = landed_events(root, accepted or {"v1", "v2", "v3", "v4", "v9"})
    return out, counts, bad
