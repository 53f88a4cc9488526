"""Media as phones and shops produce it (issue 19): each case is built here with PyAV and must get
the outcome a real platform gives it, with a reason that says what to do when it is refused.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expectations.validate import validate_frame
from tests.vidrec.media_fixtures import (
    write_halves,
    write_silent_track,
    write_still,
    write_two_video_streams,
    write_video,
)
from vidrec.media.accounting import media_summary, probe_summary
from vidrec.media.features import FeatureConfig, extract_features, extract_one
from vidrec.media.frames import sample_frames
from vidrec.media.probe import probe_videos
from vidrec.media.shards import read_shard


@pytest.fixture(scope="module")
def wild(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wild")
    fragmented = write_video(
        root / "fragmented.mp4", n_frames=32, audio=True, gop=8, movflags="frag_keyframe+empty_moov+default_base_moof"
    )
    cut = root / "fragmented_cut.mp4"
    cut.write_bytes(fragmented.read_bytes()[: fragmented.stat().st_size // 2])
    return {
        "slow_motion": write_video(root / "slow_motion.mp4", fps=240, n_frames=48, width=32, height=32),
        # mpeg4 writes 4K frames in a fraction of libx264's time.
        "portrait_4k": write_video(root / "portrait_4k.mp4", codec="mpeg4", n_frames=2, width=2160, height=3840),
        "aac_12khz": write_video(root / "aac_12khz.mp4", n_frames=24, audio=True, audio_rate=12000),
        "one_frame": write_video(root / "one_frame.mp4", n_frames=1),
        "tenth_second": write_video(root / "tenth_second.mp4", n_frames=3, fps=30),
        "still_png": write_still(root / "still_png.png"),
        "raw_h264": write_still(root / "raw_h264.h264", codec="libx264", container_format="h264"),
        "portrait_phone": write_halves(root / "portrait_phone.mp4", rotation=-90),
        "two_streams": write_two_video_streams(root / "two_streams.mp4"),
        "silent_track": write_silent_track(root / "silent_track.mkv"),
        "fragmented": fragmented,
        # As a browser's MediaRecorder writes it: no duration, no index.
        "live_webm": write_video(
            root / "live.webm", codec="libvpx-vp9", n_frames=40, container_format="webm", muxer_options={"live": "1"}
        ),
        "fragmented_cut": cut,
    }


@pytest.fixture(scope="module")
def probed(wild: dict[str, Path]) -> pd.DataFrame:
    frame = probe_videos([(name, str(path)) for name, path in wild.items()], progress=False)
    report = validate_frame(frame[frame["status"] == "accepted"], "videos", id_column="video_id")
    assert not report.row_failures, report.row_failures  # the suite agrees with the probe
    return frame.set_index("video_id", drop=False)


ACCEPTED = [
    "slow_motion",
    "portrait_4k",
    "aac_12khz",
    "one_frame",
    "tenth_second",
    "still_png",
    "portrait_phone",
    "two_streams",
    "silent_track",
    "fragmented",
    "live_webm",
]


@pytest.mark.parametrize("name", ACCEPTED)
def test_what_a_real_platform_accepts_is_accepted(probed: pd.DataFrame, name: str) -> None:
    assert probed.loc[name, "status"] == "accepted", probed.loc[name, "reason"]


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_clips_are_featurised(wild: dict[str, Path], tmp_path: Path, name: str) -> None:
    facts = extract_one(str(wild[name]), str(tmp_path / "s.npz"), FeatureConfig())
    shard = read_shard(tmp_path / "s.npz")
    assert shard.frames.shape == FeatureConfig().frames_shape() and shard.mel.shape == FeatureConfig().mel_shape()
    assert facts["has_audio"] == (name in ("aac_12khz", "fragmented"))


def test_portrait_4k_is_judged_by_pixels_not_orientation(probed: pd.DataFrame) -> None:
    assert (probed.loc["portrait_4k", "width"], probed.loc["portrait_4k", "height"]) == (2160, 3840)


def test_12khz_audio_is_resampled(probed: pd.DataFrame, wild: dict[str, Path], tmp_path: Path) -> None:
    assert probed.loc["aac_12khz", "sample_rate"] == 12000 and probed.loc["aac_12khz", "has_audio"]
    extract_one(str(wild["aac_12khz"]), str(tmp_path / "s.npz"), FeatureConfig())
    mel = read_shard(tmp_path / "s.npz").mel.astype(np.float32)
    assert np.isfinite(mel).all() and mel.max() > -5  # a real tone, not the silent floor (log 1e-6 = -13.8)


def test_one_frame_clips_and_pictures_are_one_frame_videos(probed: pd.DataFrame, wild: dict[str, Path]) -> None:
    for name in ("one_frame", "still_png"):
        assert probed.loc[name, "n_frames_decoded"] == 1 and probed.loc[name, "duration_s"] > 0
        frames, plan = sample_frames(str(wild[name]), seek="keyframe")
        assert len({f.tobytes() for f in frames}) == 1  # the one frame at every moment, as a cover gives
    assert "still picture" in probed.loc["still_png", "notes"]


def test_display_rotation_is_recorded_and_applied(probed: pd.DataFrame, tmp_path: Path) -> None:
    # -90 (turn clockwise to show): the stored left half (dark) is on top when shown.
    assert probed.loc["portrait_phone", "rotation"] == 270
    for rotation, dark_on_top in ((-90, True), (90, False)):
        path = write_halves(tmp_path / f"r{rotation}.mp4", rotation=rotation)
        frames, plan = sample_frames(str(path), size=16)
        top, bottom = frames[0, :, :8].mean(), frames[0, :, 8:].mean()
        assert plan.rotation == rotation % 360
        assert (top < bottom) == dark_on_top, (top, bottom)
    frames, plan = sample_frames(str(write_halves(tmp_path / "plain.mp4")), size=16)
    assert plan.rotation == 0 and frames[0, :, :, :8].mean() < frames[0, :, :, 8:].mean()  # dark left


def test_the_main_video_stream_is_chosen_and_recorded(probed: pd.DataFrame, wild: dict[str, Path]) -> None:
    row = probed.loc["two_streams"]
    assert (row["video_stream"], row["width"], row["height"]) == (1, 320, 240)
    assert "video stream #1 (320x240) chosen over #0 64x48" in row["notes"]
    frames, plan = sample_frames(str(wild["two_streams"]), n_frames=4)
    assert plan.stream == 1 and frames.mean() > 10  # the preview stream is black


def test_audio_track_without_packets_marks_audio_missing(
    probed: pd.DataFrame, wild: dict[str, Path], tmp_path: Path
) -> None:
    row = probed.loc["silent_track"]
    assert not row["has_audio"] and pd.isna(row["sample_rate"])
    assert "audio track ignored (it holds no packets)" in row["notes"]
    facts = extract_one(str(wild["silent_track"]), str(tmp_path / "s.npz"), FeatureConfig())
    assert facts["has_audio"] is False and "PermissionError" not in str(facts["notes"])


def test_fragmented_mp4_cut_in_half_is_caught_at_the_probe(probed: pd.DataFrame) -> None:
    row = probed.loc["fragmented_cut"]
    assert row["status"] == "quarantined"
    assert re.fullmatch(
        r"MP4 cut short: box '(moof|mdat)' at byte \d+ claims \d+ bytes but the file ends at "
        r"byte \d+: copy the complete file again \(or re-export it\)",
        row["reason"],
    ), row["reason"]


def test_a_live_recording_without_duration_is_measured(probed: pd.DataFrame, wild: dict[str, Path]) -> None:
    row = probed.loc["live_webm"]
    assert row["duration_s"] == pytest.approx(5.0) and row["n_frames_decoded"] == 40
    assert "duration measured from the packets" in row["notes"]
    frames, plan = sample_frames(str(wild["live_webm"]), seek="keyframe")
    assert not plan.repeated and len(set(plan.frame_times)) == 8


def test_bare_stream_reason_says_how_to_wrap_it(probed: pd.DataFrame) -> None:
    reason = probed.loc["raw_h264", "reason"]
    assert reason.startswith("a bare h264 stream without a container has no timing or duration: wrap it in MP4")


def test_broken_links_and_loops_get_quarantine_rows(tmp_path: Path) -> None:
    from vidrec.lineage import data_version
    from vidrec.sources import list_videos

    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "ok.mp4", n_frames=8)
    (videos / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    (videos / "loop_a.mp4").symlink_to(videos / "loop_b.mp4")
    (videos / "loop_b.mp4").symlink_to(videos / "loop_a.mp4")
    files = list_videos(tmp_path)
    assert list(files["video_id"]) == ["dangling", "loop_a", "loop_b", "ok"]
    assert len(data_version(tmp_path)) == 16  # used to die at path.stat()
    probed = probe_videos(list(zip(files["video_id"], files["path"])), progress=False).set_index("video_id")
    assert probed.loc["ok", "status"] == "accepted"
    assert probed.loc["dangling", "reason"].startswith("broken symbolic link: ")
    assert probed.loc["dangling", "reason"].endswith(
        "does not exist; restore the target (for DVC data, `dvc checkout`) or remove the link"
    )
    assert probed.loc["loop_a", "reason"].startswith("symbolic link loop: ")
    assert probe_summary(probed.reset_index()) == {
        "files_seen": 4,
        "files_accepted": 1,
        "files_quarantined": 3,
        "deleted": 0,
    }


def test_nfd_file_names_and_nfc_sidecar_ids_are_one_id(tmp_path: Path) -> None:
    from vidrec.sources import list_videos, read_metadata

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / f"{nfd}.mp4", n_frames=4)
    header = "video_id,title,description,tags,category,creator_id,is_product,price,is_live_host,published_at\n"
    (tmp_path / "metadata.csv").write_text(header + f"{nfd},t,,,c,k,false,,false,2024-01-01T00:00:00Z\n")
    assert list(list_videos(tmp_path)["video_id"]) == [nfc]
    assert list(read_metadata(tmp_path)["video_id"]) == [nfc]


def test_files_rejected_at_feature_time_reconcile(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.mp4", n_frames=8)
    doomed = write_video(tmp_path / "doomed.mp4", n_frames=8, width=48)
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n" * 20)
    probed = probe_videos([("good", str(good)), ("doomed", str(doomed)), ("text", str(text))], progress=False)
    doomed.write_bytes(b"\0" * 64)  # replaced between probe and features
    features = extract_features(probed[probed["status"] == "accepted"], tmp_path / "features", progress=False)
    summary = media_summary(probed, features)
    assert {
        k: summary[k]
        for k in ("files_seen", "quarantined_at_probe", "quarantined_at_features", "accepted_with_features")
    } == {"files_seen": 3, "quarantined_at_probe": 1, "quarantined_at_features": 1, "accepted_with_features": 1}
    with pytest.raises(ValueError, match="do not reconcile"):
        media_summary(probed, features[features["video_id"] != "doomed"])


ACTIONS = re.compile(
    r"copy|re-export|re-mux|restore|remove|downscale|split|add the|wrap it|make it readable|"
    r"put |point the|re-run|re-encode|retried"
)


def test_every_probe_reason_says_what_to_do(probed: pd.DataFrame) -> None:
    reasons = probed.loc[probed["status"] == "quarantined", "reason"]
    assert len(reasons) >= 2
    for reason in reasons:
        assert ACTIONS.search(reason), reason


def test_audio_masked_at_feature_time_is_missing_for_the_models() -> None:
    from vidrec.items import build_items

    ids = ["a", "b"]
    videos = pd.DataFrame(
        {
            "video_id": ids,
            "sha256": ["1" * 64, "2" * 64],
            "duration_s": [2.0, 2.0],
            "has_audio": [True, True],
            "status": "accepted",
            "reason": None,
        }
    )
    metadata = pd.DataFrame({"video_id": ids, "title": ["A", "B"], "status": "accepted", "reason": None})
    # b's track looked fine at the probe and proved unreadable at extraction (notes say so).
    features = pd.DataFrame(
        {"video_id": ids, "shard_path": ["a.npz", "b.npz"], "has_audio": [True, False], "status": "accepted"}
    )
    text = pd.DataFrame({"video_id": ids, "has_text": True, "embedding": [np.zeros(2), np.zeros(2)]})
    items, _ = build_items(videos, metadata, features, text)
    assert dict(zip(items["video_id"], items["has_audio"])) == {"a": True, "b": False}
