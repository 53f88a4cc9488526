"""Sample a fixed number of small, upright RGB frames from a video by seeking, never decoding it all.

Each sample seeks to the keyframe before its timestamp and (in ``exact`` mode) decodes
forward to it, so the cost grows with the number of samples and the keyframe interval, not
the video length. ``keyframe`` mode takes the keyframe itself (one decoded frame per sample)
while that gives distinct moments, and the exact frame where it would not.

Seeking is not trusted blindly: some decoders ignore a change of ``skip_frame`` after they
start (libdav1d keeps skipping non-key frames, so keyframe mode returned the 0 s frame for
most samples of an AV1 file), and some files cannot seek at all. A plan with missing, repeated
or out-of-order samples is redone with exact seeks on a fresh decoder, then by decoding the
stream from the start when it is short enough; the plan records the fallback.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import replace

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vidrec.media.cursor import Cursor
from vidrec.media.pool import MediaError
from vidrec.media.sampling_plan import SEEK_MODES as SEEK_MODES
from vidrec.media.sampling_plan import SamplingPlan as SamplingPlan
from vidrec.media.sampling_plan import SeekMode as SeekMode
from vidrec.media.sampling_plan import plan_timestamps as plan_timestamps
from vidrec.media.streams import display_rotation, main_video_stream, rotate_upright

log = logging.getLogger(__name__)

# Decoding the whole stream is the last fallback only up to this many frames (about 10 s of
# 1080p decoding on one core), so a damaged long video keeps its recorded repeats instead.
SEQUENTIAL_BUDGET_FRAMES = 3000

# One scaler per process: building a scaler context costs more than decoding a small frame
# (about 5 ms against 0.2 ms for 64x64, measured), and a reformatter reuses its context
# while the input format stays the same. Workers are single-threaded processes.
_SCALER = VideoReformatter()


def _duration_s(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None  # a live recording, a still picture or a bare stream


def _measured_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    """The end of the stream's last packet, read by demuxing without decoding (about 50x cheaper), for
    a container whose header states no duration (a live-recorded WebM); None without timestamps."""
    base = stream.time_base
    start = float(stream.start_time * base) if stream.start_time is not None and base else 0.0
    end = None
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and base:
                stop = float((packet.pts + (packet.duration or 0)) * base) - start
                end = stop if end is None else max(end, stop)
    except av.FFmpegError:
        pass  # damaged further on: the packets read so far still bound the moments
    return end if end else None


def _small(frame: av.VideoFrame, size: int) -> np.ndarray:
    # Straight to the small size: a huge input frame is never converted at full size. The square
    # output makes scaling and turning commute, so turning the small frame is enough.
    small = _SCALER.reformat(frame, width=size, height=size, format="rgb24").to_ndarray()
    return rotate_upright(small, display_rotation(frame))


def _assemble(
    samples: list[np.ndarray | None],
    times: list[float],
    timestamps: tuple[float, ...],
    size: int,
    decoded: int,
    seek: str,
    rotation: int,
    stream: int,
    name: str,
) -> tuple[np.ndarray, SamplingPlan]:
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
    plan = SamplingPlan(timestamps, size, repeated, decoded, tuple(times), seek, rotation, stream)
    return np.ascontiguousarray(frames, dtype=np.uint8), plan


def _seeking(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    n_frames: int,
    size: int,
    seek: str,
    name: str,
    duration: float | None,
) -> tuple[np.ndarray, SamplingPlan] | None:
    """Sample by seeking; None when the duration is unknown (nothing to place moments by)."""
    if duration is None:
        return None
    timestamps = plan_timestamps(duration, n_frames)
    cursor = Cursor(container, stream, seek)
    samples: list[np.ndarray | None] = []
    times: list[float] = []
    total_decoded, rotation = 0, None
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
        samples.append(_small(frame, size))
        rotation = display_rotation(frame) if rotation is None else rotation
        times.append(round(float(frame.time), 6) if frame.time is not None else float("nan"))
    return _assemble(samples, times, timestamps, size, total_decoded, seek, rotation or 0, stream.index, name)


def _sequential(
    container: av.container.InputContainer, stream: av.VideoStream, n_frames: int, size: int, seek: str, name: str
) -> tuple[np.ndarray, SamplingPlan]:
    """Sample by decoding the stream from the start (at most SEQUENTIAL_BUDGET_FRAMES frames): the
    first frame at or after each moment, the last frame for moments past the end."""
    decoded: list[tuple[float, av.VideoFrame]] = []
    try:
        for frame in container.decode(stream):
            decoded.append((float(frame.time or 0.0), frame))
            if len(decoded) > SEQUENTIAL_BUDGET_FRAMES:
                raise MediaError(
                    f"cannot sample frames from {name}: it cannot be seeked and is longer than "
                    f"{SEQUENTIAL_BUDGET_FRAMES} frames; re-mux it (`ffmpeg -i FILE -c copy OUT.mp4`)"
                )
    except av.FFmpegError:
        pass  # keep what decoded before the damage
    if not decoded:
        raise MediaError(f"cannot sample frames: no frame decoded from {name}")
    duration = _duration_s(container, stream)
    if duration is None:
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        duration = decoded[-1][0] + 1.0 / rate
    timestamps = plan_timestamps(duration, n_frames)
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    end = decoded[-1][0] + 1.0 / rate  # moments past the last frame's interval have no frame (cut short)
    picks = [next((f for t, f in decoded if t >= ts - 1e-9), decoded[-1][1] if ts < end else None) for ts in timestamps]
    samples: list[np.ndarray | None] = [None if f is None else _small(f, size) for f in picks]
    times = [float("nan") if f is None else round(float(f.time or 0.0), 6) for f in picks]
    first = next(f for f in picks + [decoded[0][1]] if f is not None)
    return _assemble(samples, times, timestamps, size, len(decoded), seek, display_rotation(first), stream.index, name)


def _untrusted(plan: SamplingPlan, stream: av.VideoStream) -> str | None:
    """What makes a seeking plan suspect: samples without a frame, frame times that do not
    increase, or an exact sample far past its moment (the decoder skipped frames)."""
    if plan.repeated:
        return f"found no frame for samples {list(plan.repeated)}"
    times, targets = plan.frame_times, plan.timestamps
    rate = float(stream.average_rate) if stream.average_rate else 0.0
    interval = 1.0 / rate if rate else 0.0
    # Two moments less than ~1.5 frame intervals apart may share a frame (a clip with about as many
    # frames as samples); moments further apart must not (a seek that returned the same frame).
    if any(
        b < a or (b == a and tb - ta > 1.5 * interval) for a, b, ta, tb in zip(times, times[1:], targets, targets[1:])
    ):
        return f"gave repeated or out-of-order frame times {list(times)}"
    tolerance = max(0.5, 3.0 / rate) if rate else 0.5
    if any(t - ts > tolerance for ts, t in zip(plan.timestamps, times)):
        return f"landed past their moments (frame times {list(times)} for {list(plan.timestamps)})"
    return None


def sample_frames_from(
    container: av.container.InputContainer,
    n_frames: int = 8,
    size: int = 32,
    seek: SeekMode = "exact",
    name: str = "input",
) -> tuple[np.ndarray, SamplingPlan]:
    """``sample_frames`` on an already open container (so audio can share the open file).

    Seeking that cannot be trusted (see the module doc) is redone on a fresh open of the same
    file, which must then be a path (``container.name``)."""
    if seek not in SEEK_MODES:
        raise ValueError(f"seek must be one of {SEEK_MODES}, got {seek!r}")
    stream = main_video_stream(container)
    if stream is None:
        raise MediaError(f"cannot sample frames: no video stream in {name}")
    _single_threaded(stream)
    duration = _duration_s(container, stream) or _measured_duration(container, stream)
    seekable = duration is not None
    try:
        first = _seeking(container, stream, n_frames, size, seek, name, duration)
        problem = "the stream states no duration to seek by" if first is None else _untrusted(first[1], stream)
    except MediaError:  # not one sample found a frame
        first, problem = None, "seeking found no frame for any sample"
    path = getattr(container, "name", "")
    if problem is None:
        return first  # type: ignore[return-value]
    if not os.path.isfile(str(path)):
        return first if first is not None else _sequential(container, stream, n_frames, size, seek, name)
    attempts = [("exact", "sampled again with exact seeks on a fresh decoder")] if seekable else []
    attempts.append(("decode", "decoded from the start"))
    if first is not None and problem != "the stream states no duration to seek by":
        problem = f"seeking {problem}"
    for how, what in attempts:
        try:
            result = _fresh(
                str(path), n_frames, size, seek, how, name, duration, expected=_expected_frames(stream, duration)
            )
        except MediaError:
            result = None
        if result is None:
            continue
        if how == "decode" or _untrusted(result[1], stream) is None:
            frames, plan = result
            note = f"{problem}; {what}"
            log.info("%s: %s", name, note)
            return frames, replace(plan, seek=seek, fallback=note)
    if first is None:
        raise MediaError(
            f"cannot sample frames from {name}: {problem}, and it is too long to decode from the "
            "start; re-mux it (`ffmpeg -i FILE -c copy OUT.mp4`) or re-export it"
        )
    log.warning("%s: %s; kept with repeated samples (too long to decode from the start)", name, problem)
    return first[0], replace(first[1], fallback=f"{problem}; too long to decode from the start, kept")


def _single_threaded(stream: av.VideoStream) -> None:
    # Workers run one per core, so decoder threads would only add start-up and flush cost
    # at every seek (measured: 7 ms instead of 12 ms for 8 samples of a 10 s file).
    stream.thread_type = "NONE"
    stream.codec_context.thread_count = 1


def _expected_frames(stream: av.VideoStream, duration: float | None) -> int | None:
    rate = float(stream.average_rate) if stream.average_rate else None
    return stream.frames or (math.ceil(duration * rate) if duration and rate else None)


def _fresh(
    path: str, n_frames: int, size: int, seek: str, how: str, name: str, duration: float | None, expected: int | None
) -> tuple[np.ndarray, SamplingPlan] | None:
    """One fallback attempt on a newly opened file (a decoder that never saw ``skip_frame``)."""
    if how == "decode" and expected is not None and expected > SEQUENTIAL_BUDGET_FRAMES:
        return None
    with av.open(path) as container:
        stream = main_video_stream(container)
        _single_threaded(stream)
        if how == "exact":
            return _seeking(container, stream, n_frames, size, "exact", name, duration)
        return _sequential(container, stream, n_frames, size, seek, name)


def sample_frames(
    path: str, n_frames: int = 8, size: int = 32, seek: SeekMode = "exact"
) -> tuple[np.ndarray, SamplingPlan]:
    """``(n_frames, 3, size, size)`` uint8 upright RGB frames at evenly spaced moments, and the plan.

    Frames are taken from the main video stream and turned as its display matrix says. A sample
    whose seek yields no frame repeats the previous good one (recorded in ``plan.repeated``)
    when no fallback could find it; a video that yields no frame at all raises ``MediaError``.
    """
    with av.open(path) as container:
        return sample_frames_from(container, n_frames, size, seek, name=path)
