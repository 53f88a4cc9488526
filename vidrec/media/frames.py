"""Sample a fixed number of small RGB frames from a video by seeking, never decoding it all.

Each sample seeks back to the keyframe before its timestamp and decodes forward to it, so
the cost grows with the number of samples and the keyframe interval, not the video length.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from vidrec.media.pool import MediaError


@dataclass(frozen=True)
class SamplingPlan:
    """Which moments were sampled, at what size, and which samples reused an earlier frame."""

    timestamps: tuple[float, ...]
    size: int
    repeated: tuple[int, ...] = ()
    frames_decoded: int = 0


def plan_timestamps(duration_s: float, n_frames: int) -> tuple[float, ...]:
    """``n_frames`` moments evenly spaced inside the video (centres of equal segments)."""
    return tuple(round((i + 0.5) * duration_s / n_frames, 6) for i in range(n_frames))


def _duration_s(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    raise MediaError("cannot sample frames: duration unknown")


def _frame_at(
    container: av.container.InputContainer, stream: av.VideoStream, ts: float
) -> tuple[av.VideoFrame | None, int]:
    """The first frame at or after ``ts``, and how many frames were decoded to reach it.

    The stream ending within one frame interval before ``ts`` still counts as found (the
    last sample of a video); ending earlier means the data is missing (truncated), so None.
    """
    slack = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
    container.seek(int(ts / stream.time_base), stream=stream)
    last, decoded = None, 0
    for frame in container.decode(stream):
        decoded += 1
        if frame.time is None or frame.time >= ts:
            return frame, decoded
        last = frame
    if last is not None and last.time >= ts - slack:
        return last, decoded
    return None, decoded


def sample_frames(path: str, n_frames: int = 8, size: int = 32) -> tuple[np.ndarray, SamplingPlan]:
    """``(n_frames, 3, size, size)`` uint8 RGB frames at evenly spaced moments, and the plan.

    A sample whose seek yields no frame repeats the previous good one (recorded in
    ``plan.repeated``); a video that yields no frame at all raises ``MediaError``.
    """
    with av.open(path) as container:
        if not container.streams.video:
            raise MediaError(f"cannot sample frames: no video stream in {path}")
        stream = container.streams.video[0]
        timestamps = plan_timestamps(_duration_s(container, stream), n_frames)
        samples: list[np.ndarray | None] = []
        total_decoded = 0
        for ts in timestamps:
            try:
                frame, decoded = _frame_at(container, stream, ts)
            except av.FFmpegError:
                frame, decoded = None, 0  # a broken stretch: fall back to a neighbour below
            total_decoded += decoded
            samples.append(
                None if frame is None
                else frame.reformat(width=size, height=size, format="rgb24").to_ndarray()
            )

    good = [i for i, sample in enumerate(samples) if sample is not None]
    if not good:
        raise MediaError(f"cannot sample frames: no frame decoded from {path}")
    repeated = tuple(i for i, sample in enumerate(samples) if sample is None)
    last = samples[good[0]]  # leading failures reuse the first good frame
    filled = []
    for sample in samples:
        last = sample if sample is not None else last
        filled.append(last)
    frames = np.stack(filled).transpose(0, 3, 1, 2)  # (T, H, W, C) -> (T, C, H, W)
    plan = SamplingPlan(timestamps, size, repeated, total_decoded)
    return np.ascontiguousarray(frames, dtype=np.uint8), plan
