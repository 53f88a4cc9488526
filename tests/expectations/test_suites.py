"""Tests for the declared suites and validate_frame on tiny hand-made frames."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from expectations import suites
from expectations.suites import SUITES, events_suite, get_suite
from expectations.validate import ValidationReport, validate_frame

SHA = "ab" * 32


def _videos() -> pd.DataFrame:
    rows = [
        ("v1", 1280, 720, 30.0, 12.5, 375, True, "aac", 44100, "accepted", None),
        ("v2", 1080, 1920, 25.0, 60.0, 1500, False, None, None, "accepted", None),
        ("v3", 3840, 2160, 60.0, 3.0, 180, True, "opus", 48000, "accepted", None),
        ("v4", None, None, None, None, 0, False, None, None, "quarantined", "decode failed"),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "video_id", "width", "height", "fps", "duration_s", "n_frames_decoded",
            "has_audio", "audio_codec", "sample_rate", "status", "reason",
        ],
    )  # fmt: skip
    frame.insert(1, "path", [f"data/{v}.mp4" for v in frame["video_id"]])
    frame.insert(2, "sha256", [SHA, "cd" * 32, "ef" * 32, None])
    frame.insert(3, "bytes", [1000, 2000, 3000, 10])
    frame.insert(4, "container", ["mp4", "mp4", "mov", None])
    frame.insert(5, "video_codec", ["h264", "h264", "hevc", None])
    frame["rotation"] = pd.array([0, 270, 0, None], dtype="Int64")  # v2: a portrait phone video stored landscape
    return frame


def _metadata() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "video_id": ["v1", "v2", "v3"],
            "title": ["Cat", "Lamp for sale", "Live cooking"],
            "description": ["", "warm light", None],
            "tags": [["pets"], ["home"], []],
            "category": ["pets", "home", "food"],
            "creator_id": ["c1", "c2", "c3"],
            "is_product": [False, True, False],
            "price": [None, 19.99, None],
            "is_live_host": [False, False, True],
            "published_at": ["2024-01-02T10:00:00Z", "2024-02-03", "2024-03-04 12:30"],
        }
    )


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4"],
            "ts": pd.to_datetime(["2024-05-01 10:00"] * 4),
            "user_key": ["u1", "u1", "u2", "u2"],
            "video_id": ["v1", "v2", "v1", "v3"],
            "session_id": ["s1", "s1", "s2", "s2"],
            "position": [0, 1, 0, 1],
            "surface": ["feed"] * 4,
            "propensity": [0.5, 1.0, 0.01, 0.2],
            "clicked": [True, False, True, False],
            "watch_s": [12.0, 0.0, 0.0, 0.0],
            "converted": [True, False, False, False],
        }
    )


GOOD = {"videos": _videos, "video_metadata": _metadata, "events": _events}
ID = {"videos": "video_id", "video_metadata": "video_id", "events": "event_id"}


@pytest.fixture(scope="module")
def good_reports() -> dict[str, ValidationReport]:
    return {name: validate_frame(make(), name, ID[name]) for name, make in GOOD.items()}


@pytest.fixture(scope="module")
def bad_events() -> ValidationReport:
    frame = _events()
    extra = pd.DataFrame(
        {
            "event_id": ["watch_no_click", "convert_no_click", "p_zero", "p_big", "e1"],
            "ts": pd.to_datetime(["2024-05-01 11:00"] * 5),
            "user_key": "u3",
            "video_id": "v1",
            "session_id": "s3",
            "position": [0, 1, 2, 3, 4],
            "surface": "feed",
            "propensity": [0.3, 0.3, 0.0, 1.5, 0.3],
            "clicked": [False, False, True, True, True],
            "watch_s": [4.0, 0.0, 1.0, 1.0, 1.0],
            "converted": [False, True, False, False, False],
        }
    )
    return validate_frame(pd.concat([frame, extra], ignore_index=True), "events", "event_id")


def _failed(report: ValidationReport, description: str):
    matches = [f for f in report.failed if f.description == description]
    assert len(matches) == 1, [f.description for f in report.failed]
    return matches[0]


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_frame_passes(good_reports: dict[str, ValidationReport], name: str) -> None:
    report = good_reports[name]
    assert report.success, report.failed
    assert report.evaluated == len(get_suite(name).rules)
    assert report.failed == [] and report.row_failures == {}
    metadata = report.as_metadata()
    assert json.loads(json.dumps(metadata)) == metadata
    assert metadata["expectations_failed"] == 0 and metadata["rows"] == len(GOOD[name]())


def test_events_cross_column_and_range_failures(bad_events: ValidationReport) -> None:
    assert not bad_events.success
    assert {f.description for f in bad_events.failed} == {
        "watch_s > 0 only if clicked",
        "converted only if clicked",
        "propensity is in (0, 1]",
        "event_id is unique",
    }
    watch = _failed(bad_events, "watch_s > 0 only if clicked")
    assert (watch.expectation, watch.columns) == ("ExpectColumnValuesToBeBetween", ("watch_s",))
    assert watch.unexpected_count == 1 and watch.example_ids == ("watch_no_click",)
    assert watch.example_values == (4.0,)
    converted = _failed(bad_events, "converted only if clicked")
    assert converted.expectation == "ExpectColumnValuesToBeInSet"
    assert converted.unexpected_count == 1 and converted.example_ids == ("convert_no_click",)
    propensity = _failed(bad_events, "propensity is in (0, 1]")
    assert propensity.unexpected_count == 2
    assert set(propensity.example_ids) == {"p_zero", "p_big"}
    assert set(propensity.example_values) == {0.0, 1.5}
    unique = _failed(bad_events, "event_id is unique")
    assert unique.unexpected_count == 2 and unique.example_ids == ("e1",)

    assert set(bad_events.row_failures) == {
        "watch_no_click", "convert_no_click", "p_zero", "p_big", "e1",
    }  # fmt: skip
    assert bad_events.row_failures["watch_no_click"] == ["watch_s > 0 only if clicked (got 4.0)"]
    assert bad_events.row_failures["p_big"] == ["propensity is in (0, 1] (got 1.5)"]
    metadata = bad_events.as_metadata()
    assert json.loads(json.dumps(metadata)) == metadata
    assert metadata["expectations_failed"] == 4 and metadata["rows_failed"] == 5


def test_videos_rules_apply_to_accepted_rows_only() -> None:
    frame = _videos()
    frame.loc[0, "width"] = 9000  # accepted: must fail
    frame.loc[3, "width"] = 9000  # quarantined: probe values are not trusted, not checked
    frame.loc[1, "sample_rate"] = 44100  # no audio but a sample rate
    frame.loc[2, "sha256"] = "XYZ"
    report = validate_frame(frame, "videos", "video_id")
    assert not report.success
    width = _failed(report, "width is between 16 and 8192 pixels")
    assert width.expectation == "ExpectColumnValuesToBeBetween"
    assert (width.unexpected_count, width.example_ids) == (1, ("v1",))
    assert _failed(report, "sha256 is 64 lowercase hex digits").example_ids == ("v3",)
    no_audio = _failed(report, "sample_rate is empty when the video has no audio")
    assert no_audio.expectation == "ExpectColumnValuesToBeNull"
    assert report.row_failures == {
        "v1": ["width is between 16 and 8192 pixels (got 9000.0)"],
        "v2": ["sample_rate is empty when the video has no audio (got 44100.0)"],
        "v3": ["sha256 is 64 lowercase hex digits (got 'XYZ')"],
    }


def test_metadata_empty_title_and_negative_price() -> None:
    frame = _metadata()
    frame.loc[0, "title"] = ""
    frame.loc[1, "price"] = -5.0
    frame.loc[2, "published_at"] = "not a date"
    report = validate_frame(frame, "video_metadata", "video_id")
    assert {f.expectation for f in report.failed} == {
        "ExpectColumnValueLengthsToBeBetween",
        "ExpectColumnValuesToBeBetween",
        "ExpectColumnValuesToBeDateutilParseable",
    }
    assert _failed(report, "price is not negative").example_values == (-5.0,)
    assert set(report.row_failures) == {"v1", "v2", "v3"}
    assert report.row_failures["v1"] == ["title has 1 to 300 characters (got '')"]


def test_metadata_accepts_timestamp_column() -> None:
    frame = _metadata().assign(published_at=pd.to_datetime(["2024-01-02", "2024-02-03", None]))
    report = validate_frame(frame, "video_metadata", "video_id")
    # The null timestamp breaks only the not-null rule; the dateutil rule sees ISO text.
    assert [f.description for f in report.failed] == ["published_at is present"]
    assert report.row_failures == {"v3": ["published_at is present"]}


def test_without_id_column_rows_are_named_by_index_label() -> None:
    frame = _events().set_index(pd.Index([10, 11, 12, 13]))
    frame.loc[13, "converted"] = True
    report = validate_frame(frame, "events")
    assert report.row_failures == {"13": ["converted only if clicked (got True)"]}


def test_missing_column_fails_loudly() -> None:
    report = validate_frame(_events().drop(columns=["propensity"]), "events", "event_id")
    contract = ", ".join(SUITES["events"].columns)
    columns = _failed(report, f"table has the contract columns {contract}")
    assert columns.example_values == ("propensity",)
    assert all(f.error for f in report.failed if f.columns == ("propensity",))
    assert report.as_metadata()["expectations_failed"] == len(report.failed)


def test_bad_arguments_name_the_input() -> None:
    with pytest.raises(ValueError, match="Unknown expectation suite 'clips'"):
        validate_frame(_events(), "clips")
    with pytest.raises(ValueError, match="id_column 'id'"):
        validate_frame(_events(), "events", "id")
    with pytest.raises(ValueError, match="non-unique index"):
        validate_frame(_events().set_index(pd.Index([0, 0, 1, 1])), "events")


@pytest.mark.parametrize("name", sorted(SUITES))
def test_rules_only_check_contract_columns(name: str) -> None:
    suite = SUITES[name]
    for rule in suite.rules:
        assert set(rule.columns) | set(rule.when) <= set(suite.columns), rule


def _imported_events() -> pd.DataFrame:
    """Events of a source without position, propensity, watch_s and converted: the columns are NULL."""
    return _events().assign(
        position=pd.array([None] * 4, dtype="Int64"),
        propensity=pd.array([None] * 4, dtype="Float64"),
        watch_s=pd.array([None] * 4, dtype="Float64"),
        converted=pd.array([None] * 4, dtype="boolean"),
    )


def test_events_suite_accepts_nulls_only_in_the_columns_a_source_lacks() -> None:
    absent = ("position", "propensity", "watch_s", "converted")
    suite = events_suite(absent)
    assert suite.name == "events__no_converted__no_position__no_propensity__no_watch_s"
    assert get_suite(suite.name) == suite  # the name alone rebuilds it (reports, Data Docs, history)
    assert validate_frame(_imported_events(), suite.name, "event_id").success
    strict = validate_frame(_imported_events(), "events", "event_id")
    assert {f.description for f in strict.failed} == {f"{c} is present" for c in absent}
    assert len(strict.row_failures) == 4
    # Only what was declared: a source without propensities still needs watch_s.
    partial = validate_frame(_imported_events(), events_suite(["propensity"]).name, "event_id")
    assert {f.description for f in partial.failed} == {
        "position is present",
        "watch_s is present",
        "converted is present",
    }


def test_present_values_are_still_checked_when_a_column_may_be_null() -> None:
    frame = _imported_events()
    frame["propensity"] = pd.array([0.5, None, 1.5, None], dtype="Float64")
    frame["watch_s"] = pd.array([3.0, 2.0, None, None], dtype="Float64")  # e2 is not clicked
    frame["converted"] = pd.array([None, None, None, True], dtype="boolean")  # e4 is not clicked
    report = validate_frame(frame, events_suite(("propensity", "watch_s", "converted", "position")).name, "event_id")
    assert report.row_failures == {
        "e2": ["watch_s > 0 only if clicked (got 2.0)"],
        "e3": ["propensity is in (0, 1] (got 1.5)"],
        "e4": ["converted only if clicked (got True)"],
    }


def test_only_optional_columns_can_be_absent() -> None:
    with pytest.raises(ValueError, match=r"events columns \['clicked'\] cannot be absent"):
        events_suite(["clicked"])
    with pytest.raises(ValueError, match="cannot be absent"):
        get_suite("events__no_user_key")
    from vidrec.sources import OPTIONAL_EVENT_COLUMNS

    assert set(OPTIONAL_EVENT_COLUMNS) == set(suites.OPTIONAL_EVENT_COLUMNS)  # one list, two packages
