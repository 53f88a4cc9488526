"""Uploaded videos: probe and featurise in an isolated worker with the pipeline's rules, then land them.

The worker function lives here at module level (workers are spawned and import it by name); this
module imports no BentoML and no torch, so a worker starts with only the media stack loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidrec.media.features import FeatureConfig, extract_one
from vidrec.media.pool import describe_failure, run_isolated
from vidrec.media.probe import ProbeLimits, decide_status, file_sha256, probe_file
from vidrec.media.shards import read_shard, shard_path

log = logging.getLogger(__name__)

MP4_BRANDS = (b"ftyp",)
MAX_UPLOAD_DURATION_S = 600.0
"""Uploads are short clips; the pipeline's four-hour limit is for catalogue imports."""


class UploadRejected(ValueError):
    """The upload is not an acceptable video; the message is the reason (a 4xx for the client)."""


@dataclass(frozen=True)
class ProcessedUpload:
    video_id: str
    sha256: str
    shard: Path
    duration_s: float
    has_audio: bool


def upload_video_id(sha256: str) -> str:
    """Content-addressed id: the same bytes uploaded twice are one video."""
    return f"up_{sha256[:20]}"


def looks_like_mp4(path: Path) -> bool:
    """ISO base media files start with a box whose type is ``ftyp`` (bytes 4..8)."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    return len(head) >= 8 and head[4:8] in MP4_BRANDS


def probe_and_extract(path: str, target: str, limits: ProbeLimits, config: FeatureConfig) -> dict[str, Any]:
    """Probe with the pipeline's limits and, when accepted, write the feature shard (runs in a worker)."""
    facts = probe_file(path, limits)
    status, reason = decide_status(facts, limits)
    if status == "accepted":
        extract_one(path, target, config)
    return {**facts, "status": status, "reason": reason}


def process_upload(
    path: Path, features_dir: Path, limits: ProbeLimits | None = None, config: FeatureConfig = FeatureConfig()
) -> ProcessedUpload:
    """Probe + featurise one uploaded file in an isolated, memory- and time-capped worker."""
    limits = limits or ProbeLimits(timeout_s=60.0, max_duration_s=MAX_UPLOAD_DURATION_S)
    if not looks_like_mp4(path):
        raise UploadRejected("video rejected: the file is not an MP4 (no 'ftyp' box at the start)")
    sha256 = file_sha256(str(path))
    target = shard_path(features_dir, sha256)
    outcomes = run_isolated(
        probe_and_extract,
        [("upload", (str(path), str(target), limits, config))],
        timeout_s=limits.timeout_s,
        memory_mb=limits.memory_mb,
        workers=1,
        progress=False,
        label="upload probe",
    )
    outcome = outcomes["upload"]
    if outcome.error is not None:
        reason = describe_failure(
            outcome.error, label="upload probe", timeout_s=limits.timeout_s, memory_mb=limits.memory_mb
        )
        # The server's temporary path means nothing to the client (and is not theirs to know).
        raise UploadRejected(
            f"video rejected: {reason.replace(repr(str(path)), 'the upload').replace(str(path), 'the upload')}"
        )
    facts = outcome.value
    if facts["status"] != "accepted":
        raise UploadRejected(f"video rejected: {facts['reason']}")
    shard = read_shard(target)
    log.info("upload %s probed and featurised: %.1f s, audio=%s", sha256[:12], facts["duration_s"], shard.has_audio)
    return ProcessedUpload(upload_video_id(sha256), sha256, target, float(facts["duration_s"]), bool(shard.has_audio))
