"""Media probing, quarantine rules, frame and audio sampling, and feature shards.

Fixtures are tiny MP4s written with PyAV: a moving orange square (64x64, 8 fps) with an
optional 440 Hz AAC tone (mono, 16 kHz).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from vidrec.media.audio import log_mel, mel_filterbank
from vidrec.media.features import FeatureConfig, extract_features
from vidrec.media.frames import SamplingPlan, sample_frames
from vidrec.media.pool import describe_failure, run_isolated
from vidrec.media.probe import (
    CRASH_HOOK_ENV_VAR,
    VIDEOS_COLUMNS,
    ProbeLimits,
    decide_status,
    file_sha256,
    probe_file,
    probe_videos,
)
from vidrec.media.shards import read_shard, shard_path, write_shard

FPS, SIZE, TONE_HZ, SAMPLE_RATE = 8, 64, 440.0, 16000


def write_mp4(
    path: Path,
    seconds: int = 3,
    audio: bool = True,
    faststart: bool = False,
    gop: int | None = None,
) -> Path:
    """An H.264 MP4 with a square moving left to right; ``faststart`` puts the index first."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast"}
        if gop:
            video.codec_context.gop_size = gop
        # Streams must all exist before the first packet is muxed.
        sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio else None
        n = seconds * FPS
        for i in range(n):
            image = np.zeros((SIZE, SIZE, 3), np.uint8)
            x = int(i * (SIZE - 16) / (n - 1))
            image[20:36, x : x + 16] = (255, 128, 0)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
            tone = (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
            for start in range(0, len(tone), 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate = SAMPLE_RATE
                chunk.pts = start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    files = {
        "good": write_mp4(root / "good.mp4"),
        "silent": write_mp4(root / "silent.mp4", audio=False),
        "long": write_mp4(root / "long.mp4", seconds=30, gop=8),
        "short_gop": write_mp4(root / "short_gop.mp4", seconds=3, gop=8),
    }
    # Truncating a faststart file keeps the index, so it opens and decodes short.
    whole = write_mp4(root / "faststart.mp4", faststart=True).read_bytes()
    (root / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    files["truncated"] = root / "truncated.mp4"
    (root / "empty.mp4").write_bytes(b"")
    files["empty"] = root / "empty.mp4"
    (root / "text.mp4").write_text("this is not a video\n" * 50)
    files["text"] = root / "text.mp4"
    # Different bytes from "good" (identical bytes would be probed once, as one content).
    (root / "crash.mp4").write_bytes(files["good"].read_bytes() + b"\0")
    files["crash"] = root / "crash.mp4"
    files["missing"] = root / "missing.mp4"
    return files


@pytest.fixture(scope="module")
def probed(media: dict[str, Path]) -> pd.DataFrame:
    """One probe run over every fixture; the ``crash`` file aborts its worker via the hook."""
    names = ["good", "silent", "truncated", "empty", "text", "missing", "crash"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CRASH_HOOK_ENV_VAR, str(media["crash"]))
        started = time.monotonic()
        frame = probe_videos([(name, str(media[name])) for name in names], progress=False)
        print(f"probe: {len(names)} files in {time.monotonic() - started:.2f} s")
    return frame.set_index("video_id", drop=False)


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


# --- frames --------------------------------------------------------------------------


def test_sample_frames_shape_and_determinism(media: dict[str, Path]) -> None:
    frames, plan = sample_frames(str(media["good"]), n_frames=8, size=32)
    assert frames.shape == (8, 3, 32, 32) and frames.dtype == np.uint8
    again, plan_again = sample_frames(str(media["good"]), n_frames=8, size=32)
    assert np.array_equal(frames, again) and plan == plan_again
    assert plan.timestamps == pytest.approx([(i + 0.5) * 3.0 / 8 for i in range(8)], abs=0.01)
    assert plan.size == 32 and plan.repeated == ()
    # The square moves, so the first and last samples differ; its colour is orange.
    assert not np.array_equal(frames[0], frames[-1])
    red, green, blue = frames[0].reshape(3, -1).max(axis=1)
    assert red > 200 and 80 < green < 180 and blue < 60


def test_sample_frames_repeats_last_good_frame_past_truncation(media: dict[str, Path]) -> None:
    frames, plan = sample_frames(str(media["truncated"]), n_frames=8)
    assert frames.shape == (8, 3, 32, 32)
    assert plan.repeated and plan.repeated == tuple(range(plan.repeated[0], 8))
    first = plan.repeated[0]
    assert first > 0
    for i in plan.repeated:
        assert np.array_equal(frames[i], frames[first - 1])


def test_sample_frames_cost_does_not_grow_with_length(media: dict[str, Path]) -> None:
    _, short = sample_frames(str(media["short_gop"]), n_frames=8)
    _, long = sample_frames(str(media["long"]), n_frames=8)
    assert long.frames_decoded < 30 * FPS / 2  # far less than the whole 240-frame video
    assert long.frames_decoded <= 2 * short.frames_decoded + 8


# --- audio ---------------------------------------------------------------------------


def test_log_mel_shape_and_tone(media: dict[str, Path]) -> None:
    mel, has_audio = log_mel(str(media["good"]))
    assert has_audio
    assert mel.shape == (198, 40) and mel.dtype == np.float16
    assert np.isfinite(mel).all()
    # The loudest band is the one whose filter responds most to the 440 Hz tone.
    bank = mel_filterbank(SAMPLE_RATE, 512, 40)
    tone_band = int(np.argmax(bank[round(TONE_HZ / (SAMPLE_RATE / 512))]))
    assert int(np.argmax(mel.astype(np.float32).mean(axis=0))) == tone_band
    # Long files: the window comes from the middle, with the same shape.
    mel_long, _ = log_mel(str(media["long"]))
    assert mel_long.shape == (198, 40)


def test_log_mel_without_audio_is_zeros(media: dict[str, Path]) -> None:
    mel, has_audio = log_mel(str(media["silent"]), n_mels=24, seconds=1.0)
    assert not has_audio
    assert mel.shape == (98, 24) and mel.dtype == np.float16
    assert not mel.any()


# --- shards and extraction -----------------------------------------------------------


def test_shard_round_trip_is_atomic(tmp_path: Path) -> None:
    sha = "ab" + "0" * 62
    path = shard_path(tmp_path, sha)
    assert path == tmp_path / "ab" / f"{sha}.npz"
    frames = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    mel = np.linspace(-5, 5, 30, dtype=np.float16).reshape(10, 3)
    plan = SamplingPlan((0.5, 1.5), 4, (1,), 7)
    write_shard(path, frames, mel, True, plan)
    shard = read_shard(path)
    assert np.array_equal(shard.frames, frames) and shard.frames.dtype == np.uint8
    assert np.array_equal(shard.mel, mel) and shard.mel.dtype == np.float16
    assert shard.has_audio is True and shard.plan == plan
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    with pytest.raises(ValueError, match="sha256"):
        shard_path(tmp_path, "../etc/passwd")


def test_extract_features_caches_by_content_hash(probed: pd.DataFrame, media: dict[str, Path], tmp_path: Path) -> None:
    accepted = probed[probed["status"] == "accepted"].reset_index(drop=True)
    # A second id for the same bytes shares one shard.
    twin = accepted.iloc[[0]].assign(video_id="good_twin")
    accepted = pd.concat([accepted, twin], ignore_index=True)
    config = FeatureConfig()

    started = time.monotonic()
    first = extract_features(accepted, tmp_path, config, progress=False)
    print(f"extract: {len(accepted)} videos in {time.monotonic() - started:.2f} s")
    assert first["video_id"].tolist() == ["good", "silent", "good_twin"]
    assert (first["status"] == "accepted").all() and not first["cached"].any()
    assert first["has_audio"].tolist() == [True, False, True]
    assert (first["n_frames"] == config.n_frames).all()
    assert first.loc[0, "shard_path"] == first.loc[2, "shard_path"]
    mtimes = {p: os.stat(p).st_mtime_ns for p in first["shard_path"]}

    second = extract_features(accepted, tmp_path, config, progress=False)
    assert second["cached"].all()
    assert second.drop(columns="cached").equals(first.drop(columns="cached"))
    assert {p: os.stat(p).st_mtime_ns for p in second["shard_path"]} == mtimes

    shard = read_shard(Path(first.loc[0, "shard_path"]))
    frames, plan = sample_frames(str(media["good"]), config.n_frames, config.frame_size, config.seek)
    mel, _ = log_mel(str(media["good"]))
    assert np.array_equal(shard.frames, frames) and shard.plan == plan
    assert np.array_equal(shard.mel, mel)


def test_extract_features_quarantines_failures(media: dict[str, Path], tmp_path: Path) -> None:
    rows = pd.DataFrame(
        {
            "video_id": ["text"],
            "path": [str(media["text"])],
            "sha256": [file_sha256(str(media["text"]))],
            "status": ["accepted"],
        }
    )
    result = extract_features(rows, tmp_path, progress=False, timeout_s=20)
    assert len(result) == 1
    row = result.iloc[0]
    assert row["status"] == "quarantined" and pd.isna(row["shard_path"])
    assert row["reason"].startswith(f"feature extraction cannot open {media['text']}")
    assert not any(tmp_path.rglob("*.npz"))


def test_extract_features_rejects_quarantined_rows(probed: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="accepted videos only"):
        extract_features(probed, tmp_path, progress=False)


def test_read_shard_accepts_the_earlier_one_member_per_field_format(tmp_path: Path) -> None:
    path = tmp_path / "old.npz"
    frames = np.ones((2, 3, 4, 4), np.uint8)
    mel = np.zeros((5, 3), np.float16)
    np.savez_compressed(
        path,
        frames=frames,
        mel=mel,
        has_audio=np.bool_(False),
        timestamps=np.array([0.5, 1.5]),
        size=np.int64(4),
        repeated=np.array([1]),
        frames_decoded=np.int64(3),
    )
    shard = read_shard(path)
    assert np.array_equal(shard.frames, frames) and not shard.has_audio
    assert shard.plan == SamplingPlan((0.5, 1.5), 4, (1,), 3, (), "exact")
