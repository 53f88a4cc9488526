"""A fixed-size log-mel spectrogram of short windows of a video's soundtrack (the middle, or spread
across the whole clip and averaged).

Only the window is decoded (after a seek), so the cost does not grow with the video length.
Any rate is resampled to the feature rate (12 kHz phone audio as well as 96 kHz studio audio).
An audio track that cannot be read raises ``AudioUnavailable``: the caller marks the audio
missing and keeps the video, because sound is an optional modality.
"""

from __future__ import annotations

from functools import lru_cache

import av
import numpy as np

from vidrec.media.pool import MediaError
from vidrec.media.streams import main_audio_stream

_LOG_FLOOR = 1e-6


class AudioUnavailable(MediaError):
    """The audio track exists but cannot be used (no packets, undecodable, unseekable)."""


def n_mel_frames(sample_rate: int, seconds: float, hop_ms: float, win_ms: float) -> int:
    """Number of STFT frames in the fixed window (no padding at the edges)."""
    n_samples = int(round(seconds * sample_rate))
    win = int(round(win_ms * sample_rate / 1000))
    hop = int(round(hop_ms * sample_rate / 1000))
    return 1 + max(0, n_samples - win) // hop


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``(n_fft // 2 + 1, n_mels)`` triangular HTK-mel filters.

    Written here because librosa would pull numba and llvmlite in for this one function.
    """

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(0.0, hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (fft_hz[:, None] - lower) / (centre - lower)
    falling = (upper - fft_hz[:, None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def _decode_window(
    container: av.container.InputContainer, sample_rate: int, seconds: float, name: str, centre: float = 0.5
) -> np.ndarray | None:
    """Mono float32 samples of ``seconds`` around ``centre`` (a share of the duration; 0.5: the middle),
    kept inside the clip and zero padded, or None without audio."""
    wanted = int(round(seconds * sample_rate))
    stream = main_audio_stream(container)
    if stream is None:
        return None
    if stream.codec_context is None:
        raise AudioUnavailable(f"no decoder for the audio codec of {name}")
    try:
        stream.codec_context.thread_count = 1  # one worker per core; threads only add overhead
    except RuntimeError:
        pass  # a later window of the same clip: the decoder is already open with that setting
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    else:
        duration = (container.duration or 0) / av.time_base
    start = max(0.0, min(duration * centre - seconds / 2, duration - seconds))
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    have, skip, passthrough = 0, None, False
    try:
        # Always seek, also to 0: the container may have been read already (frames come first).
        container.seek(int(start / stream.time_base), stream=stream)
    except (av.FFmpegError, ValueError):
        # A track without packets fails right here with FFmpeg's EPERM ("Operation not permitted"),
        # which would read as a file-permission problem.
        raise AudioUnavailable(f"the audio track of {name} holds no packets to read at {start:.1f} s") from None
    try:
        for frame in container.decode(stream):
            if skip is None:
                # The seek lands on or before ``start``: drop samples up to it.
                skip = int(round(max(0.0, start - (frame.time or 0.0)) * sample_rate))
                # Already mono float at the target rate: copying beats resampling (identical).
                passthrough = (
                    frame.format.name == "fltp" and frame.layout.nb_channels == 1 and frame.sample_rate == sample_rate
                )
            outs = [frame] if passthrough else resampler.resample(frame)
            for out in outs:
                chunks.append(out.to_ndarray()[0])
                have += out.samples
            if have >= wanted + skip:
                break
        else:
            for out in [] if passthrough else resampler.resample(None):
                chunks.append(out.to_ndarray()[0])
    except (av.FFmpegError, ValueError) as error:
        raise AudioUnavailable(f"audio decoding failed in {name} ({type(error).__name__}: {error})") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    samples = samples[skip or 0 :][:wanted]
    return np.pad(samples, (0, wanted - len(samples))).astype(np.float32)


def log_mel(
    path: str,
    sample_rate: int = 16000,
    n_mels: int = 40,
    seconds: float = 2.0,
    hop_ms: float = 10.0,
    win_ms: float = 25.0,
    windows: int = 1,
) -> tuple[np.ndarray, bool]:
    """``(F, n_mels)`` float16 log-mel of the middle window (or of ``windows`` across the clip, averaged),
    and whether there was audio.

    Without an audio stream the result is all zeros with ``has_audio=False``; F depends only
    on the arguments (see ``n_mel_frames``).
    """
    with av.open(path) as container:
        return log_mel_from(container, sample_rate, n_mels, seconds, hop_ms, win_ms, name=path, windows=windows)


def log_mel_from(
    container: av.container.InputContainer,
    sample_rate: int = 16000,
    n_mels: int = 40,
    seconds: float = 2.0,
    hop_ms: float = 10.0,
    win_ms: float = 25.0,
    name: str = "input",
    windows: int = 1,
) -> tuple[np.ndarray, bool]:
    """``log_mel`` on an already open container (frames and audio share one open file).

    ``windows`` > 1: that many windows at the centres of equal slices of the clip, their log-mels
    averaged, so the whole soundtrack counts (an intro, a drop, an outro), not only the middle."""
    n_frames = n_mel_frames(sample_rate, seconds, hop_ms, win_ms)
    mels = []
    for i in range(windows):
        samples = _decode_window(container, sample_rate, seconds, name, centre=(i + 0.5) / windows)
        if samples is None:
            return np.zeros((n_frames, n_mels), np.float16), False
        mels.append(_log_mel_of(samples, sample_rate, n_mels, n_frames, hop_ms, win_ms))
    return np.mean(mels, axis=0).astype(np.float16), True


def _log_mel_of(
    samples: np.ndarray, sample_rate: int, n_mels: int, n_frames: int, hop_ms: float, win_ms: float
) -> np.ndarray:
    win = int(round(win_ms * sample_rate / 1000))
    hop = int(round(hop_ms * sample_rate / 1000))
    n_fft = 1 << (win - 1).bit_length()
    if len(samples) < win:
        samples = np.pad(samples, (0, win - len(samples)))
    windows = np.lib.stride_tricks.sliding_window_view(samples, win)[::hop][:n_frames]
    # float32 in, complex64 out: the spectrogram is stored as float16 anyway.
    spectrum = np.fft.rfft(windows.astype(np.float32) * _hann(win), n=n_fft, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    mel = power @ mel_filterbank(sample_rate, n_fft, n_mels)
    return np.log(mel + _LOG_FLOOR).astype(np.float32)


@lru_cache(maxsize=8)
def _hann(win: int) -> np.ndarray:
    return np.hanning(win).astype(np.float32)
