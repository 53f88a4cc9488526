"""Uploaded videos: probe and featurise in an isolated worker with the pipeline's rules, then land them.

The worker function lives here at module level (workers are spawned and import it by name); this
module imports no BentoML and no torch, so a worker starts with only the media stack loaded.

Recognition: the worker also decodes the frames the pretrained backbone needs (untrusted media is only
ever decoded in the capped worker); the service process, which has torch loaded for the text encoder
anyway, runs the backbone on them (~8 frames x 55 ms on one CPU thread) and stores the features under
the content-addressed key the pipeline's ``video_features`` reads, so the nightly run finds them cached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidrec.media.features import FeatureConfig, extract_one
from vidrec.media.frame_sampling import sample_rgb
from vidrec.media.pool import MediaError, describe_failure, run_isolated
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
    frame_features_path: str | None = None  # the cached backbone features (None: recognition not asked or failed)
    recognised: str | None = None  # the recognised tags as JSON (vidrec.media.recognition.tags_json)
    recognition_reason: str | None = None  # why the frames could not be recognised


def upload_video_id(sha256: str) -> str:
    """Content-addressed id: the same bytes uploaded twice are one video."""
    return f"up_{sha256[:20]}"


def looks_like_mp4(path: Path) -> bool:
    """ISO base media files start with a box whose type is ``ftyp`` (bytes 4..8)."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    return len(head) >= 8 and head[4:8] in MP4_BRANDS


def probe_and_extract(
    path: str, target: str, limits: ProbeLimits, config: FeatureConfig, recognition_frames: int = 0
) -> dict[str, Any]:
    """Probe with the pipeline's limits and, when accepted, write the feature shard and decode
    ``recognition_frames`` RGB frames for the backbone (runs in a worker)."""
    facts = probe_file(path, limits)
    status, reason = decide_status(facts, limits)
    if status == "accepted":
        extract_one(path, target, config)
        if recognition_frames:
            try:
                facts["frames"] = sample_rgb(path, recognition_frames)
            except MediaError as error:  # the video stays (as in the pipeline): it is only not recognised
                facts["recognition_reason"] = str(error)
    return {**facts, "status": status, "reason": reason}


def process_upload(
    path: Path,
    features_dir: Path,
    limits: ProbeLimits | None = None,
    config: FeatureConfig = FeatureConfig(),
    recognition_cache: Path | None = None,
) -> ProcessedUpload:
    """Probe + featurise one uploaded file in an isolated, memory- and time-capped worker; with
    ``recognition_cache``, also recognise what its frames show (tags and cached backbone features)."""
    limits = limits or ProbeLimits(timeout_s=60.0, max_duration_s=MAX_UPLOAD_DURATION_S)
    if not looks_like_mp4(path):
        raise UploadRejected("video rejected: the file is not an MP4 (no 'ftyp' box at the start)")
    sha256 = file_sha256(str(path))
    target = shard_path(features_dir, sha256)
    frames_needed, cached = 0, None
    if recognition_cache is not None:
        from vidrec.media.recognition import RecognitionConfig, cached_features  # torch: the service's process

        cached = cached_features(sha256, recognition_cache)
        frames_needed = 0 if cached is not None else RecognitionConfig().n_frames
    outcomes = run_isolated(
        probe_and_extract,
        [("upload", (str(path), str(target), limits, config, frames_needed))],
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
    processed = ProcessedUpload(
        upload_video_id(sha256), sha256, target, float(facts["duration_s"]), bool(shard.has_audio)
    )
    if recognition_cache is None:
        return processed
    if cached is None and "frames" not in facts:
        log.warning("upload %s not recognised: %s", sha256[:12], facts.get("recognition_reason"))
        return replace(processed, recognition_reason=facts.get("recognition_reason"))
    from vidrec.media.recognition import recognise_one

    one = recognise_one(sha256, facts.get("frames"), recognition_cache)
    return replace(processed, frame_features_path=one.frame_features_path, recognised=one.recognised)


def landed_frame_features(record: dict) -> np.ndarray | None:
    """The cached backbone features a landed upload record names, or None (recognition not run or failed,
    or the cache entry since deleted: the served model then places the upload with its picture masked)."""
    path = record.get("frame_features_path")
    if not path or not Path(path).is_file():
        return None
    return np.load(path)


def landed_tag_columns(record: dict) -> dict[str, str | None]:
    """A landed upload's catalogue tag columns (``bentos.catalogue.TAG_COLUMNS``): the uploader's tags as
    the catalogue keeps them (``a|b``; the form sends a list) and the recognised tags' JSON."""
    own = record.get("tags") or []
    return {"tags": "|".join(own) if isinstance(own, list) else str(own), "recognised": record.get("recognised")}
