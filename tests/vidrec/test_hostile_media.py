"""Every hostile input the media stage must survive, each with its expected clear outcome.

One probe run covers all files (as one bad file among good ones would arrive); the tests then
check each row, and that the run reconciles: scanned = accepted + quarantined.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.vidrec.media_fixtures import (
    flip_bytes,
    grey_level,
    truncate_at_packet,
    write_video,
    zero_duration,
)
from vidrec.media.features import FeatureConfig, extract_features, extract_one
from vidrec.media.frames import sample_frames
from vidrec.media.pool import run_isolated
from vidrec.media.probe import ProbeLimits, probe_file, probe_videos
from vidrec.media.shards import read_shard

VFR_PTS_MS = [0, 50, 100, 350, 400, 450, 700, 750, 800, 1050, 1100, 1150, 1400, 1450, 1500,
              1750, 1800, 1850, 2100, 2150, 2200, 2450, 2500, 2550]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    good = write_video(root / "good.mp4", n_frames=48, audio=True)
    faststart = write_video(root / "faststart.mp4", n_frames=48, faststart=True)
    mpeg4 = write_video(root / "mpeg4.mp4", codec="mpeg4", n_frames=48, faststart=True)
    mkv = write_video(root / "mpeg4.mkv", codec="mpeg4", n_frames=48, container_format="matroska")
    out = {
        "good": good,
        "no_audio": write_video(root / "no_audio.mp4", n_frames=24),
        "vfr": write_video(root / "vfr.mp4", n_frames=24, pts_ms=VFR_PTS_MS),
        # mpeg4 encodes 4096x2304 in a fraction of what libx264 needs.
        "too_large": write_video(root / "too_large.mp4", codec="mpeg4", n_frames=2, width=4096, height=2304),
        "largest_allowed": write_video(
            root / "largest_allowed.mp4", codec="mpeg4", n_frames=2, width=3840, height=2160
        ),
        "zero_duration": zero_duration(good, root / "zero_duration.mp4"),
        "mpeg4_truncated": truncate_at_packet(mpeg4, root / "mpeg4_truncated.mp4", keep=20),
        "mkv_truncated": truncate_at_packet(mkv, root / "mkv_truncated.mkv", keep=20),
        "byte_flips": flip_bytes(good, root / "byte_flips.mp4", count=40, seed=3, start_fraction=0.25),
        # good.mp4 keeps its index (moov) in the last ~6% of the file.
        "header_flips": flip_bytes(good, root / "header_flips.mp4", count=50, seed=3, start_fraction=0.95),
    }
    whole = faststart.read_bytes()
    (root / "h264_truncated.mp4").write_bytes(whole[: len(whole) // 2])
    out["h264_truncated"] = root / "h264_truncated.mp4"
    plain = good.read_bytes()  # index at the end: cutting it loses the index itself
    (root / "h264_truncated_no_index.mp4").write_bytes(plain[: len(plain) // 2])
    out["h264_truncated_no_index"] = root / "h264_truncated_no_index.mp4"
    (root / "empty.mp4").write_bytes(b"")
    out["empty"] = root / "empty.mp4"
    (root / "text.mp4").write_text("this is a text file, not a video\n" * 40)
    out["text"] = root / "text.mp4"
    return out


@pytest.fixture(scope="module")
def probed(files: dict[str, Path]) -> pd.DataFrame:
    frame = probe_videos([(name, str(path)) for name, path in files.items()], progress=False)
    return frame.set_index("video_id", drop=False)


COPY_AGAIN = r": copy the complete file again \(or re-export it\)"
EXPECTED = {
    "good": ("accepted", None),
    "no_audio": ("accepted", None),
    "vfr": ("accepted", None),
    "largest_allowed": ("accepted", None),
    "empty": ("quarantined", r"empty file \(0 bytes\): the upload or copy did not finish; copy the file again"),
    "text": (
        "quarantined",
        r"cannot open as a media container \(.*Invalid data.*\): not a video file, .+; "
        r"re-export it as MP4 .+",
    ),
    # Every top-level MP4 box states its size: a cut file has a last box that claims more bytes than are left.
    "h264_truncated": (
        "quarantined",
        r"MP4 cut short: box 'mdat' at byte \d+ claims \d+ bytes but the file ends "
        r"at byte \d+" + COPY_AGAIN,
    ),
    # Without its index FFmpeg only says "Invalid data found"; the box sizes say what happened.
    "h264_truncated_no_index": (
        "quarantined",
        r"MP4 cut short: box 'mdat' at byte \d+ claims \d+ bytes but the "
        r"file ends at byte \d+; the index \(moov box\) is missing too" + COPY_AGAIN,
    ),
    "mpeg4_truncated": ("quarantined", r"MP4 cut short: .+" + COPY_AGAIN),
    # Matroska states no sizes to compare: it decodes 20 frames and stops without any error, so only
    # the frame count catches it.
    "mkv_truncated": (
        "quarantined",
        r"decoded 20 of 48 expected frames \(truncated\?\): the file is probably "
        r"cut short; copy the complete file again",
    ),
    "byte_flips": (
        "quarantined",
        r"decoding failed after \d+ frames \(.+\): the video data is damaged; "
        r"re-export it as MP4 .+",
    ),
    "header_flips": ("quarantined", r"(cannot open as a media container|MP4 cut short|damaged MP4 structure).+"),
    "zero_duration": ("quarantined", r"zero duration in the header: re-mux it .+"),
    "too_large": (
        "quarantined",
        r"frame size 4096x2304 \(9.4 megapixels\) exceeds the limit of 8.3 megapixels "
        r"per frame and 8192 pixels per side: downscale it to 4K .+",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_input_has_its_expected_outcome(probed: pd.DataFrame, name: str) -> None:
    status, reason = EXPECTED[name]
    row = probed.loc[name]
    assert row["status"] == status, row["reason"]
    if reason is None:
        assert pd.isna(row["reason"])
    else:
        assert re.fullmatch(reason, row["reason"]), row["reason"]


def test_counts_reconcile(probed: pd.DataFrame, files: dict[str, Path]) -> None:
    counts = probed["status"].value_counts()
    assert len(probed) == len(files) == counts["accepted"] + counts["quarantined"]
    assert probed.loc[probed["status"] == "quarantined", "reason"].notna().all()


def test_random_byte_flips_never_stop_the_run(files: dict[str, Path], tmp_path: Path) -> None:
    # Flips anywhere (payload, index, both): each file gets a row and a verdict; any
    # quarantine carries a reason; nothing raises out of probe_videos.
    items = []
    for seed in range(8):
        target = tmp_path / f"flip{seed}.mp4"
        flip_bytes(files["good"], target, count=20 + 10 * seed, seed=seed, start_fraction=seed / 8)
        items.append((f"flip{seed}", str(target)))
    result = probe_videos(items, progress=False)
    assert len(result) == 8 and set(result["status"]) <= {"accepted", "quarantined"}
    quarantined = result[result["status"] == "quarantined"]
    assert len(quarantined) >= 1 and quarantined["reason"].str.len().gt(0).all()


def test_truncated_mpeg4_decodes_part_without_raising(files: dict[str, Path]) -> None:
    facts = probe_file(str(files["mpeg4_truncated"]))  # would raise if decoding errored
    assert (facts["video_codec"], facts["n_frames_expected"], facts["n_frames_decoded"]) == ("mpeg4", 48, 20)


def test_no_audio_is_accepted_with_audio_marked_missing(
    probed: pd.DataFrame, files: dict[str, Path], tmp_path: Path
) -> None:
    row = probed.loc["no_audio"]
    assert not row["has_audio"] and pd.isna(row["sample_rate"])
    facts = extract_one(str(files["no_audio"]), str(tmp_path / "s.npz"), FeatureConfig())
    shard = read_shard(tmp_path / "s.npz")
    assert facts["has_audio"] is False and not shard.has_audio
    assert shard.mel.shape == FeatureConfig().mel_shape() and not shard.mel.any()


def test_oversized_frames_are_never_decoded(probed: pd.DataFrame) -> None:
    row = probed.loc["too_large"]
    assert (row["width"], row["height"]) == (4096, 2304)
    assert pd.isna(row["n_frames_decoded"])  # rejected from the header alone


def test_largest_allowed_resolution_is_downscaled_under_a_memory_cap(
    probed: pd.DataFrame, files: dict[str, Path], tmp_path: Path
) -> None:
    accepted = probed.loc[["largest_allowed"]].reset_index(drop=True)
    # 256 MB over the worker's baseline: a 4K frame is decoded and scaled straight to 32x32.
    result = extract_features(accepted, tmp_path, FeatureConfig(), progress=False, memory_mb=256)
    assert result.loc[0, "status"] == "accepted", result.loc[0, "reason"]
    shard = read_shard(Path(result.loc[0, "shard_path"]))
    assert shard.frames.shape == (8, 3, 32, 32) and shard.frames.dtype == np.uint8


def test_variable_frame_rate_samples_the_frame_at_each_moment(probed: pd.DataFrame, files: dict[str, Path]) -> None:
    row = probed.loc["vfr"]
    assert row["n_frames_decoded"] == row["n_frames_expected"] == 24
    frames, plan = sample_frames(str(files["vfr"]), n_frames=8, size=8)
    times = np.array(VFR_PTS_MS) / 1000
    for target, taken, pixels in zip(plan.timestamps, plan.frame_times, frames):
        index = int(np.argmax(times >= target - 1e-9))  # the first frame at or after target
        assert taken == pytest.approx(times[index])
        assert abs(int(pixels.mean()) - grey_level(index)) <= 3


def test_sampling_cost_does_not_grow_with_length(tmp_path: Path) -> None:
    # Same keyframe interval (1 s), one minute and ten minutes long.
    short = write_video(tmp_path / "short.mp4", n_frames=240, fps=4, width=32, height=32, gop=4)
    long = write_video(tmp_path / "long.mp4", n_frames=2400, fps=4, width=32, height=32, gop=4)
    _, plan_short = sample_frames(str(short))
    _, plan_long = sample_frames(str(long))
    assert plan_long.frames_decoded <= plan_short.frames_decoded + 8
    assert plan_long.frames_decoded < 2400 / 50  # ~2% of the video


def test_one_keyframe_file_is_decoded_about_once(tmp_path: Path) -> None:
    # x264's default interval (250) makes this file one keyframe: seeking for each sample would
    # decode it ~4 times; decoding forward between samples decodes it about once.
    path = write_video(tmp_path / "one_gop.mp4", n_frames=200, fps=10, width=32, height=32)
    _, plan = sample_frames(str(path))
    assert plan.frames_decoded <= 200 + 8


def test_keyframe_mode_decodes_one_frame_per_sample(tmp_path: Path) -> None:
    path = write_video(tmp_path / "gop.mp4", n_frames=160, fps=8, width=32, height=32, gop=8)
    frames, plan = sample_frames(str(path), seek="keyframe")
    assert plan.frames_decoded == 8 and plan.seek == "keyframe"
    for target, taken in zip(plan.timestamps, plan.frame_times):
        assert target - 1.0 <= taken <= target  # the keyframe at or before the moment
    with pytest.raises(ValueError, match="seek must be one of"):
        sample_frames(str(path), seek="nearest")  # type: ignore[arg-type]


def test_hostile_extraction_quarantines_only_that_file(files: dict[str, Path], tmp_path: Path) -> None:
    # Feature extraction meets the byte-flipped file if a probe ever let it through.
    outcomes = run_isolated(
        extract_one,
        [
            (name, (str(files[name]), str(tmp_path / f"{name}.npz"), FeatureConfig()))
            for name in ("good", "text", "header_flips")
        ],
        timeout_s=30,
        memory_mb=512,
        progress=False,
    )
    assert outcomes["good"].error is None
    assert outcomes["text"].error is not None and outcomes["header_flips"].error is not None


def test_limits_are_configurable() -> None:
    assert ProbeLimits().key() == ProbeLimits(timeout_s=5).key()  # limits on cost only
    assert ProbeLimits().key() != ProbeLimits(max_pixels=1920 * 1080).key()


def test_keyframe_mode_takes_exact_frames_when_keyframes_are_sparse(tmp_path: Path) -> None:
    # One keyframe for 200 frames: the keyframe serves the first sample, the rest are exact
    # frames (decoding forward), never the same keyframe eight times.
    path = write_video(tmp_path / "one_gop.mp4", n_frames=200, fps=10, width=32, height=32)
    frames, plan = sample_frames(str(path), seek="keyframe")
    assert plan.frame_times[0] == 0.0
    assert len(set(plan.frame_times)) == 8
    for target, taken in zip(plan.timestamps[1:], plan.frame_times[1:]):
        assert target <= taken < target + 0.1 + 1e-9
    assert len({frame.tobytes() for frame in frames}) == 8
    assert plan.frames_decoded <= 200 + 16


def test_long_video_probe_counts_packets_past_the_decode_budget(tmp_path: Path) -> None:
    long = write_video(tmp_path / "long.mp4", n_frames=2400, fps=4, width=32, height=32, gop=4)
    limits = ProbeLimits(decode_budget_frames=100)
    facts = probe_file(str(long), limits)
    assert facts["n_frames_decoded"] == facts["n_frames_expected"] == 2400
    # Truncation past the budget is still caught: the missing packets are not there to count.
    mpeg4 = write_video(tmp_path / "m.mp4", codec="mpeg4", n_frames=48, faststart=True)
    cut = truncate_at_packet(mpeg4, tmp_path / "cut.mp4", keep=30)
    facts = probe_file(str(cut), ProbeLimits(decode_budget_frames=10))
    assert facts["n_frames_decoded"] == 30
