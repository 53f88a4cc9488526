"""Frame and audio sampling and feature shards, over tiny PyAV MP4s (conftest.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.vidrec.media_fixtures import FPS, SAMPLE_RATE, TONE_HZ
from vidrec.media.audio import log_mel, mel_filterbank
from vidrec.media.features import FeatureConfig, extract_features
from vidrec.media.frames import SamplingPlan, sample_frames
from vidrec.media.probe import (
    file_sha256,
)
from vidrec.media.shards import read_shard, shard_path, write_shard

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
    mel, _ = log_mel(str(media["good"]), windows=config.audio_windows)
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
