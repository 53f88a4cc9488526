"""Log and sequence importers: bad rows skipped and counted, never dropped silently."""

from pathlib import Path

import pandas as pd
import pytest

from tests.vidrec.import_fixtures import ITEMS, LOG, _reasons
from vidrec.imports.logs import LogFormat, import_logs
from vidrec.imports.sequences import import_sequences

# --- implicit-feedback logs -------------------------------------------------------------------------


@pytest.fixture
def log_files(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "log.csv").write_text(LOG)
    (tmp_path / "items.csv").write_text(ITEMS)
    return str(tmp_path / "log.csv"), str(tmp_path / "items.csv")


def test_logs_skip_bad_rows_with_counted_reasons(log_files: tuple[str, str]) -> None:
    result = import_logs(*log_files, LogFormat(rating_threshold=4))
    events = result.report.tables["events"]
    assert (events.rows_read, events.accepted) == (9, 3)
    assert _reasons(result, "events") == {
        "non-numeric rating": 1,
        "rating below 4 (not a positive)": 1,
        "missing video_id": 1,
        "unknown item id (not in the item table)": 1,
        "unparseable timestamp": 1,
        "duplicate event (same user_id, video_id, ts; first kept)": 1,
    }
    assert _reasons(result, "items") == {"missing video_id": 1, "duplicate video_id (first row kept)": 1}
    assert len(result.report.rejected) == 6 + 2  # every skipped row is kept with its reason
    assert set(result.report.rejected.loc[result.report.rejected["reason"] == "non-numeric rating", "raw"]) == {
        "u2 | i1 | 100 | abc"
    }
    # u1's rows were out of order in the file: kept, counted, and sorted
    assert any("1 rows were out of time order" in note for note in result.report.notes)
    assert result.events["ts"].is_monotonic_increasing
    assert list(result.events["video_id"]) == ["i2", "i1", "i3"]


def test_logs_items_are_text_only_with_media_marked_missing(log_files: tuple[str, str]) -> None:
    result = import_logs(*log_files, LogFormat(rating_threshold=4))
    items = result.items.set_index("video_id")
    assert list(items.index) == ["i1", "i2", "i3"]
    assert not items["has_visual"].any() and not items["has_audio"].any()
    assert (items["media_kind"] == "none").all()
    assert items.loc["i1", "text"] == "first item. tags: a, b"
    assert items.loc["i2", "text"] == "second. a calm video"


def test_logs_never_fake_absent_signals(log_files: tuple[str, str]) -> None:
    result = import_logs(*log_files, LogFormat(rating_threshold=4))
    assert result.signals["propensity"] is False and result.signals["watch_s"] is False
    assert result.events["propensity"].isna().all() and result.events["watch_s"].isna().all()
    assert any("IPS" in note and "skipped" in note for note in result.report.notes)
    assert result.events["clicked"].all()


def test_logs_with_a_multichar_separator_and_no_header(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::10::5::978300760\n1::11::3::978300761\n2::10::4::978300762\n")
    fmt = LogFormat(sep="::", header=False, columns=("user_id", "video_id", "rating", "ts"), rating_threshold=4)
    result = import_logs(str(tmp_path / "ratings.dat"), None, fmt)
    assert len(result.events) == 2 and set(result.items["video_id"]) == {"10", "11"}
    assert result.events["ts"].iloc[0] == pd.Timestamp(978300760, unit="s", tz="UTC")
    assert any("no item table" in note for note in result.report.notes)


def test_logs_missing_column_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("user,item\nu1,i1\n")
    with pytest.raises(ValueError, match=r"log\.csv lacks required column\(s\) \['user_id', 'video_id', 'ts'\]"):
        import_logs(str(tmp_path / "log.csv"), None)
    (tmp_path / "log2.csv").write_text("user,item,time\nu1,i1,5\n")
    result = import_logs(str(tmp_path / "log2.csv"), None, rename={"user": "user_id", "item": "video_id", "time": "ts"})
    assert list(result.events["video_id"]) == ["i1"]


# --- sequences --------------------------------------------------------------------------------------


def test_sequences_keep_order_and_count_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "seq.txt").write_text("u1\ti1 i2 i3 i2\nu2\ti2 i9\nno tab here\nu3\t\nu1\ti3\n\n")
    (tmp_path / "items.csv").write_text(ITEMS)
    result = import_sequences(str(tmp_path / "seq.txt"), str(tmp_path / "items.csv"))
    events = result.report.tables["events"]
    assert (events.rows_read, events.accepted) == (6 + 4, 5)
    assert _reasons(result, "events") == {
        "malformed line (no tab between user id and items)": 1,
        "user with an empty item sequence": 1,
        "user_id already has a sequence on an earlier line": 1,
        "empty line": 1,
        "unknown item id (not in the item table)": 1,
    }
    u1 = result.events[result.events["user_id"] == "u1"]
    assert list(u1["video_id"]) == ["i1", "i2", "i3", "i2"]  # repeats are separate consumptions
    assert u1["event_id"].is_unique and result.signals["clock_time"] is False
