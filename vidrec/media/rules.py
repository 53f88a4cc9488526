"""What a video must satisfy to be accepted, and reasons that tell the uploader what to do.

Pure functions over probe facts (``vidrec.media.probe`` gathers them in isolated workers). The
limits follow decode cost, not shape: a portrait 4K phone video costs what a landscape one does,
and 240 fps slow motion is ordinary phone output, so neither is refused for its orientation or
rate. An audio-only problem never refuses a video (the probe marks the audio missing instead).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

RE_EXPORT = "re-export it as MP4 (H.264 video, AAC audio) or copy the complete file again"


@dataclass(frozen=True)
class ProbeLimits:
    """What a probe may cost and what a video must satisfy to be accepted."""

    timeout_s: float = 30.0
    memory_mb: int = 1024
    # Pixels per frame, whatever the orientation: 3840x2160 and 2160x3840 cost the same to decode.
    max_pixels: int = 3840 * 2160
    # Longest side: what common hardware decoders and H.264/HEVC levels handle.
    max_side: int = 8192
    min_frame_ratio: float = 0.9
    max_duration_s: float = 4 * 3600.0
    # Slow motion is stored at 240-960 fps; a higher rate is a broken header, not a camera.
    max_fps: float = 1000.0
    # Frames decoded before the probe only counts the remaining frame packets (demuxing,
    # ~50x cheaper), so probing a long video stays within the time limit.
    decode_budget_frames: int = 20_000

    def key(self) -> str:
        """Fingerprint of the settings that shape probe facts (time and memory limits do not:
        runs that hit them are never cached)."""
        rules = {k: v for k, v in asdict(self).items() if k not in ("timeout_s", "memory_mb")}
        rules["facts"] = 2  # probe facts gained rotation, stream choice, audio checks, truncation
        return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:12]


def decide_status(probe: dict[str, Any], limits: ProbeLimits) -> tuple[str, str | None]:
    """``("accepted", None)`` or ``("quarantined", reason)`` for one probe result."""
    reason = header_reason(probe, limits) or _structure_reason(probe) or _decode_reason(probe, limits)
    return ("accepted", None) if reason is None else ("quarantined", reason)


def header_reason(probe: dict[str, Any], limits: ProbeLimits, before_decoding: bool = False) -> str | None:
    """Rules that need only the container header (checked before decoding anything).

    ``before_decoding``: a missing duration is not yet a reason, since the probe measures it from
    the packets (a live-recorded WebM states none in its header); only a bare stream is refused."""
    if not probe.get("video_codec"):
        return (
            "no video stream (an audio-only or data file): add the video track, or give the item a "
            "cover image with media_kind=image in the sidecar (docs/import.md)"
        )
    width, height = probe.get("width") or 0, probe.get("height") or 0
    if width <= 0 or height <= 0:
        return f"invalid frame size {width}x{height} in the header: {RE_EXPORT}"
    if width * height > limits.max_pixels or max(width, height) > limits.max_side:
        return (
            f"frame size {width}x{height} ({width * height / 1e6:.1f} megapixels) exceeds the limit of "
            f"{limits.max_pixels / 1e6:.1f} megapixels per frame and {limits.max_side} pixels per side: "
            "downscale it to 4K (3840x2160 or 2160x3840) or less"
        )
    fps = probe.get("fps")
    if fps is not None and fps > limits.max_fps:
        return f"frame rate {fps:g} fps exceeds {limits.max_fps:g} fps (a broken header?): {RE_EXPORT}"
    duration = probe.get("duration_s")
    if duration is None and before_decoding and not probe.get("raw_stream"):
        return None
    if duration is None:
        if probe.get("raw_stream"):
            return (
                f"a bare {probe.get('video_codec')} stream without a container has no timing or duration: "
                "wrap it in MP4, e.g. `ffmpeg -framerate <fps> -i FILE -c copy FILE.mp4`"
            )
        return f"unknown duration (neither the header nor the packets state one): {RE_EXPORT}"
    if duration <= 0:
        return "zero duration in the header: re-mux it (`ffmpeg -i FILE -c copy OUT.mp4`) to rewrite the header"
    if duration > limits.max_duration_s:
        return (
            f"duration {duration:.0f} s exceeds the limit of {limits.max_duration_s:.0f} s: "
            "split it into shorter videos"
        )
    return None


def _structure_reason(probe: dict[str, Any]) -> str | None:
    problem = probe.get("truncated")
    return f"{problem}: copy the complete file again (or re-export it)" if problem else None


def _decode_reason(probe: dict[str, Any], limits: ProbeLimits) -> str | None:
    decoded = probe.get("n_frames_decoded") or 0
    expected = probe.get("n_frames_expected")
    if decoded == 0:
        return f"no decodable video frames (the video data is damaged): {RE_EXPORT}"
    if expected and decoded < limits.min_frame_ratio * expected:
        return (
            f"decoded {decoded} of {expected} expected frames (truncated?): the file is probably cut "
            "short; copy the complete file again"
        )
    return None
