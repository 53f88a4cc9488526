"""Render one catalogue item to a real MP4 (H.264 video + optional AAC mono audio) whose content encodes
its attributes."""

from __future__ import annotations

import colorsys
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class RenderJob:
    """Everything needed to render one video, picklable for a process pool."""

    video_id: str
    path: str
    hue: float
    pitch_hz: float
    style: int
    energy: float
    quality: float
    has_audio: bool
    n_frames: int
    fps: int
    width: int
    height: int
    sample_rate: int
    seed: int
    index: int


def _rgb(hue: float, sat: float, val: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue, sat, val), dtype=np.float32) * 255.0


def _wrapped(delta: np.ndarray, size: int) -> np.ndarray:
    # Shapes wrap around the frame edges, so distances are taken on a torus.
    return (delta + size / 2) % size - size / 2


def render_frames(job: RenderJob, rng: np.random.Generator) -> np.ndarray:
    """Frames as uint8 (T, H, W, 3): category hue, shapes by style, speed by energy, noise by (1 - quality)."""
    t_idx = np.arange(job.n_frames, dtype=np.float32)[:, None, None]
    yy, xx = np.mgrid[0 : job.height, 0 : job.width].astype(np.float32)
    speed = (4.0 + 50.0 * job.energy) / job.fps  # pixels per frame
    if job.style == 2:
        angle = rng.uniform(0, np.pi)
        proj = xx * np.cos(angle) + yy * np.sin(angle)
        mask = ((proj[None] + speed * t_idx) % 16.0) < 6.0
    else:
        mask = np.zeros((job.n_frames, job.height, job.width), dtype=bool)
        for _ in range(3):
            x0, y0 = rng.uniform(0, job.width), rng.uniform(0, job.height)
            direction = rng.uniform(0, 2 * np.pi)
            cx = x0 + speed * np.cos(direction) * t_idx
            cy = y0 + speed * np.sin(direction) * t_idx
            dx, dy = _wrapped(xx[None] - cx, job.width), _wrapped(yy[None] - cy, job.height)
            if job.style == 0:
                mask |= dx * dx + dy * dy < 49.0
            else:
                mask |= (np.abs(dx) < 6.0) & (np.abs(dy) < 6.0)
    frames = np.where(mask[..., None], _rgb(job.hue, 0.9, 0.95), _rgb(job.hue, 0.45, 0.40))
    noise_sigma = 45.0 * (1.0 - job.quality)
    frames = frames + rng.normal(0.0, noise_sigma, frames.shape).astype(np.float32)
    return np.clip(frames, 0, 255).astype(np.uint8)


def render_audio(job: RenderJob, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Mono float32 samples: category pitch, style timbre, beat pulses at a rate set by energy, a little noise."""
    n = int(round(duration_s * job.sample_rate))
    t = np.arange(n, dtype=np.float64) / job.sample_rate
    cycles = job.pitch_hz * t
    if job.style == 0:
        tone = np.sin(2 * np.pi * cycles)
    elif job.style == 1:
        tone = 0.6 * np.sign(np.sin(2 * np.pi * cycles))
    else:
        tone = 0.7 * (2.0 * (cycles % 1.0) - 1.0)
    beat_hz = 1.0 + 5.0 * job.energy
    envelope = 0.2 + 0.8 * np.exp(-6.0 * ((t * beat_hz) % 1.0))
    samples = 0.4 * tone * envelope + rng.normal(0.0, 0.02, n)
    return np.clip(samples, -1.0, 1.0).astype(np.float32)


def render_video(job: RenderJob) -> str:
    """Render `job` to `job.path` atomically (temporary file, then rename); returns the video_id."""
    rng = np.random.default_rng([job.seed, 1, job.index])
    frames = render_frames(job, rng)
    path = Path(job.path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # bitexact keeps library version strings out of the file so bytes repeat across runs.
    with av.open(str(tmp), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        video = container.add_stream("libx264", rate=job.fps, options={"preset": "ultrafast", "threads": "1"})
        video.width, video.height, video.pix_fmt = job.width, job.height, "yuv420p"
        # A keyframe every second, as streaming encoders emit: sampling frames by seeking then
        # decodes at most one second per sample (the x264 default, 250 frames, is one per file).
        video.codec_context.gop_size = job.fps
        audio = None
        if job.has_audio:
            audio = container.add_stream("aac", rate=job.sample_rate)
            audio.layout = "mono"
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            samples = render_audio(job, job.n_frames / job.fps, rng)
            frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = job.sample_rate, 0
            container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
    os.replace(tmp, path)
    return job.video_id
