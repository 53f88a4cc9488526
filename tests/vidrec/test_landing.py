"""The event landing area: pseudonymised before writing, durable, all-or-nothing per batch, reconciled on read."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from vidrec.landing import EventLanding, FeedbackEvent, land_upload, landed_uploads, read_landed_events
from vidrec.privacy import pseudonymise

TS = datetime(2026, 11, 21, 23, 59, tzinfo=UTC)


def _event(**overrides) -> FeedbackEvent:
    values = dict(user_id="alice@example.com", video_id="v00001", ts=TS, clicked=True, watch_s=4.5)
    return FeedbackEvent(**{**values, **overrides})


def test_events_are_pseudonymised_before_they_are_written(tmp_path: Path) -> None:
    landing = EventLanding(tmp_path, "k1")
    ids = landing.append([_event(), _event(user_id="bob", clicked=False, watch_s=0.0, ts=TS.replace(day=22))])
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*.jsonl"))
    assert b"alice" not in raw and b"bob" not in raw
    landed = read_landed_events(tmp_path)
    assert landed.bad_lines == [] and landed.rows["event_id"].tolist() == ids
    assert set(landed.rows["user_key"]) == {pseudonymise("alice@example.com", "k1"), pseudonymise("bob", "k1")}
    assert sorted(p.parent.name for p in tmp_path.rglob("*.jsonl")) == ["date=2026-11-21", "date=2026-11-22"]


def test_a_batch_with_one_bad_event_writes_nothing(tmp_path: Path) -> None:
    landing = EventLanding(tmp_path, "k1")
    with pytest.raises(ValueError, match="event 1 .*converted requires clicked"):
        landing.append([_event(), _event(clicked=False, watch_s=0.0, converted=True)])
    assert list(tmp_path.rglob("*.jsonl")) == []


def test_appends_accumulate_and_a_torn_line_is_reported(tmp_path: Path) -> None:
    landing = EventLanding(tmp_path, "k1")
    for _ in range(3):
        landing.append([_event(), _event(video_id="v00002")])
    (path,) = tmp_path.rglob("*.jsonl")
    with path.open("a") as handle:
        handle.write('{"event_id": "torn", "ts"')  # what a crash mid-write leaves
    landed = read_landed_events(tmp_path)
    assert len(landed.rows) == 6 and len(landed.bad_lines) == 1 and "jsonl:7" in landed.bad_lines[0]


def test_an_empty_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="VIDREC_PSEUDONYM_KEY"):
        EventLanding(tmp_path, "")


def test_uploads_land_with_their_metadata(tmp_path: Path) -> None:
    source = tmp_path / "in.mp4"
    source.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 100)
    land_upload(tmp_path / "landing", "up_1", source, {"title": "t", "category": "music"})
    (record,) = landed_uploads(tmp_path / "landing")
    assert record["video_id"] == "up_1" and Path(record["path"]).read_bytes() == source.read_bytes()
