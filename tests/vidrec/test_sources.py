"""Sources (local folders and fsspec URLs), sidecars, and the incremental media catalogue."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from expectations.validate import validate_frame
from tests.vidrec.media_fixtures import write_video
from vidrec.ingest import (
    NO_FILE_REASON,
    NO_METADATA_REASON,
    duplicate_groups,
    quarantine_unmatched,
    repaired_text_count,
    with_text,
)
from vidrec.media.cache import MediaCache
from vidrec.media.features import FeatureConfig, extract_features
from vidrec.media.hashing import file_sha256
from vidrec.media.probe import deleted_rows, probe_videos
from vidrec.sources import (
    METADATA_COLUMNS,
    list_videos,
    localise,
    read_metadata,
    source_version,
)

HEADER = ",".join(METADATA_COLUMNS)


def _csv_row(video_id: str, title: str = "A title") -> str:
    return f"{video_id},{title},,a|b,music,c1,false,,false,2024-03-01T00:00:00Z"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "a": write_video(root / "a.mp4", n_frames=16).read_bytes(),
        "b": write_video(root / "b.mp4", n_frames=24, audio=True).read_bytes(),
    }


def _folder(root: Path, clips: dict[str, bytes], files: dict[str, str], rows: list[str]) -> Path:
    (root / "videos").mkdir(parents=True, exist_ok=True)
    for video_id, clip in files.items():
        (root / "videos" / f"{video_id}.mp4").write_bytes(clips[clip])
    (root / "metadata.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return root


def test_local_listing_has_urls_sizes_and_mtimes(tmp_path: Path, clips: dict[str, bytes]) -> None:
    root = _folder(tmp_path, clips, {"v1": "a", "v2": "b"}, [_csv_row("v1"), _csv_row("v2")])
    files = list_videos(root)
    assert files["video_id"].tolist() == ["v1", "v2"]
    assert files["path"].tolist() == [str((root / "videos" / f"{v}.mp4").resolve()) for v in ("v1", "v2")]
    assert files["bytes"].tolist() == [len(clips["a"]), len(clips["b"])]
    assert files["mtime_ns"].notna().all() and (files["extension"] == ".mp4").all()
    # file:// URLs list the same files.
    assert list_videos(f"file://{root}")["path"].tolist() == files["path"].tolist()
    with pytest.raises(FileNotFoundError, match="needs a videos/ folder"):
        list_videos(tmp_path / "nowhere")


def test_memory_url_is_copied_once_into_landing(tmp_path: Path, clips: dict[str, bytes]) -> None:
    base = f"memory://vidrec-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{base}/videos/m1.mp4", clips["a"])
    fs.pipe(f"{base}/videos/m2.mp4", clips["b"])
    fs.pipe(
        f"{base}/metadata.jsonl",
        b'{"video_id": "m1", "title": "One", "description": null, "tags": ["x", "y"], '
        b'"category": "music", "creator_id": "c1", "is_product": false, "price": null, '
        b'"is_live_host": false, "published_at": "2024-03-01T00:00:00Z"}\n',
    )
    files = list_videos(base)
    assert files["path"].isna().all() and files["url"].str.startswith("memory://").all()
    with MediaCache(tmp_path / "catalogue.duckdb") as cache:
        local = localise(files, tmp_path / "landing", cache)
        for row in local.itertuples():
            assert Path(row.path).name == f"{file_sha256(row.path)}.mp4"
        stamp = {p: os.stat(p).st_mtime_ns for p in local["path"]}
        again = localise(list_videos(base), tmp_path / "landing", cache)
    assert again["path"].tolist() == local["path"].tolist()
    assert {p: os.stat(p).st_mtime_ns for p in again["path"]} == stamp  # not fetched again
    probed = probe_videos(list(zip(local["video_id"], local["path"])), progress=False)
    assert (probed["status"] == "accepted").all()
    metadata = read_metadata(base)
    assert metadata.loc[0, "tags"] == "x|y" and metadata.loc[0, "description"] == ""
    assert not metadata.loc[0, "is_product"]
    assert len(source_version(base, files)["data_version"]) == 16


def test_sidecar_non_utf8_and_empty_titles(tmp_path: Path) -> None:
    (tmp_path / "metadata.csv").write_bytes(
        (HEADER + "\n" + _csv_row("ok") + "\n").encode()
        + _csv_row("latin1", "Caf\xe9 cr\xe8me").encode("latin-1")
        + b"\n"
        + _csv_row("empty", "").encode()
        + b"\n"
    )
    metadata = with_text(read_metadata(tmp_path))
    assert len(metadata) == 3  # nothing dropped
    assert metadata.loc[1, "title"] == "Caf\ufffd cr\ufffdme"
    assert metadata.loc[1, "text"].startswith("caf\ufffd cr\ufffdme. tags: a, b")
    assert repaired_text_count(metadata) == 1
    report = validate_frame(metadata.drop(columns="text"), "video_metadata", "video_id")
    assert report.row_failures == {"empty": ["title has 1 to 300 characters (got '')"]}


def test_sidecar_errors_name_the_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no metadata.csv or metadata.jsonl"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"video_id": "v1"}\nnot json\n')
    with pytest.raises(ValueError, match=r"metadata.jsonl line 2 is not valid JSON"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"video_id": "v1"}\n')
    with pytest.raises(ValueError, match=r"lacks columns \['title'"):
        read_metadata(tmp_path)


def test_unmatched_files_and_metadata_rows_are_quarantined(tmp_path: Path, clips: dict[str, bytes]) -> None:
    root = _folder(tmp_path, clips, {"both": "a", "file_only": "b"}, [_csv_row("both"), _csv_row("row_only")])
    files = list_videos(root)
    metadata = read_metadata(root)
    probed = probe_videos(list(zip(files["video_id"], files["path"])), progress=False)
    videos = quarantine_unmatched(probed, set(metadata["video_id"]), NO_METADATA_REASON)
    rows = quarantine_unmatched(metadata, set(files["video_id"]), NO_FILE_REASON)
    assert videos.set_index("video_id")["reason"].to_dict() == {"both": None, "file_only": NO_METADATA_REASON}
    assert rows.set_index("video_id")["reason"].to_dict() == {"both": None, "row_only": NO_FILE_REASON}
    # Probe facts are kept for the quarantined file: it is valid media, only unmatched.
    assert videos.set_index("video_id").loc["file_only", "n_frames_decoded"] == 24


def test_duplicate_bytes_are_flagged_and_share_one_probe(tmp_path: Path, clips: dict[str, bytes]) -> None:
    root = _folder(tmp_path, clips, {"orig": "a", "copy": "a", "other": "b"}, [])
    files = list_videos(root)
    probed = probe_videos(list(zip(files["video_id"], files["path"])), progress=False)
    assert probed.attrs["probed"] == 2  # two distinct contents
    assert (probed["status"] == "accepted").all()  # flagged, not dropped
    assert probed.set_index("video_id")["duplicate_of"].to_dict() == {"copy": None, "orig": "copy", "other": None}
    groups = duplicate_groups(probed)
    assert groups.to_dict("records") == [
        {"sha256": file_sha256(str(root / "videos" / "orig.mp4")), "video_ids": "copy, orig", "count": 2}
    ]


def test_unchanged_catalogue_is_neither_rehashed_nor_reprobed_nor_reextracted(
    tmp_path: Path, clips: dict[str, bytes]
) -> None:
    root = _folder(tmp_path, clips, {"v1": "a", "v2": "b", "v3": "a"}, [])
    items = list(zip(list_videos(root)["video_id"], list_videos(root)["path"]))
    with MediaCache(tmp_path / "catalogue.duckdb") as cache:
        first = probe_videos(items, progress=False, cache=cache)
        assert first.attrs == {"hashed": 3, "probed": 2}
        features = extract_features(first, tmp_path / "features", progress=False, cache=cache)
        assert not features["cached"].any()

        second = probe_videos(items, progress=False, cache=cache)
        assert second.attrs == {"hashed": 0, "probed": 0}
        pd.testing.assert_frame_equal(first, second)
        again = extract_features(second, tmp_path / "features", progress=False, cache=cache)
        assert again["cached"].all()
        pd.testing.assert_frame_equal(again.drop(columns="cached"), features.drop(columns="cached"))

        # A changed file is re-hashed and re-probed; the others are not.
        (root / "videos" / "v2.mp4").write_bytes(clips["a"])
        third = probe_videos(items, progress=False, cache=cache)
        assert third.attrs == {"hashed": 1, "probed": 0}  # same bytes as v1: probe reused
        assert third.set_index("video_id").loc["v2", "duplicate_of"] == "v1"

        # A new feature config does not reuse old shards.
        other = extract_features(third, tmp_path / "features", FeatureConfig(n_frames=4), progress=False, cache=cache)
        assert not other["cached"].any() and (other["frames_shape"] == "4x3x32x32").all()
        assert set(cache.shard_catalogue()["config_key"]) == {FeatureConfig().key(), FeatureConfig(n_frames=4).key()}


def test_deleted_files_are_marked_not_kept(tmp_path: Path, clips: dict[str, bytes]) -> None:
    root = _folder(tmp_path, clips, {"keep": "a", "gone": "b"}, [])
    with MediaCache(tmp_path / "catalogue.duckdb") as cache:
        files = list_videos(root)
        probed = probe_videos(list(zip(files["video_id"], files["path"])), progress=False, cache=cache)
        assert cache.record_sightings(probed, source=str(root)).empty

        gone_sha = probed.set_index("video_id").loc["gone", "sha256"]
        (root / "videos" / "gone.mp4").unlink()
        files = list_videos(root)
        probed = probe_videos(list(zip(files["video_id"], files["path"])), progress=False, cache=cache)
        deleted = deleted_rows(cache.record_sightings(probed, source=str(root)))
        assert deleted["video_id"].tolist() == ["gone"]
        # Another source sharing the catalogue has its own sightings.
        other = probed.assign(video_id="elsewhere")
        assert cache.record_sightings(other, source="memory://other").empty
        row = deleted.iloc[0]
        assert row["status"] == "quarantined" and row["sha256"] == gone_sha
        assert row["reason"].startswith("deleted: file no longer in the source (last seen ")

        # It comes back: no longer deleted.
        (root / "videos" / "gone.mp4").write_bytes(clips["b"])
        files = list_videos(root)
        probed = probe_videos(list(zip(files["video_id"], files["path"])), progress=False, cache=cache)
        assert cache.record_sightings(probed, source=str(root)).empty
