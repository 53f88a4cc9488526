"""Sample a fixed number of small RGB frames from a video by seeking, never decoding it all.

Each sample seeks to the keyframe before its timestamp and (in ``exact`` mode) decodes
forward to it, so the cost grows with the number of samples and the keyframe interval, not
the video length. ``keyframe`` mode takes the keyframe itself (one decoded frame per sample)
while that gives distinct moments, and the exact frame where it would not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vidrec.media.pool import MediaError

SeekMode = Literal["exact", "keyframe"]
SEEK_MODES: tuple[str, ...] = ("exact", "keyframe")

# One scaler per process: building a scaler context costs more than decoding a small frame
# (about 5 ms against 0.2 ms for 64x64, measured), and a reformatter reuses its context
# while the input format stays the same. Workers are single-threaded processes.
_SCALER = VideoReformatter()


@dataclass(frozen=True)
class SamplingPlan:
    """Which moments were sampled, at what size, and which samples reused an earlier frame."""

    timestamps: tuple[float, ...]
    size: int
    repeated: tuple[int, ...] = ()
    frames_decoded: int = 0
    # Presentation time of the frame actually taken per sample (differs from the target on
    # variable frame rate input and in keyframe mode); NaN where the sample repeats another.
    frame_times: tuple[float, ...] = ()
    seek: str = "exact"

    def __eq__(self, other: object) -> bool:
        # NaN != NaN would make a plan unequal to itself; compare NaN-aware.
        if not isinstance(other, SamplingPlan):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[object, ...]:
        times = tuple(None if math.isnan(t) else t for t in self.frame_times)
        return (self.timestamps, self.size, self.repeated, self.frames_decoded, times, self.seek)


def plan_timestamps(duration_s: float, n_frames: int) -> tuple[float, ...]:
    """``n_frames`` moments evenly spaced inside the video (centres of equal segments)."""
    return tuple(round((i + 0.5) * duration_s / n_frames, 6) for i in range(n_frames))


def _duration_s(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    raise MediaError("cannot sample frames: duration unknown")


class _Cursor:
    """Decodes one stream towards successive targets, seeking only when that is cheaper.

    Continuing to decode forward beats seeking when the target is closer than the keyframe
    interval: the seek would land on a keyframe at or before the current position and decode
    the same frames again (a file with one keyframe would otherwise be decoded once per
    sample). The interval is estimated from keyframes seen so far.
    """

    def __init__(self, container: av.container.InputContainer, stream: av.VideoStream, seek: str):
        self.container, self.stream, self.seek = container, stream, seek
        self.slack = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
        self.frames: Iterator[av.VideoFrame] | None = None
        self.position = -math.inf  # time of the last decoded frame
        self.last_keyframe = math.inf
        self.keyframe_gap = 0.0  # largest keyframe interval seen, a lower bound of the GOP
        self.taken = -math.inf  # time of the latest frame a sample took (keyframe mode)

    def _can_continue(self, ts: float) -> bool:
        """Whether decoding on from the current position beats seeking (see class doc)."""
        gap = max(self.keyframe_gap, self.position - self.last_keyframe)
        return self.frames is not None and 0 <= ts - self.position <= gap

    def frame_at(self, ts: float) -> tuple[av.VideoFrame | None, int]:
        """The frame for ``ts`` and how many frames were decoded to reach it.

        ``exact``: the first frame at or after ``ts``. ``keyframe``: the keyframe at or before
        ``ts`` (one decoded frame), unless an earlier sample already took that keyframe (the
        keyframe interval is longer than the sample spacing); then the exact frame, so samples
        stay distinct moments.
        """
        if self.seek == "exact" or self._can_continue(ts):
            return self._exact(ts)
        frame, decoded = self._keyframe(ts)
        if frame is not None and frame.time is not None and frame.time > self.taken:
            self.taken = frame.time
            return frame, decoded
        frame, more = self._exact(ts)
        if frame is not None and frame.time is not None:
            self.taken = max(self.taken, frame.time)
        return frame, decoded + more

    def _keyframe(self, ts: float) -> tuple[av.VideoFrame | None, int]:
        self.stream.codec_context.skip_frame = "NONKEY"  # the decoder drops the rest unseen
        try:
            self.container.seek(int(ts / self.stream.time_base), stream=self.stream)
            self.frames = None  # the exact path must seek afresh after this
            for frame in self.container.decode(self.stream):
                return frame, 1
            return None, 0
        finally:
            self.stream.codec_context.skip_frame = "DEFAULT"

    def _exact(self, ts: float) -> tuple[av.VideoFrame | None, int]:
        # The stream ending within one frame interval before ``ts`` still counts as found (the
        # last sample of a video); ending earlier means the data is missing (truncated).
        if not self._can_continue(ts):
            self.container.seek(int(ts / self.stream.time_base), stream=self.stream)
            self.frames = self.container.decode(self.stream)
            self.last_keyframe = math.inf
        last, decoded = None, 0
        for frame in self.frames:  # type: ignore[union-attr]
            decoded += 1
            time = frame.time
            if time is not None:
                if frame.key_frame:
                    if self.last_keyframe < time:
                        self.keyframe_gap = max(self.keyframe_gap, time - self.last_keyframe)
                    self.last_keyframe = time
                self.position = time
            if time is None or time >= ts:
                return frame, decoded
            last = frame
        self.frames = None  # the stream ended: the next target needs a seek
        if last is not None and last.time >= ts - self.slack:
            return last, decoded
        return None, decoded


def sample_frames_from(
    container: av.container.InputContainer,
    n_frames: int = 8,
    size: int = 32,
    seek: SeekMode = "exact",
    name: str = "input",
) -> tuple[np.ndarray, SamplingPlan]:
    """``sample_frames`` on an already open container (so audio can share the open file)."""
    if seek not in SEEK_MODES:
        raise ValueError(f"seek must be one of {SEEK_MODES}, got {seek!r}")
    if not container.streams.video:
        raise MediaError(f"cannot sample frames: no video stream in {name}")
    stream = container.streams.video[0]
    # Workers run one per core, so decoder threads would only add start-up and flush cost
    # at every seek (measured: 7 ms instead of 12 ms for 8 samples of a 10 s file).
    stream.thread_type = "NONE"
    stream.codec_context.thread_count = 1
    timestamps = plan_timestamps(_duration_s(container, stream), n_frames)
    cursor = _Cursor(container, stream, seek)
    samples: list[np.ndarray | None] = []
    times: list[float] = []
    total_decoded = 0
    for ts in timestamps:
        try:
            frame, decoded = cursor.frame_at(ts)
        except av.FFmpegError:
            cursor.frames = None  # a broken stretch: seek afresh, fall back to a neighbour
            frame, decoded = None, 0
        total_decoded += decoded
        if frame is None:
            samples.append(None)
            times.append(float("nan"))
            continue
        # Straight to the small size: a huge input frame is never converted at full size.
        small = _SCALER.reformat(frame, width=size, height=size, format="rgb24")
        samples.append(small.to_ndarray())
        times.append(round(float(frame.time), 6) if frame.time is not None else float("nan"))

    good = [i for i, sample in enumerate(samples) if sample is not None]
    if not good:
        raise MediaError(f"cannot sample frames: no frame decoded from {name}")
    repeated = tuple(i for i, sample in enumerate(samples) if sample is None)
    last = samples[good[0]]  # leading failures reuse the first good frame
    filled = []
    for sample in samples:
        last = sample if sample is not None else last
        filled.append(last)
    frames = np.stack(filled).transpose(0, 3, 1, 2)  # (T, H, W, C) -> (T, C, H, W)
    plan = SamplingPlan(timestamps, size, repeated, total_decoded, tuple(times), seek)
    return np.ascontiguousarray(frames, dtype=np.uint8), plan


def sample_frames(
    path: str, n_frames: int = 8, size: int = 32, seek: SeekMode = "exact"
) -> tuple[np.ndarray, SamplingPlan]:
    """``(n_frames, 3, size, size)`` uint8 RGB frames at evenly spaced moments, and the plan.

    A sample whose seek yields no frame repeats the previous good one (recorded in
    ``plan.repeated``); a video that yields no frame at all raises ``MediaError``.
    """
    with av.open(path) as container:
        return sample_frames_from(container, n_frames, size, seek, name=path)
