"""Probe raw video files into rows of the ``videos`` table, accepting or quarantining each.

Probing opens and decodes the video stream of untrusted files, so it runs in isolated worker
processes (see ``vidrec.media.pool``); the accept/quarantine rules are a pure function.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import av
import pandas as pd
from pebble import ProcessExpired

from vidrec.media.cache import MediaCache
from vidrec.media.hashing import file_sha256, hash_files, stat_files  # noqa: F401 (file_sha256 re-exported)
from vidrec.media.pool import MediaError, describe_failure, run_isolated

log = logging.getLogger(__name__)

CRASH_HOOK_ENV_VAR = "VIDREC_TEST_CRASH_ON"
"""Test hook: a worker probing exactly this path calls ``os.abort()`` (to test isolation)."""

VIDEOS_COLUMNS = [
    "video_id", "path", "sha256", "bytes", "container", "video_codec", "width", "height",
    "fps", "duration_s", "n_frames_expected", "n_frames_decoded", "has_audio", "audio_codec",
    "sample_rate", "duplicate_of", "status", "reason",
]

_DTYPES = {
    "bytes": "Int64", "width": "Int64", "height": "Int64", "fps": "float64",
    "duration_s": "float64", "n_frames_expected": "Int64", "n_frames_decoded": "Int64",
    "has_audio": "boolean", "sample_rate": "Int64",
}
_PROBE_FIELDS = VIDEOS_COLUMNS[4:-3]


@dataclass(frozen=True)
class ProbeLimits:
    """What a probe may cost and what a video must satisfy to be accepted."""

    timeout_s: float = 30.0
    memory_mb: int = 1024
    max_width: int = 3840
    max_height: int = 2160
    min_frame_ratio: float = 0.9
    max_duration_s: float = 4 * 3600.0
    # Frames decoded before the probe only counts the remaining frame packets (demuxing,
    # ~50x cheaper), so probing a long video stays within the time limit.
    decode_budget_frames: int = 20_000

    def key(self) -> str:
        """Fingerprint of the settings that shape probe facts (time and memory limits do not:
        runs that hit them are never cached)."""
        rules = {k: v for k, v in asdict(self).items() if k not in ("timeout_s", "memory_mb")}
        return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:12]


def probe_file(path: str, limits: ProbeLimits | None = None) -> dict[str, Any]:
    """Header facts plus a decode count of the first video stream (runs in a worker).

    Decoding is skipped when the header already breaks a limit (oversized frames are never
    decoded into memory) and stops at twice the expected frame count; past
    ``limits.decode_budget_frames`` the remaining frame packets are counted, not decoded.
    Decoding errors propagate so the caller records them as the reason.
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
        # ``is not None``: a header that states zero duration is a finding ("zero duration"),
        # not a missing value ("unknown duration").
        if video.duration is not None and video.time_base:
            duration = float(video.duration * video.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = None
        facts["duration_s"] = duration
        expected = video.frames or (round(duration * fps) if duration and fps else None)
        facts["n_frames_expected"] = expected

        if _header_reason(facts, limits) is None:
            facts["n_frames_decoded"] = _count_frames(
                container, video, expected, limits.decode_budget_frames)
        return facts


def _count_frames(container: Any, video: Any, expected: int | None, budget: int) -> int:
    """Frames decoded from the video stream; past ``budget`` decoded frames, the frame
    packets that are still present count instead (a truncated file lacks them too)."""
    # One worker per core: decoder threads would only add start-up cost.
    video.thread_type = "NONE"
    video.codec_context.thread_count = 1
    cap = 2 * expected if expected else None
    decoded = counted = 0
    try:
        for packet in container.demux(video):
            if decoded < budget:
                decoded += len(packet.decode())
                if decoded >= budget:  # drain the decoder before switching to counting
                    decoded += len(video.codec_context.decode(None))
            elif packet.size:
                counted += 1
            if cap is not None and decoded + counted >= cap:
                break
    except av.FFmpegError as error:
        # MediaError makes the reason say that decoding (not opening) failed, and how far it got.
        raise MediaError(f"decoding failed after {decoded} frames: {error}") from None
    return decoded + counted


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


def _quarantine_row(video_id: str, path: str, reason: str, **known: Any) -> dict[str, Any]:
    row = dict.fromkeys(VIDEOS_COLUMNS)
    row.update(known, video_id=video_id, path=path, status="quarantined", reason=reason)
    return row


def probe_videos(
    items: Sequence[tuple[str, str]],
    limits: ProbeLimits = ProbeLimits(),
    workers: int = 2,
    progress: bool = True,
    cache: MediaCache | None = None,
    rehash: bool = False,
) -> pd.DataFrame:
    """One ``videos`` row per ``(video_id, path)``, probing in isolated worker processes.

    Missing, unreadable and empty files are quarantined without starting a worker; crashes,
    hangs and decode errors quarantine only the file that caused them. Identical bytes are
    probed once; ``duplicate_of`` names the first video_id (sorted) with the same sha256.
    With ``cache`` (the media catalog), unchanged files are neither re-hashed nor re-probed;
    ``frame.attrs`` then says how many files were hashed and probed.
    """
    paths = [str(path) for _, path in items]
    stats = stat_files(paths)
    hashes, read_errors, n_hashed = hash_files(stats, cache, rehash)
    stat_of = {row["path"]: row for row in stats.to_dict("records")}
    rows: dict[int, dict[str, Any]] = {}
    pending: dict[str, list[int]] = {}  # sha256 -> item indexes waiting for its probe
    first_path: dict[str, str] = {}
    for index, (video_id, path) in enumerate(items):
        path = str(path)
        stat = stat_of[path]
        if not stat["is_file"]:
            reason = (
                f"cannot read file: {stat['error']}" if stat["error"]
                else "file not found" if not stat["exists"] else "not a regular file"
            )
            rows[index] = _quarantine_row(video_id, path, f"{reason}: {path}")
            continue
        if path in read_errors:
            rows[index] = _quarantine_row(video_id, path, read_errors[path])
            continue
        sha256 = hashes[path]
        known = {"sha256": sha256, "bytes": int(stat["bytes"])}
        if stat["bytes"] == 0:
            rows[index] = _quarantine_row(video_id, path, "empty file (0 bytes)", **known)
            continue
        rows[index] = known
        pending.setdefault(sha256, []).append(index)
        first_path.setdefault(sha256, path)

    probed = cache.known_probes(pending, limits.key()) if cache is not None else {}
    jobs = [(sha, (first_path[sha], limits)) for sha in pending if sha not in probed]
    log.info("probe: %d files, %d distinct contents, %d known, %d to probe",
             len(items), len(pending), len(pending) - len(jobs), len(jobs))
    outcomes = run_isolated(
        probe_file, jobs, timeout_s=limits.timeout_s, memory_mb=limits.memory_mb,
        workers=workers, progress=progress, label="probe",
    )
    fresh: dict[str, dict[str, Any]] = {}
    for sha, outcome in outcomes.items():
        if outcome.error is None:
            fresh[sha] = outcome.value
        else:
            reason = describe_failure(
                outcome.error, label="probe", timeout_s=limits.timeout_s,
                memory_mb=limits.memory_mb,
            )
            # Timeouts and crashes may be the machine's fault: retried next run, not cached.
            transient = isinstance(outcome.error, (TimeoutError, ProcessExpired))
            probed[sha] = {"_error": reason}
            if not transient:
                fresh[sha] = probed[sha]
    probed.update(fresh)
    if cache is not None:
        cache.remember_probes(fresh, limits.key())

    for sha, indexes in pending.items():
        facts = probed[sha]
        for index in indexes:
            video_id, path = items[index][0], str(items[index][1])
            if "_error" in facts:
                rows[index] = _quarantine_row(video_id, path, facts["_error"], **rows[index])
                continue
            status, reason = decide_status(facts, limits)
            rows[index] = {"video_id": video_id, "path": path, **rows[index],
                           **{k: facts.get(k) for k in _PROBE_FIELDS},
                           "status": status, "reason": reason}
    frame = pd.DataFrame([rows[index] for index in range(len(items))], columns=VIDEOS_COLUMNS)
    frame["duplicate_of"] = duplicate_of(frame)
    frame = frame.astype(_DTYPES)
    # How much work this call did (the rest came from the media catalog), for run metadata.
    frame.attrs = {"hashed": n_hashed, "probed": len(jobs)}
    return frame


def duplicate_of(videos: pd.DataFrame) -> pd.Series:
    """For each row, the smallest other video_id with the same sha256 (None if unique)."""
    hashed = videos[videos["sha256"].notna()]
    first = hashed.groupby("sha256")["video_id"].min()
    owner = videos["sha256"].map(first)
    return owner.where(owner.notna() & (owner != videos["video_id"]), None)


def deleted_rows(deleted: pd.DataFrame) -> pd.DataFrame:
    """``videos`` rows (quarantined) for files seen in an earlier run and gone now.

    ``deleted`` comes from ``MediaCache.record_sightings``; the rows keep the last known path
    and sha256 so downstream tables can drop the video's features and events explicitly.
    """
    rows = [
        _quarantine_row(
            r.video_id, r.path,
            f"deleted: file no longer in the source (last seen {r.last_seen:%Y-%m-%d %H:%M:%S} UTC)",
            sha256=r.sha256,
        )
        for r in deleted.itertuples(index=False)
    ]
    return pd.DataFrame(rows, columns=VIDEOS_COLUMNS).astype(_DTYPES)
