"""Signal descriptors measure what they claim on synthetic frames and sound, and are standardised
with statistics saved in the encoder's weights."""

from __future__ import annotations

import math

import numpy as np
import torch

from models.nn.config import EncoderConfig
from models.nn.descriptors import DESCRIPTORS, SignalDescriptors, frame_statistics, sound_statistics
from vidrec.media.features import FeatureConfig


def _frames(noise: float, speed: float, seed: int = 0, t: int = 8, size: int = 32) -> torch.Tensor:
    """A bright bar moving ``speed`` pixels per frame over a dark background, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    x = np.arange(size)
    frames = np.empty((t, 3, size, size), np.float32)
    for i in range(t):
        bar = ((x[None, :] - speed * i) % size < 6).astype(np.float32)
        frames[i] = 0.2 + 0.6 * np.broadcast_to(bar, (size, size))
    frames += rng.normal(0, noise, frames.shape).astype(np.float32)
    return torch.from_numpy(np.clip(frames, 0, 1))[None]


def _mel(beat_hz: float, hop_ms: float = 10.0, n: int = 198, mels: int = 40) -> torch.Tensor:
    """A log-mel whose loudness pulses ``beat_hz`` times a second (decaying beats, like the world's)."""
    t = np.arange(n) * hop_ms / 1000
    envelope = 0.2 + 0.8 * np.exp(-6.0 * ((t * beat_hz) % 1.0))
    return torch.from_numpy(np.log(envelope[:, None] * np.ones((1, mels)) + 1e-3).astype(np.float32))[None]


def test_noise_level_grows_with_pixel_noise_and_motion_with_speed() -> None:
    quiet, noisy = frame_statistics(_frames(0.01, 2)), frame_statistics(_frames(0.15, 2))
    assert noisy[0, 0] > quiet[0, 0] + 1.0
    slow, fast = frame_statistics(_frames(0.01, 0)), frame_statistics(_frames(0.01, 3))
    assert fast[0, 1] > slow[0, 1] + 1.0


def test_tempo_reads_the_beat_rate() -> None:
    for beat_hz in (1.5, 2.0, 4.0):
        tempo = sound_statistics(_mel(beat_hz), hop_ms=10.0)[0, 0]
        assert math.isclose(math.exp(float(tempo)), beat_hz, rel_tol=0.08)


def test_descriptors_are_standardised_zero_where_missing_and_saved_with_the_weights() -> None:
    frames = torch.cat([_frames(n, s, seed=i) for i, (n, s) in enumerate([(0.01, 1), (0.1, 2), (0.2, 3), (0.05, 0)])])
    mel = torch.cat([_mel(b) for b in (1.0, 2.0, 3.0, 5.0)])
    mask = torch.tensor([[True, True, True], [True, False, True], [True, True, True], [False, True, True]])
    batch = {"frames": frames, "mel": mel, "mask": mask}
    module = SignalDescriptors(hop_ms=10.0, scale=1.0)
    module.fit([batch])
    out = module(batch)
    assert out.shape == (4, len(DESCRIPTORS))
    assert torch.equal(out[1, 2:], torch.zeros(2)) and torch.equal(out[3, :2], torch.zeros(2))
    present = module.presence(mask)
    for j in range(len(DESCRIPTORS)):
        assert abs(float(out[present[:, j], j].mean())) < 1e-5
    state = EncoderConfig(dim=16, frame_width=4, audio_width=4).build().state_dict()
    assert {"descriptors.mean", "descriptors.std"} <= set(state)


def test_the_encoder_reads_mel_frames_at_the_feature_extractor_hop() -> None:
    assert EncoderConfig().mel_hop_ms == FeatureConfig().hop_ms
