"""Media probing, the quarantine rules and the isolation pool, over tiny PyAV MP4s (conftest.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.vidrec.media_fixtures import FPS, SAMPLE_RATE, SIZE
from vidrec.media.pool import describe_failure, run_isolated
from vidrec.media.probe import (
    VIDEOS_COLUMNS,
    ProbeLimits,
    decide_status,
    file_sha256,
    probe_file,
)

# --- probing ---------------------------------------------------------------------------


def test_probe_returns_one_row_per_input(probed: pd.DataFrame) -> None:
    assert list(probed.columns) == VIDEOS_COLUMNS
    assert len(probed) == 7
    counts = probed["status"].value_counts().to_dict()
    assert counts == {"accepted": 2, "quarantined": 5}
    assert probed.loc[probed["status"] == "accepted", "reason"].isna().all()
    assert probed.loc[probed["status"] == "quarantined", "reason"].notna().all()


def test_probe_accepts_good_file(probed: pd.DataFrame, media: dict[str, Path]) -> None:
    row = probed.loc["good"]
    assert row["status"] == "accepted"
    assert row["path"] == str(media["good"])
    assert row["sha256"] == file_sha256(str(media["good"]))
    assert row["bytes"] == media["good"].stat().st_size
    assert row["container"].startswith("mov,mp4")
    assert row["video_codec"] == "h264"
    assert (row["width"], row["height"]) == (SIZE, SIZE)
    assert row["fps"] == pytest.approx(FPS)
    assert row["duration_s"] == pytest.approx(3.0, abs=0.2)
    assert row["n_frames_expected"] == 3 * FPS
    assert row["n_frames_decoded"] == 3 * FPS
    assert row["has_audio"]
    assert row["audio_codec"] == "aac"
    assert row["sample_rate"] == SAMPLE_RATE


def test_probe_accepts_file_without_audio(probed: pd.DataFrame) -> None:
    row = probed.loc["silent"]
    assert row["status"] == "accepted"
    assert not row["has_audio"]
    assert pd.isna(row["audio_codec"]) and pd.isna(row["sample_rate"])


@pytest.mark.parametrize(
    ("name", "reason_start"),
    [
        ("empty", "empty file (0 bytes)"),
        ("text", "cannot open as a media container"),
        ("truncated", "MP4 cut short: box 'mdat'"),
        ("missing", "file not found"),
        ("crash", "probe worker crashed (exit code -6)"),
    ],
)
def test_probe_quarantines_bad_inputs(probed: pd.DataFrame, name: str, reason_start: str) -> None:
    row = probed.loc[name]
    assert row["status"] == "quarantined"
    assert row["reason"].startswith(reason_start), row["reason"]


def test_truncated_reason_names_the_cut(probed: pd.DataFrame, media: dict[str, Path]) -> None:
    # The index is first (faststart), so the file opens; its mdat box claims the bytes that were cut off.
    row = probed.loc["truncated"]
    size = media["truncated"].stat().st_size
    assert row["reason"].endswith(
        f"but the file ends at byte {size}: copy the complete file again (or re-export it)"
    ), row["reason"]


def test_crash_quarantines_only_its_file(probed: pd.DataFrame, media: dict[str, Path]) -> None:
    # The crashed worker is replaced; hashing happened in the parent so identity is kept.
    assert probed.loc["crash", "sha256"] == file_sha256(str(media["crash"]))
    assert probed.loc["good", "status"] == "accepted"


def test_oversized_frames_are_not_decoded(media: dict[str, Path]) -> None:
    limits = ProbeLimits(max_pixels=32 * 32)
    facts = probe_file(str(media["good"]), limits)
    assert facts["n_frames_decoded"] is None
    status, reason = decide_status(facts, limits)
    assert status == "quarantined" and reason.startswith(f"frame size {SIZE}x{SIZE} (0.0 megapixels) exceeds")


# --- quarantine rules ----------------------------------------------------------------


def _facts(**overrides: object) -> dict[str, object]:
    facts = {
        "video_codec": "h264",
        "width": 640,
        "height": 360,
        "duration_s": 6.0,
        "fps": 8.0,
        "n_frames_expected": 48,
        "n_frames_decoded": 48,
    }
    facts.update(overrides)
    return facts


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, ("accepted", None)),
        (
            {"width": 8000, "height": 6000},
            ("quarantined", "frame size 8000x6000 (48.0 megapixels) exceeds the limit of 8.3 megapixels per frame"),
        ),
        ({"width": 3840, "height": 2160}, ("accepted", None)),
        ({"width": 2160, "height": 3840}, ("accepted", None)),  # portrait 4K: same pixels, same cost
        ({"width": 9000, "height": 400}, ("quarantined", "frame size 9000x400 (3.6 megapixels) exceeds")),
        ({"fps": 240.0, "n_frames_expected": 1440, "n_frames_decoded": 1440}, ("accepted", None)),  # slow motion
        ({"fps": 5000.0}, ("quarantined", "frame rate 5000 fps exceeds 1000 fps")),
        ({"duration_s": 0.1, "n_frames_expected": 1, "n_frames_decoded": 1}, ("accepted", None)),  # one frame
        ({"video_codec": None}, ("quarantined", "no video stream (an audio-only or data file): add the video")),
        ({"duration_s": 0.0}, ("quarantined", "zero duration in the header: re-mux it")),
        (
            {"duration_s": None},
            ("quarantined", "unknown duration (neither the header nor the packets state one): re-export it"),
        ),
        (
            {"duration_s": None, "raw_stream": True},
            ("quarantined", "a bare h264 stream without a container has no timing or duration: wrap it in MP4"),
        ),
        ({"duration_s": 5 * 3600.0}, ("quarantined", "duration 18000 s exceeds the limit of 14400 s: split it")),
        (
            {"n_frames_decoded": 12},
            ("quarantined", "decoded 12 of 48 expected frames (truncated?): the file is probably cut short; copy"),
        ),
        ({"n_frames_decoded": 44}, ("accepted", None)),  # 44/48 >= 0.9
        ({"n_frames_decoded": 0}, ("quarantined", "no decodable video frames (the video data is damaged): re-")),
        ({"n_frames_expected": None, "n_frames_decoded": 5}, ("accepted", None)),
        (
            {"truncated": "MP4 cut short: box 'mdat' at byte 40 claims 900 bytes but the file ends at byte 400"},
            (
                "quarantined",
                "MP4 cut short: box 'mdat' at byte 40 claims 900 bytes but the file ends at byte 400: "
                "copy the complete file again",
            ),
        ),
    ],
)
def test_decide_status(overrides: dict[str, object], expected: tuple[str, str | None]) -> None:
    # Reasons start with what is wrong and go on to what to do; the test pins the start.
    status, reason = decide_status(_facts(**overrides), ProbeLimits())
    assert status == expected[0]
    assert reason is None if expected[1] is None else reason.startswith(expected[1]), reason


def test_decide_status_frame_ratio_is_configurable() -> None:
    limits = ProbeLimits(min_frame_ratio=0.2)
    assert decide_status(_facts(n_frames_decoded=12), limits) == ("accepted", None)


# --- the isolation pool --------------------------------------------------------------


def test_pool_turns_crash_hang_and_memory_blowup_into_outcomes() -> None:
    jobs_sleep = [("fast", (0.0,)), ("hang", (30.0,))]
    sleeps = run_isolated(time.sleep, jobs_sleep, timeout_s=1.0, memory_mb=256, progress=False)
    assert sleeps["fast"].error is None
    assert describe_failure(sleeps["hang"].error, label="probe", timeout_s=1.0, memory_mb=256).startswith(
        "probe timed out after 1 s: it is retried on the next run"
    )

    crashed = run_isolated(os.abort, [("boom", ())], timeout_s=10, memory_mb=256, progress=False)
    assert describe_failure(crashed["boom"].error, label="probe", timeout_s=10, memory_mb=256).startswith(
        "probe worker crashed (exit code -6): it is retried"
    )

    big = run_isolated(bytearray, [("big", (2 << 30,))], timeout_s=10, memory_mb=128, progress=False)
    assert isinstance(big["big"].error, MemoryError)
    assert "ran out of memory" in describe_failure(big["big"].error, label="probe", timeout_s=10, memory_mb=128)
