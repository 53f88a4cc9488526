"""Which stream of a container is "the video", and how its frames are meant to be shown.

Phones and shops produce files the first-stream rule gets wrong: a thumbnail or preview track
before the main one, cover art stored as a one-picture video stream, portrait video stored
landscape with a display matrix that says "turn me". Probe and sampling both use these
helpers, so the stream that was judged is the stream that is featurised.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np

# Container formats that hold a single still picture (a cover image is a one-frame video).
STILL_IMAGE_CODECS = frozenset({"png", "mjpeg", "webp", "bmp", "tiff", "jpeg2000", "gif", "apng", "qoi"})
# Demuxers of bare codec streams: no container, so no timestamps or duration of their own.
RAW_STREAM_FORMATS = frozenset({"h264", "hevc", "mpegvideo", "m4v", "obu", "vc1", "cavsvideo", "avs2", "vvc"})


def _area_times_duration(stream: av.VideoStream) -> float:
    area = (stream.width or 0) * (stream.height or 0)
    if stream.duration and stream.time_base:
        return area * float(stream.duration * stream.time_base)
    return float(area)


def video_candidates(container: av.container.InputContainer) -> list[av.VideoStream]:
    """Video streams that carry moving pictures: cover art (``attached_pic``) is left out unless
    it is all there is (then the file is a picture, handled as a one-frame video)."""
    streams = list(container.streams.video)
    moving = [s for s in streams if not s.disposition & av.stream.Disposition.attached_pic]
    return moving or streams


def main_video_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    """The main video stream: the largest area x duration, then the one flagged default, then the
    first. A 64x48 preview track before a 320x240 main track loses to it.

    Size outranks the default flag because MP4 and MOV muxers flag the first track of each kind
    as default (its "enabled" bit) unless told otherwise, so in those files the flag names the
    preview as often as the main picture; between streams of the same size it is the producer's
    choice and decides."""
    candidates = video_candidates(container)
    if not candidates:
        return None

    def rank(stream: av.VideoStream) -> tuple[float, bool, int]:
        default = bool(stream.disposition & av.stream.Disposition.default)
        return _area_times_duration(stream), default, -stream.index

    return max(candidates, key=rank)


def main_audio_stream(container: av.container.InputContainer) -> av.AudioStream | None:
    """The audio stream flagged default, else the first (commentary and dubs come later)."""
    streams = list(container.streams.audio)
    flagged = [s for s in streams if s.disposition & av.stream.Disposition.default]
    return (flagged or streams or [None])[0]


def stream_choice(container: av.container.InputContainer, chosen: av.VideoStream) -> str | None:
    """A note saying which stream was chosen over which, when there was a choice to make."""
    others = [s for s in video_candidates(container) if s.index != chosen.index]
    if not others:
        return None
    described = ", ".join(f"#{s.index} {s.width}x{s.height}" for s in others)
    return f"video stream #{chosen.index} ({chosen.width}x{chosen.height}) chosen over {described}"


def display_rotation(frame: av.VideoFrame) -> int:
    """Counter-clockwise degrees (0, 90, 180 or 270) the display matrix turns this frame by.

    A portrait phone video is stored landscape with a matrix of -90 (show it turned 90 degrees
    clockwise); ignoring it featurises the picture sideways. Angles are rounded to quarter turns,
    as players do."""
    try:
        angle = frame.rotation
    except (AttributeError, ValueError):  # no display matrix, or one that is not a rotation
        return 0
    if angle is None or angle != angle:
        return 0
    return int(round(float(angle) / 90.0)) % 4 * 90


def rotate_upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """``(H, W, C)`` pixels turned as a player shows them (``np.rot90`` turns counter-clockwise,
    like the display matrix angle)."""
    turns = (rotation // 90) % 4
    return np.rot90(image, k=turns) if turns else image


def is_still_image(container: av.container.InputContainer, stream: Any) -> bool:
    """A single picture (PNG, JPEG, ... or a picture-only file): accepted as a one-frame video."""
    name = container.format.name or ""
    codec = stream.codec_context.name if stream.codec_context else ""
    picture_demuxer = name == "image2" or name.endswith("_pipe")
    attached = bool(stream.disposition & av.stream.Disposition.attached_pic)
    return (picture_demuxer and codec in STILL_IMAGE_CODECS) or attached


def is_raw_stream(container: av.container.InputContainer) -> bool:
    """A bare codec stream (e.g. ``.h264``) with no container around it."""
    return bool(set((container.format.name or "").split(",")) & RAW_STREAM_FORMATS)
