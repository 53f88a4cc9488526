"""Landed uploads as a raw-data source: every landed upload is one row, accepted or quarantined with a reason,
and files seen = location files + landed uploads = accepted + quarantined (real MP4s, the real probe)."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.vidrec.media_fixtures import write_mp4
from vidrec.landing import land_upload, uploads_dir
from vidrec.media.probe import file_sha256, probe_videos
from vidrec.sources import list_videos
from vidrec.upload_source import (
    ID_TAKEN,
    NO_FILE,
    NO_RECORD,
    UPLOAD,
    probe_targets,
    quarantine_uploads,
    read_landed_uploads,
    record_problems,
    upload_counts,
    upload_metadata,
    with_uploads,
)

FORM = {
    "title": "A new clip",
    "category": "music",
    "creator_id": "c-new",
    "description": "fresh",
    "tags": ["live", "guitar"],
    "is_product": True,
    "price": 9.5,
    "is_live_host": False,
    "uploaded_at": 1_710_000_000.0,
}


def _land(landing: Path, video_id: str, source: Path, **fields) -> None:
    record = {**FORM, "sha256": file_sha256(str(source)), **fields}
    land_upload(landing, video_id, source, {k: v for k, v in record.items() if v is not ...})


@pytest.fixture()
def sources(tmp_path: Path) -> tuple[Path, Path]:
    """A raw-data location with two videos and a landing area with one upload of each kind of problem."""
    location, landing, made = tmp_path / "world", tmp_path / "landing", tmp_path / "made"
    (location / "videos").mkdir(parents=True)
    made.mkdir()
    world_a = write_mp4(location / "videos" / "v_a.mp4", seconds=2)
    write_mp4(location / "videos" / "v_b.mp4", seconds=3, audio=False)
    fresh = write_mp4(made / "fresh.mp4", seconds=4)
    other = write_mp4(made / "other.mp4", seconds=5, audio=False)
    _land(landing, "up_good", fresh)
    _land(landing, "up_dup", world_a)  # the bytes of a location file
    _land(landing, "up_bad", other, title="", price=-1.0, tags="not, a list")
    _land(landing, "up_changed", other, sha256="0" * 64)  # the record's hash is not the file's
    _land(landing, "v_b", fresh)  # an id the location already has
    _land(landing, "up_nofile", other)
    (uploads_dir(landing) / "up_nofile.mp4").unlink()
    shutil.copy(other, uploads_dir(landing) / "up_norecord.mp4")
    (uploads_dir(landing) / "up_torn.json").write_text('{"video_id": "up_torn", "title": ')
    shutil.copy(other, uploads_dir(landing) / "up_torn.mp4")
    (uploads_dir(landing) / ".up_tmp.1234.tmp").write_bytes(b"half a write")  # a writer's temporary
    return location, landing


def test_form_rules_name_each_broken_field() -> None:
    assert record_problems(FORM, "up_x") == []
    broken = record_problems({**FORM, "title": " ", "price": -2, "is_product": "yes", "uploaded_at": "soon"}, "up_x")
    assert broken == [
        "title must have 1 to 300 characters",
        "is_product must be true or false",
        "price must be empty or a number >= 0",
        "uploaded_at must be epoch seconds or an ISO 8601 time",
    ]
    missing = record_problems({"video_id": "up_y", "title": "t"}, "up_x")
    assert missing[:3] == ["category is missing", "creator_id is missing", "uploaded_at is missing"]
    assert "video_id 'up_y' differs from the file name 'up_x'" in missing
    assert record_problems([1, 2], "up_x") == ["the record is not a JSON object"]
    assert record_problems({**FORM, "price": float("nan"), "tags": [1]}, "up_x") == [
        "tags must be a list of text",
        "price must be empty or a number >= 0",
    ]


def test_every_landed_upload_is_one_row_with_its_problem(sources) -> None:
    location, landing = sources
    landed = read_landed_uploads(landing)
    problems = landed.files.set_index("video_id")["upload_problem"]
    assert sorted(problems.index) == sorted(
        ["up_good", "up_dup", "up_bad", "up_changed", "v_b", "up_nofile", "up_norecord", "up_torn"]
    )
    assert problems[["up_good", "up_dup", "up_changed", "v_b"]].isna().all()
    assert problems["up_nofile"] == NO_FILE and problems["up_norecord"] == NO_RECORD
    assert "title is missing" in problems["up_bad"] and "price must be empty or a number >= 0" in problems["up_bad"]
    assert problems["up_torn"].startswith("landed upload record up_torn.json is unreadable")
    good = landed.metadata.set_index("video_id").loc["up_good"]
    assert good["tags"] == "live|guitar" and good["price"] == 9.5 and bool(good["is_product"])
    assert good["published_at"] == pd.Timestamp("2024-03-09 16:00:00", tz="UTC")
    assert set(landed.metadata["video_id"]) == {"up_good", "up_dup", "up_changed", "v_b"}


def test_counts_reconcile_and_the_probe_decides_duplicates_and_changed_bytes(sources) -> None:
    location, landing = sources
    landed = read_landed_uploads(landing)
    files = with_uploads(list_videos(location), landed)
    assert files.set_index(["source", "video_id"]).loc[(UPLOAD, "v_b"), "upload_problem"] == ID_TAKEN
    targets = probe_targets(files)
    assert len(targets) == len(files) - 2  # the missing file and the taken id are not probed
    probed = probe_videos(list(zip(targets["video_id"], targets["path"])), workers=1, progress=False)
    videos = quarantine_uploads(probed, files)
    # files seen = location files + landed uploads = accepted + quarantined
    assert len(videos) == 2 + 8 == (videos["status"] == "accepted").sum() + (videos["status"] == "quarantined").sum()
    assert upload_counts(videos) == {
        "uploads_landed": 8,
        "uploads_accepted": 1,
        "uploads_quarantined": 7,
        "uploads_duplicate": 1,
    }
    uploads = videos[videos["source"] == UPLOAD].set_index("video_id")
    assert uploads.loc["up_good", "status"] == "accepted"
    assert uploads.loc["up_dup", "reason"].startswith("duplicate upload: the same bytes as v_a")
    assert uploads.loc["up_dup", "duplicate_of"] == "v_a"
    assert videos.set_index("video_id").loc["v_a", "status"] == "accepted"  # the location's copy stays
    assert "bytes changed after upload" in uploads.loc["up_changed", "reason"]
    assert uploads.loc["up_nofile", "reason"] == NO_FILE and uploads.loc["v_b", "reason"] == ID_TAKEN
    assert all(isinstance(r, str) and r for r in videos.loc[videos["status"] != "accepted", "reason"])
    # Only the metadata of uploads raw_videos took in without a problem enters video_metadata.
    assert set(upload_metadata(landed, files)["video_id"]) == {"up_good", "up_dup", "up_changed"}


def test_an_upload_landing_after_the_listing_waits_for_the_next_run(sources, tmp_path: Path) -> None:
    location, landing = sources
    files = with_uploads(list_videos(location), read_landed_uploads(landing))
    _land(landing, "up_late", write_mp4(tmp_path / "late.mp4", seconds=2))
    assert "up_late" not in set(upload_metadata(read_landed_uploads(landing), files)["video_id"])


def test_no_landing_area_means_no_uploads(tmp_path: Path) -> None:
    landed = read_landed_uploads(tmp_path / "nothing")
    assert landed.files.empty and landed.metadata.empty
    assert list(landed.metadata.columns)[:2] == ["video_id", "title"]
