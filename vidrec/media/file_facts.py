"""Probing one video file (runs in an isolated worker): its header facts, main streams and decoded
frame count, as one row's worth of the ``videos`` table; ``vidrec.media.probe`` re-exports ``probe_file``."""

from __future__ import annotations

import os
from typing import Any

import av

from vidrec.media.boxes import looks_iso_bmff, truncation
from vidrec.media.pool import MediaError
from vidrec.media.rules import RE_EXPORT, ProbeLimits, header_reason
from vidrec.media.streams import (
    display_rotation,
    is_raw_stream,
    is_still_image,
    main_audio_stream,
    main_video_stream,
    stream_choice,
)

CRASH_HOOK_ENV_VAR = "VIDREC_TEST_CRASH_ON"
"""Test hook: a worker probing exactly this path calls ``os.abort()`` (to test isolation)."""

VIDEOS_COLUMNS = [
    "video_id",
    "path",
    "sha256",
    "bytes",
    "container",
    "video_codec",
    "width",
    "height",
    "fps",
    "duration_s",
    "n_frames_expected",
    "n_frames_decoded",
    "has_audio",
    "audio_codec",
    "sample_rate",
    "rotation",
    "video_stream",
    "notes",
    "duplicate_of",
    "status",
    "reason",
]
_PROBE_FIELDS = VIDEOS_COLUMNS[4:-3]
# Audio rates a resampler to 16 kHz handles; outside them the header is broken (audio ignored).
_AUDIO_RATES = (1000, 384_000)


def probe_file(path: str, limits: ProbeLimits | None = None) -> dict[str, Any]:
    """Header facts plus a decode count of the main video stream (runs in a worker).

    Decoding is skipped when the header already breaks a limit (oversized frames are never decoded
    into memory) and stops at twice the expected frame count; past ``limits.decode_budget_frames``
    the remaining frame packets are counted, not decoded. Decoding errors propagate so the caller
    records them as the reason. An audio track that cannot be used (no packets, no decoder, an
    impossible rate) is marked missing in ``has_audio`` with a note: sound is optional."""
    limits = limits or ProbeLimits()
    if os.environ.get(CRASH_HOOK_ENV_VAR) == path:
        os.abort()
    cut = truncation(path) if looks_iso_bmff(path) else None
    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as error:
        if cut:  # say why it does not open: FFmpeg only says "Invalid data found"
            raise MediaError(f"{cut}: copy the complete file again (or re-export it)") from None
        raise MediaError(
            f"cannot open as a media container ({error}): not a video file, or damaged in its header; {RE_EXPORT}"
        ) from None

    with container:
        facts: dict[str, Any] = dict.fromkeys(_PROBE_FIELDS)
        facts["container"] = container.format.name
        facts["truncated"] = cut
        notes: list[str] = []
        audio = _audio_facts(container, facts, notes)
        video = main_video_stream(container)
        if video is None:
            facts["notes"] = "; ".join(notes) or None
            return facts
        if video.codec_context is None:
            raise MediaError(
                f"no decoder in this build for the video codec of {path}: re-encode it to H.264, HEVC, VP9 or AV1"
            )
        facts["video_stream"] = video.index
        if choice := stream_choice(container, video):
            notes.append(choice)
        facts["video_codec"] = video.codec_context.name
        facts["width"], facts["height"] = video.width, video.height
        fps = float(video.average_rate) if video.average_rate else None
        # ``is not None``: a header that states zero duration is a finding ("zero duration"),
        # not a missing value ("unknown duration").
        if video.duration is not None and video.time_base:
            duration = float(video.duration * video.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = None
        expected = video.frames or (round(duration * fps) if duration and fps else None)
        if is_still_image(container, video):
            # A picture is a one-frame video shown for one frame interval, as covers are (docs/ingestion.md).
            fps = fps or float(video.guessed_rate or 25)
            duration, expected = 1.0 / fps, 1
            notes.append("a still picture, taken as a one-frame video")
        facts["raw_stream"] = is_raw_stream(container)
        facts.update(fps=fps, duration_s=duration, n_frames_expected=expected)
        if header_reason(facts, limits, before_decoding=True) is None:
            try:
                decoded, rotation, audio_packets, end = _count_frames(
                    container, video, audio, expected, limits.decode_budget_frames
                )
            except MediaError:
                if not cut:
                    raise
                decoded, rotation, audio_packets, end = None, None, None, None  # the cut explains it: say that
            facts["n_frames_decoded"], facts["rotation"] = decoded, rotation
            if facts["duration_s"] is None and end:
                # A live recording (browser MediaRecorder WebM, a stream dump) writes no duration.
                facts["duration_s"], facts["n_frames_expected"] = end, decoded
                notes.append("duration measured from the packets (the header states none)")
            if audio is not None and audio_packets == 0:
                _drop_audio(facts, notes, "it holds no packets")
        facts["notes"] = "; ".join(notes) or None
        return facts


def _audio_facts(container: Any, facts: dict[str, Any], notes: list[str]) -> Any:
    """Fill the audio facts from the main audio stream; return it, or None when there is none
    or it cannot be used (then ``has_audio`` is false and a note says why)."""
    audio = main_audio_stream(container)
    facts["has_audio"] = audio is not None
    if audio is None:
        return None
    facts["audio_codec"] = audio.codec_context.name if audio.codec_context else audio.codec.name
    facts["sample_rate"] = audio.sample_rate
    if audio.codec_context is None:
        return _drop_audio(facts, notes, f"no decoder for its codec {facts['audio_codec']}")
    if not audio.sample_rate or not _AUDIO_RATES[0] <= audio.sample_rate <= _AUDIO_RATES[1]:
        return _drop_audio(facts, notes, f"its sample rate {audio.sample_rate} Hz is impossible")
    return audio


def _drop_audio(facts: dict[str, Any], notes: list[str], why: str) -> None:
    facts["has_audio"], facts["sample_rate"] = False, None
    notes.append(f"audio track ignored ({why}): the video is kept without sound; re-export it to keep the sound")


def _count_frames(
    container: Any, video: Any, audio: Any, expected: int | None, budget: int
) -> tuple[int, int, int, float | None]:
    """(frames decoded, display rotation of the first frame, audio packets seen, end time of the
    last video packet) for the video stream; past ``budget`` decoded frames, the frame packets that
    are still present count instead (a truncated file lacks them too)."""
    # One worker per core: decoder threads would only add start-up cost.
    video.thread_type = "NONE"
    video.codec_context.thread_count = 1
    cap = 2 * expected if expected else None
    decoded = counted = audio_packets = 0
    rotation, end = None, None
    start = float(video.start_time * video.time_base) if video.start_time is not None and video.time_base else 0.0
    streams = [video] + ([audio] if audio is not None else [])
    try:
        for packet in container.demux(streams):
            if packet.stream.index != video.index:
                audio_packets += bool(packet.size)
                continue
            if packet.pts is not None and packet.time_base:
                stop = float((packet.pts + (packet.duration or 0)) * packet.time_base) - start
                end = stop if end is None else max(end, stop)
            if decoded < budget:
                frames = packet.decode()
                if rotation is None and frames:
                    rotation = display_rotation(frames[0])
                decoded += len(frames)
                if decoded >= budget:  # drain the decoder before switching to counting
                    decoded += len(video.codec_context.decode(None))
            elif packet.size:
                counted += 1
            if cap is not None and decoded + counted >= cap:
                break
    except av.FFmpegError as error:
        # MediaError makes the reason say that decoding (not opening) failed, and how far it got.
        raise MediaError(
            f"decoding failed after {decoded} frames ({error}): the video data is damaged; {RE_EXPORT}"
        ) from None
    return decoded + counted, rotation or 0, audio_packets, end
