"""The media assets materialised with Dagster on a small messy folder, then re-run unchanged
and after a deletion: counts reconcile, unmatched rows and duplicates are reported, the data
version is recorded, and an unchanged catalogue does no media work."""

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets import media
from assets.definitions import build_resources
from tests.vidrec.media_fixtures import write_video
from vidrec.config import Paths
from vidrec.ingest import NO_FILE_REASON, NO_METADATA_REASON
from vidrec.sources import METADATA_COLUMNS

ASSETS = [media.raw_videos, media.video_probe, media.video_metadata, media.video_features]
CHECKS = [media.video_probe_contract, media.video_metadata_contract]


def _row(video_id: str, title: str = "A title") -> str:
    return f"{video_id},{title},,a|b,music,c1,false,,false,2024-03-01T00:00:00Z"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("messy")
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "v1.mp4", n_frames=16, audio=True)
    write_video(videos / "v2.mp4", n_frames=24)
    (videos / "v1_copy.mp4").write_bytes((videos / "v1.mp4").read_bytes())
    (videos / "broken.mp4").write_text("not a video\n" * 20)
    write_video(videos / "no_row.mp4", n_frames=8)
    rows = [_row(v) for v in ("v1", "v2", "v1_copy", "broken", "row_only")] + [_row("untitled", "")]
    (root / "metadata.csv").write_text("\n".join([",".join(METADATA_COLUMNS), *rows]) + "\n")
    write_video(videos / "untitled.mp4", n_frames=12)
    return root


def _run(root: Path, data: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize([*ASSETS, *CHECKS], resources=build_resources(root, data, "test-key"))


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    event = result.asset_materializations_for_node(asset)[0]
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def _table(root: Path, name: str) -> pd.DataFrame:
    with duckdb.connect(str(Paths(root).warehouse), read_only=True) as con:
        return con.execute(f"SELECT * FROM vidrec.{name}").df()  # our own table names


def test_media_assets_first_run_rerun_and_deletion(folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "state"
    first = _run(root, folder)
    assert first.success
    assert all(e.passed for e in first.get_asset_check_evaluations())

    raw = _meta(first, "raw_videos")
    assert raw["files"] == 6 and len(raw["data_version"]) == 16
    assert raw["examples_files_without_metadata"] == ["no_row"]
    assert raw["examples_metadata_without_file"] == ["row_only"]

    probe = _meta(first, "video_probe")
    assert probe["scanned"] == 6 == probe["accepted"] + probe["quarantined"]
    assert probe["files_hashed"] == 6 and probe["files_probed"] == 5  # v1 and its copy: once
    assert probe["duplicate_groups"] == 1 and probe["deleted"] == 0
    videos = _table(root, "video_probe").set_index("video_id")
    assert videos.loc["no_row", "reason"] == NO_METADATA_REASON
    assert videos.loc["broken", "reason"].startswith("cannot open as a media container")
    assert videos.loc["v1_copy", "duplicate_of"] == "v1" or videos.loc["v1", "duplicate_of"] == "v1_copy"

    metadata = _table(root, "video_metadata").set_index("video_id")
    assert metadata.loc["row_only", "reason"] == NO_FILE_REASON
    assert metadata.loc["untitled", "reason"].startswith("failed expectation: title has 1 to 300")
    meta = _meta(first, "video_metadata")
    assert meta["scanned"] == 6 == meta["accepted"] + meta["quarantined"]

    features = _meta(first, "video_features")
    accepted = probe["accepted"]
    assert features["scanned"] == accepted and features["cached"] == 0
    catalogue = _table(root, "video_features")
    assert catalogue["shard_path"].map(lambda p: Path(p).is_file()).all()
    assert (catalogue["frames_shape"] == "8x3x32x32").all() and catalogue["plan"].notna().all()

    # Unchanged: nothing hashed, probed or extracted again; same tables.
    second = _run(root, folder)
    assert second.success
    probe2 = _meta(second, "video_probe")
    assert (probe2["files_hashed"], probe2["files_probed"]) == (0, 0)
    assert _meta(second, "video_features")["cached"] == accepted
    assert _meta(second, "raw_videos")["data_version"] == raw["data_version"]

    # A file disappears: it is marked deleted (quarantined with the reason), not kept.
    (folder / "videos" / "v2.mp4").unlink()
    third = _run(root, folder)
    assert third.success
    probe3 = _meta(third, "video_probe")
    assert probe3["deleted"] == 1 and probe3["scanned"] == 6
    assert probe3["scanned"] == probe3["accepted"] + probe3["quarantined"]
    assert _meta(third, "raw_videos")["data_version"] != raw["data_version"]
    row = _table(root, "video_probe").set_index("video_id").loc["v2"]
    assert row["status"] == "quarantined" and row["reason"].startswith("deleted: ")


def test_broken_links_are_quarantined_and_every_file_is_accounted_for(tmp_path: Path) -> None:
    # A dangling link and a link loop used to stop raw_videos (data_version died at path.stat()).
    data = tmp_path / "data"
    videos = data / "videos"
    videos.mkdir(parents=True)
    write_video(videos / "v1.mp4", n_frames=8)
    (videos / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    (videos / "loop_a.mp4").symlink_to(videos / "loop_b.mp4")
    (videos / "loop_b.mp4").symlink_to(videos / "loop_a.mp4")
    rows = [_row(v) for v in ("v1", "dangling", "loop_a", "loop_b")]
    (data / "metadata.csv").write_text("\n".join([",".join(METADATA_COLUMNS), *rows]) + "\n")
    result = _run(tmp_path / "state", data)
    assert result.success
    assert _meta(result, "raw_videos")["files"] == 4
    probe = _meta(result, "video_probe")
    assert (probe["files_seen"], probe["files_accepted"], probe["files_quarantined"]) == (4, 1, 3)
    assert probe["quarantine_reasons"] == {"broken symbolic link": 1, "symbolic link loop": 2}
    features = _meta(result, "video_features")
    assert {
        k: features[k]
        for k in ("files_seen", "quarantined_at_probe", "quarantined_at_features", "accepted_with_features")
    } == {"files_seen": 4, "quarantined_at_probe": 3, "quarantined_at_features": 0, "accepted_with_features": 1}


def test_a_warehouse_written_before_new_columns_is_upgraded(folder: Path, tmp_path: Path) -> None:
    # video_probe gained rotation/video_stream/notes and video_features notes: a warehouse with the old
    # tables must not fail the next run (the stock handler inserts by position into the old table).
    root = tmp_path / "state"
    Paths(root).warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(Paths(root).warehouse)) as con:
        con.execute("CREATE SCHEMA vidrec")
        con.execute("CREATE TABLE vidrec.video_features (video_id VARCHAR, sha256 VARCHAR, status VARCHAR)")
        con.execute("INSERT INTO vidrec.video_features VALUES ('old', 'x', 'accepted')")
    assert _run(root, folder).success
    table = _table(root, "video_features")
    assert "notes" in table.columns and "old" not in set(table["video_id"])
