"""Probe raw video files into rows of the ``videos`` table, accepting or quarantining each.

Probing opens and fully decodes the video stream of untrusted files, so it runs in isolated
worker processes (see ``vidrec.media.pool``); the accept/quarantine rules are a pure function.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pandas as pd

from vidrec.media.pool import MediaError, describe_failure, run_isolated

CRASH_HOOK_ENV_VAR = "VIDREC_TEST_CRASH_ON"
"""Test hook: a worker probing exactly this path calls ``os.abort()`` (to test isolation)."""

VIDEOS_COLUMNS = [
    "video_id", "path", "sha256", "bytes", "container", "video_codec", "width", "height",
    "fps", "duration_s", "n_frames_expected", "n_frames_decoded", "has_audio", "audio_codec",
    "sample_rate", "status", "reason",
]

_DTYPES = {
    "bytes": "Int64", "width": "Int64", "height": "Int64", "fps": "float64",
    "duration_s": "float64", "n_frames_expected": "Int64", "n_frames_decoded": "Int64",
    "has_audio": "boolean", "sample_rate": "Int64",
}
_PROBE_FIELDS = VIDEOS_COLUMNS[4:-2]
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ProbeLimits:
    """What a probe may cost and what a video must satisfy to be accepted."""

    timeout_s: float = 30.0
    memory_mb: int = 1024
    max_width: int = 3840
    max_height: int = 2160
    min_frame_ratio: float = 0.9
    max_duration_s: float = 4 * 3600.0


def probe_file(path: str, limits: ProbeLimits | None = None) -> dict[str, Any]:
    """Header facts plus a full decode count of the first video stream (runs in a worker).

    Decoding is skipped when the header already breaks a limit (oversized frames are never
    decoded into memory) and stops at twice the expected frame count. Decoding errors
    propagate so the caller records them as the reason.
    """
    limits = limits or ProbeLimits()
    if os.environ.get(CRASH_HOOK_ENV_VAR) == path:
        os.abort()
    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise MediaError(f"cannot open as a media container: {error}") from None

    with container:
        facts: dict[str, Any] = dict.fromkeys(_PROBE_FIELDS)
        facts["container"] = container.format.name
        audio = container.streams.audio[0] if container.streams.audio else None
        facts["has_audio"] = audio is not None
        if audio is not None:
            facts["audio_codec"] = audio.codec_context.name if audio.codec_context else None
            facts["sample_rate"] = audio.sample_rate
        if not container.streams.video:
            return facts

        video = container.streams.video[0]
        if video.codec_context is None:
            raise MediaError(f"no decoder available for the video stream of {path}")
        facts["video_codec"] = video.codec_context.name
        facts["width"] = video.width
        facts["height"] = video.height
        fps = float(video.average_rate) if video.average_rate else None
        facts["fps"] = fps
        if video.duration and video.time_base:
            duration = float(video.duration * video.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = None
        facts["duration_s"] = duration
        expected = video.frames or (round(duration * fps) if duration and fps else None)
        facts["n_frames_expected"] = expected

        if _header_reason(facts, limits) is None:
            facts["n_frames_decoded"] = _count_frames(container, video, expected)
        return facts


def _count_frames(container: Any, video: Any, expected: int | None) -> int:
    cap = 2 * expected if expected else None
    decoded = 0
    try:
        for _ in container.decode(video):
            decoded += 1
            if cap is not None and decoded >= cap:
                break
    except av.FFmpegError as error:
        # MediaError makes the reason say that decoding (not opening) failed, and how far it got.
        raise MediaError(f"decoding failed after {decoded} frames: {error}") from None
    return decoded


def decide_status(probe: dict[str, Any], limits: ProbeLimits) -> tuple[str, str | None]:
    """``("accepted", None)`` or ``("quarantined", reason)`` for one probe result."""
    reason = _header_reason(probe, limits) or _decode_reason(probe, limits)
    return ("accepted", None) if reason is None else ("quarantined", reason)


def _header_reason(probe: dict[str, Any], limits: ProbeLimits) -> str | None:
    """Rules that need only the container header (checked before decoding anything)."""
    if not probe.get("video_codec"):
        return "no video stream"
    width, height = probe.get("width") or 0, probe.get("height") or 0
    if width > limits.max_width or height > limits.max_height:
        return (
            f"resolution {width}x{height} exceeds limit {limits.max_width}x{limits.max_height}"
        )
    if width <= 0 or height <= 0:
        return f"invalid resolution {width}x{height}"
    duration = probe.get("duration_s")
    if duration is None:
        return "unknown duration"
    if duration <= 0:
        return "zero duration"
    if duration > limits.max_duration_s:
        return (
            f"duration {duration:.0f} s exceeds limit {limits.max_duration_s:.0f} s"
        )
    return None


def _decode_reason(probe: dict[str, Any], limits: ProbeLimits) -> str | None:
    decoded = probe.get("n_frames_decoded") or 0
    expected = probe.get("n_frames_expected")
    if decoded == 0:
        return "no decodable video frames"
    if expected and decoded < limits.min_frame_ratio * expected:
        return f"decoded {decoded} of {expected} expected frames (truncated?)"
    return None


def file_sha256(path: str) -> str:
    """Content hash, streamed in chunks so large files are never held in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _quarantine_row(video_id: str, path: str, reason: str, **known: Any) -> dict[str, Any]:
    row = dict.fromkeys(VIDEOS_COLUMNS)
    row.update(known, video_id=video_id, path=path, status="quarantined", reason=reason)
    return row


def probe_videos(
    items: Sequence[tuple[str, str]],
    limits: ProbeLimits = ProbeLimits(),
    workers: int = 2,
    progress: bool = True,
) -> pd.DataFrame:
    """One ``videos`` row per ``(video_id, path)``, probing in isolated worker processes.

    Missing, unreadable and empty files are quarantined without starting a worker; crashes,
    hangs and decode errors quarantine only the file that caused them.
    """
    rows: dict[int, dict[str, Any]] = {}
    jobs: list[tuple[str, tuple[Any, ...]]] = []
    hashed: dict[int, dict[str, Any]] = {}
    for index, (video_id, path) in enumerate(items):
        path = str(path)
        file = Path(path)
        if not file.is_file():
            reason = "file not found" if not file.exists() else "not a regular file"
            rows[index] = _quarantine_row(video_id, path, f"{reason}: {path}")
            continue
        try:
            size = file.stat().st_size
            sha256 = file_sha256(path)
        except OSError as error:
            rows[index] = _quarantine_row(video_id, path, f"cannot read file: {error}")
            continue
        known = {"sha256": sha256, "bytes": size}
        if size == 0:
            rows[index] = _quarantine_row(video_id, path, "empty file (0 bytes)", **known)
            continue
        hashed[index] = known
        jobs.append((str(index), (path, limits)))

    outcomes = run_isolated(
        probe_file, jobs, timeout_s=limits.timeout_s, memory_mb=limits.memory_mb,
        workers=workers, progress=progress, label="probe",
    )
    for key, outcome in outcomes.items():
        index = int(key)
        video_id, path = items[index][0], str(items[index][1])
        if outcome.error is not None:
            reason = describe_failure(
                outcome.error, label="probe", timeout_s=limits.timeout_s,
                memory_mb=limits.memory_mb,
            )
            rows[index] = _quarantine_row(video_id, path, reason, **hashed[index])
            continue
        facts = outcome.value
        status, reason = decide_status(facts, limits)
        rows[index] = {
            "video_id": video_id, "path": path, **hashed[index], **facts,
            "status": status, "reason": reason,
        }
    frame = pd.DataFrame([rows[index] for index in range(len(items))], columns=VIDEOS_COLUMNS)
    return frame.astype(_DTYPES)
