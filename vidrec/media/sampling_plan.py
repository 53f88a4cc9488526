"""The record of how frames were sampled from a video (``SamplingPlan``), the seek modes and the
evenly spaced sampling moments; ``vidrec.media.frames`` re-exports all of them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

SeekMode = Literal["exact", "keyframe"]
SEEK_MODES: tuple[str, ...] = ("exact", "keyframe")


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
    # Counter-clockwise quarter turns (degrees) applied to show frames upright (display matrix).
    rotation: int = 0
    stream: int = 0  # index of the video stream sampled (the main one, see vidrec.media.streams)
    fallback: str = ""  # why seeking was not trusted and what was done instead; empty if it was

    def __eq__(self, other: object) -> bool:
        # NaN != NaN would make a plan unequal to itself; compare NaN-aware.
        if not isinstance(other, SamplingPlan):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[object, ...]:
        times = tuple(None if math.isnan(t) else t for t in self.frame_times)
        return (
            self.timestamps,
            self.size,
            self.repeated,
            self.frames_decoded,
            times,
            self.seek,
            self.rotation,
            self.stream,
            self.fallback,
        )


def plan_timestamps(duration_s: float, n_frames: int) -> tuple[float, ...]:
    """``n_frames`` moments evenly spaced inside the video (centres of equal segments)."""
    return tuple(round((i + 0.5) * duration_s / n_frames, 6) for i in range(n_frames))
