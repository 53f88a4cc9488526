"""Decoding one video stream towards successive sample moments, seeking only when that pays.

Used by ``vidrec.media.frames``; kept apart so the sampling plan and its fallbacks read in one
sitting.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import av


class Cursor:
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
        self.previous: av.VideoFrame | None = None  # the frame decoded last

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
        # A keyframe after ``ts`` is no keyframe "at or before": seeks go by decoding order, so with
        # reordered frames (HEVC, B-frames) they can land on the keyframe after the moment.
        if frame is not None and frame.time is not None and self.taken < frame.time <= ts + 1e-9:
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

    def _seek_before(self, ts: float) -> None:
        """Seek so that decoding starts at or before ``ts``: a seek that lands after it (seeks go by
        decoding order, which reordered frames put ahead of display order) is retried from
        further back, 1 s, then 2 s, then from the start."""
        for back in (0.0, 1.0, 2.0, math.inf):
            start = max(0.0, ts - back)
            self.container.seek(int(start / self.stream.time_base), stream=self.stream)
            frames = self.container.decode(self.stream)
            first = next(frames, None)
            self.last_keyframe = math.inf
            self.frames = itertools.chain([first] if first is not None else [], frames)
            if first is None or first.time is None or first.time <= ts + 1e-9 or start == 0.0:
                return

    def _exact(self, ts: float) -> tuple[av.VideoFrame | None, int]:
        # The stream ending within one frame interval before ``ts`` still counts as found (the
        # last sample of a video); ending earlier means the data is missing (truncated).
        # Continuing, the frame decoded last (the previous sample's) may be the stream's final one.
        last = self.previous if self._can_continue(ts) else None
        if last is None:
            self._seek_before(ts)
        decoded = 0
        for frame in self.frames:  # type: ignore[union-attr]
            decoded += 1
            self.previous = frame
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
        self.frames = self.previous = None  # the stream ended: the next target needs a seek
        if last is not None and last.time is not None and last.time >= ts - self.slack:
            return last, decoded
        return None, decoded
