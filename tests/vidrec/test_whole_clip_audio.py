"""Whole-clip audio: log-mel windows spread across the clip and averaged, so sound outside the middle counts."""

from pathlib import Path

import av
import numpy as np

from vidrec.media.audio import log_mel
from vidrec.media.features import FeatureConfig, extract_one
from vidrec.media.shards import read_shard

RATE, SECONDS, TONE_S, HZ = 16000, 9, 2.5, 1000.0


def _intro_tone_mp4(path: Path) -> Path:
    """9 s: a 1 kHz tone for the first 2.5 s, then silence (a jingle, then talk-free footage)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=4)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=RATE, layout="mono")
        for i in range(SECONDS * 4):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 7 % 255, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        t = np.arange(SECONDS * RATE) / RATE
        wave = np.where(t < TONE_S, 0.3 * np.sin(2 * np.pi * HZ * t), 0.0).astype(np.float32)
        for start in range(0, len(wave), 1024):
            chunk = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = RATE, start
            container.mux(sound.encode(chunk))
        container.mux(sound.encode())
    return path


def test_windows_across_the_clip_hear_the_intro(tmp_path: Path) -> None:
    path = str(_intro_tone_mp4(tmp_path / "intro.mp4"))
    with av.open(path) as container:
        from vidrec.media.audio import log_mel_from

        whole, has_audio = log_mel_from(container, windows=3)
    middle, _ = log_mel(path)  # the middle 2 s only: silence
    assert has_audio and whole.shape == middle.shape
    # The intro's tone lifts the clip's average log-mel well above the silent middle's.
    assert float(whole.astype(np.float32).mean()) > float(middle.astype(np.float32).mean()) + 1.0


def test_extraction_uses_whole_clip_audio_and_masks_silent_files(tmp_path: Path) -> None:
    config = FeatureConfig()
    assert config.audio_windows == 3
    path = str(_intro_tone_mp4(tmp_path / "intro.mp4"))
    extract_one(path, str(tmp_path / "a.npz"), config)
    shard = read_shard(tmp_path / "a.npz")
    assert shard.has_audio and shard.mel.shape == config.mel_shape()
    assert float(shard.mel.astype(np.float32).mean()) > float(log_mel(path)[0].astype(np.float32).mean()) + 1.0
