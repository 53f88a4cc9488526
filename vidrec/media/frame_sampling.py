"""Frames for the recognition backbone: RGB at evenly spaced moments, aspect kept, at the backbone's
resolution. Free of torch, so the service's isolated upload worker can decode an upload's frames without
loading the network (the service process runs the backbone on what the worker returns)."""

from __future__ import annotations

import av
import numpy as np

from vidrec.media.pool import MediaError
from vidrec.media.streams import display_rotation, main_video_stream, rotate_upright

INPUT_SIZE = 224  # the backbone's input side (vidrec.media.backbone crops the centre square of this)
# Clips up to this long are decoded once from the start (cheaper than one keyframe seek per sample
# when the whole clip is one or two GOPs); longer ones seek to each moment.
SEQUENTIAL_UP_TO_S = 20.0


def _rgb(frame: av.VideoFrame, short_side: int) -> np.ndarray:
    # Scale in the decoder's converter so a 4K frame is never converted to RGB at full size.
    scale = short_side / max(1, min(frame.width, frame.height))
    width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
    image = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    return rotate_upright(image, display_rotation(frame))


def sample_rgb(path: str, n_frames: int, short_side: int = INPUT_SIZE) -> np.ndarray:
    """``n_frames`` RGB frames at evenly spaced moments (centres of equal slices), shorter side
    ``short_side``, aspect kept: (T, H, W, 3) uint8. Raises MediaError when no frame decodes."""
    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise MediaError(f"recognition cannot open {path} ({error})") from None
    with container:
        stream = main_video_stream(container)
        if stream is None:
            raise MediaError(f"recognition: no video stream in {path}")
        duration = container.duration / 1e6 if container.duration else None
        if duration is None and stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        moments = [(i + 0.5) * (duration or 0.0) / n_frames for i in range(n_frames)]
        try:
            if duration and duration > SEQUENTIAL_UP_TO_S:
                frames = [_seek_one(container, stream, t, short_side) for t in moments]
            else:
                frames = _sequential(container, stream, moments, short_side)
        except av.FFmpegError as error:
            raise MediaError(f"recognition could not decode {path}: {error}") from None
    found = [f for f in frames if f is not None]
    if not found:
        raise MediaError(f"recognition: no frame decoded from {path}")
    # A moment past the end (a stated duration longer than the stream) repeats the last frame found.
    filled, last = [], found[0]
    for frame in frames:
        last = frame if frame is not None else last
        filled.append(last)
    shape = filled[0].shape
    return np.stack([f if f.shape == shape else filled[0] for f in filled])


def _sequential(container, stream, moments: list[float], short_side: int) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = [None] * len(moments)
    pending, last = 0, None
    for frame in container.decode(stream):
        last = frame
        t = frame.time if frame.time is not None else 0.0
        while pending < len(moments) and t >= moments[pending]:
            out[pending] = _rgb(frame, short_side)
            pending += 1
        if pending == len(moments):
            return out
    if last is not None and pending < len(moments):  # the stream ended before the stated duration
        image = _rgb(last, short_side)
        out[pending:] = [image] * (len(moments) - pending)
    return out


def _seek_one(container, stream, moment: float, short_side: int) -> np.ndarray | None:
    container.seek(int(moment / stream.time_base), stream=stream, backward=True)
    chosen = None
    for frame in container.decode(stream):
        chosen = frame
        if frame.time is None or frame.time >= moment:
            break
    return None if chosen is None else _rgb(chosen, short_side)
