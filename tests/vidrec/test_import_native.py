"""The native-format importer and covers: bad rows and unreadable media skipped and counted, never silently."""

import unicodedata
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest

from tests.vidrec.import_fixtures import ITEMS, LOG, _reasons, write_one_frame_mp4, write_png
from vidrec.imports.covers import cover_frames, item_shards
from vidrec.imports.logs import LogFormat, import_logs
from vidrec.imports.native import import_native
from vidrec.media.features import FeatureConfig
from vidrec.media.frames import sample_frames
from vidrec.media.shards import read_shard
from vidrec.sources import RAW_EVENT_COLUMNS, absent_event_columns, list_videos, read_events, read_metadata

# --- native format and covers -----------------------------------------------------------------------

EVENTS = """event_id,ts,user_id,video_id,session_id,position,surface,clicked
e1,2024-03-01T10:00:00Z,u1,v1,s1,0,home,true
e2,2024-03-01T10:00:05Z,u1,v2,s1,1,home,false
e3,2024-03-01T10:00:09Z,u2,v3,s2,0,home,1
e3,2024-03-01T10:00:09Z,u2,v3,s2,0,home,1
e4,2024-03-01T10:01:00Z,u2,v7,s2,1,home,true
e5,2024-03-01T10:02:00Z,,v1,s3,0,home,true
e6,yesterday,u3,v1,s4,0,home,true
e7,2024-03-01T10:03:00Z,u3,v2,s4,first,home,true
e8,2024-03-01T10:04:00Z,u3,v3,s4,2,home,maybe
"""
METADATA = """video_id,title,tags,category,is_product,price
v1,A one-frame video,x|y,music,false,
v2,A cover image,z,shop,true,9.5
v3,Text only,,news,false,
"""


@pytest.fixture
def native_dir(tmp_path: Path) -> Path:
    root = tmp_path / "native"
    (root / "videos").mkdir(parents=True)
    write_one_frame_mp4(root / "videos" / "v1.mp4")
    write_png(root / "videos" / "v2.png")
    write_one_frame_mp4(root / "videos" / "v8.mp4")  # no metadata row
    (root / "videos" / "notes.txt").write_text("not media")
    (root / "metadata.csv").write_text(METADATA)
    (root / "events.csv").write_text(EVENTS)
    return root


def _check_native(result) -> None:
    assert _reasons(result, "media") == {
        "file has no metadata row": 1,
        "not a video (.mp4, .m4v, .mov, .mkv, .webm, .avi) or image (.jpg, .jpeg, .png, .webp, .bmp, .gif) file": 1,
    }
    assert dict(zip(result.items["video_id"], result.items["media_kind"])) == {
        "v1": "video",
        "v2": "image",
        "v3": "none",
    }
    events = result.report.tables["events"]
    assert (events.rows_read, events.accepted) == (9, 3)
    assert _reasons(result, "events") == {
        "duplicate event (same event_id; first kept)": 1,
        "unknown item id (not in the item table)": 1,
        "missing user_id": 1,
        "unparseable timestamp": 1,
        "non-numeric position": 1,
        "clicked is not true/false": 1,
    }
    assert result.signals == {
        "position": True,
        "propensity": False,
        "watch_s": False,
        "converted": False,
        "impressions": True,
        "clock_time": True,
    }
    assert list(result.positives()["video_id"]) == ["v1", "v3"]
    assert any("1 items have no media file" in note for note in result.report.notes)


def test_native_folder(native_dir: Path) -> None:
    _check_native(import_native(str(native_dir)))


def test_native_counts_unreadable_media_and_skips_their_items(native_dir: Path) -> None:
    # Three files that are listed but cannot be read: a dangling link, and two links that point at each other.
    videos = native_dir / "videos"
    (videos / "v4.mp4").symlink_to(native_dir / "gone.mp4")
    (videos / "v5.mp4").symlink_to(videos / "v6.mp4")
    (videos / "v6.mp4").symlink_to(videos / "v5.mp4")
    # NFD file name (as macOS writes it) for an NFC metadata id: one item, with its file.
    nfc, nfd = unicodedata.normalize("NFC", "v_é"), unicodedata.normalize("NFD", "v_é")
    write_one_frame_mp4(videos / f"{nfd}.mp4")
    (native_dir / "metadata.csv").write_text(
        METADATA + f"v4,Dangling,,music,false,\nv5,Loop,,music,false,\n"
        f"v6,Loop too,,music,false,\n{nfc},Accented,,music,false,\n"
    )
    result = import_native(str(native_dir))
    unreadable = (
        "media file cannot be read (a broken symbolic link, a link loop or not a regular file): restore "
        "or replace it; remove the file to import the item as text only"
    )
    assert _reasons(result, "media")[unreadable] == 3
    assert _reasons(result, "items") == {unreadable: 3}  # not silently text-only
    kinds = dict(zip(result.items["video_id"], result.items["media_kind"]))
    assert kinds == {"v1": "video", "v2": "image", "v3": "none", nfc: "video"}
    assert any("broken symbolic link" in note and "symbolic link loop" in note for note in result.report.notes)
    result.report.check()  # read = accepted + skipped, per table


def test_native_fsspec_url_copies_media_locally(native_dir: Path, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    for path in native_dir.rglob("*"):
        if path.is_file():
            fs.pipe(f"/h8-native/{path.relative_to(native_dir)}", path.read_bytes())
    with pytest.raises(ValueError, match="cache_dir"):
        import_native("memory://h8-native")
    cache = tmp_path / "cache"
    cache.mkdir()
    result = import_native("memory://h8-native", cache_dir=cache)
    _check_native(result)
    assert Path(result.items.set_index("video_id").loc["v1", "media_path"]).parent == cache


def test_native_written_back_in_the_pipeline_layout(native_dir: Path, tmp_path: Path) -> None:
    result = import_native(str(native_dir))
    out = result.write_raw_dir(tmp_path / "raw")
    assert list(list_videos(out)["video_id"]) == ["v1"]
    metadata = read_metadata(out).set_index("video_id")
    assert list(metadata.index) == ["v1", "v2", "v3"]
    # The sidecar says which rows have no video file on purpose: a cover (under covers/) and a text-only item.
    assert metadata["media_kind"].to_dict() == {"v1": "video", "v2": "image", "v3": "none"}
    assert Path(metadata.loc["v2", "media_path"]) == out / "covers" / "v2.png"
    assert Path(metadata.loc["v2", "media_path"]).is_file() and metadata.loc["v3", "media_path"] == ""
    # The columns the source lacks are left out of the file (its declaration), and read back as NULLs.
    assert absent_event_columns(out) == ("propensity", "watch_s", "converted")
    events = read_events(out)
    assert len(events) == 3 and list(events.columns) == list(RAW_EVENT_COLUMNS)
    assert events[["propensity", "watch_s", "converted"]].isna().all().all() and events["position"].notna().all()


def test_native_without_positions_declares_them_absent(native_dir: Path, tmp_path: Path) -> None:
    events = pd.read_csv(native_dir / "events.csv", dtype=str).drop(columns=["position"])
    events.assign(watch_s="", propensity="0.5").to_csv(native_dir / "events.csv", index=False)
    result = import_native(str(native_dir))
    assert result.signals["position"] is False and result.signals["propensity"] is True
    assert result.signals["watch_s"] is False  # a column that is empty on every row is absent too
    assert result.events["position"].isna().all() and (result.events["propensity"] == 0.5).all()
    assert any("no position column" in note for note in result.report.notes)
    assert absent_event_columns(result.write_raw_dir(tmp_path / "raw")) == ("position", "watch_s", "converted")


def test_read_events_requires_the_non_optional_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({c: ["x"] for c in RAW_EVENT_COLUMNS if c not in ("propensity", "clicked")})
    frame.assign(ts=pd.Timestamp("2024-01-01", tz="UTC")).to_parquet(tmp_path / "events.parquet")
    with pytest.raises(ValueError, match=r"events\.parquet lacks columns \['clicked'\]"):
        read_events(tmp_path)


def test_cover_is_a_one_frame_video(tmp_path: Path) -> None:
    config = FeatureConfig()
    cover = cover_frames(str(write_png(tmp_path / "c.png")), config)
    video, plan = sample_frames(str(write_one_frame_mp4(tmp_path / "c.mp4")), config.n_frames, config.frame_size)
    assert cover.shape == video.shape == config.frames_shape() and cover.dtype == video.dtype
    assert np.abs(cover.astype(int) - video.astype(int)).mean() < 6  # only video compression differs


def test_item_shards_for_covers_and_missing_media(native_dir: Path, tmp_path: Path) -> None:
    result = import_native(str(native_dir))
    shards = item_shards(result.items, tmp_path / "features").set_index("video_id")
    assert list(shards.index) == ["v2", "v3"]  # videos go through the pipeline's own extraction
    assert shards.loc["v2", "has_visual"] and not shards.loc["v3", "has_visual"]
    cover = read_shard(shards.loc["v2", "shard_path"])
    assert cover.frames.shape == FeatureConfig().frames_shape() and not cover.has_audio
    assert cover.frames.any()
    blank = read_shard(shards.loc["v3", "shard_path"])
    assert not blank.frames.any() and "marked missing" in shards.loc["v3", "reason"]


def test_media_less_items_reach_the_models_with_modalities_masked(tmp_path: Path) -> None:
    """Text-only and cover items build the same item tensors the encoder trains on, visual/audio masked."""
    from models.fit.data import ItemTensors

    (tmp_path / "log.csv").write_text(LOG)
    (tmp_path / "items.csv").write_text(ITEMS)
    result = import_logs(str(tmp_path / "log.csv"), str(tmp_path / "items.csv"), LogFormat(rating_threshold=4))
    items = result.items.copy()
    items.loc[items["video_id"] == "i2", ["media_kind", "media_path"]] = ["image", str(write_png(tmp_path / "c.png"))]
    shards = item_shards(items, tmp_path / "features")
    catalogue = items[["video_id", "text"]].merge(
        shards[["video_id", "shard_path", "has_visual", "has_audio"]], on="video_id"
    )
    catalogue["has_text"] = catalogue["text"] != ""
    catalogue["has_audio"] = catalogue["has_audio"].astype(bool)
    tensors = ItemTensors.from_catalogue(catalogue, np.zeros((len(catalogue), 384), np.float32))
    assert tensors.frames.shape[1:] == FeatureConfig().frames_shape()
    assert tensors.mask.tolist() == [[False, False, True], [True, False, True], [False, False, True]]
