"""Extract frame and audio features for accepted videos into content-addressed shards.

Extraction runs in isolated workers like probing; a shard that already exists for a file's
hash and the feature config is reused, so re-running an unchanged catalogue is cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd

from vidrec.media.audio import AudioUnavailable, log_mel_from, n_mel_frames
from vidrec.media.cache import MediaCache
from vidrec.media.frames import SEEK_MODES, SamplingPlan, sample_frames_from
from vidrec.media.pool import MediaError, describe_failure, run_isolated
from vidrec.media.shards import read_shard, shard_path, write_shard

log = logging.getLogger(__name__)

FEATURES_COLUMNS = [
    "video_id",
    "sha256",
    "shard_path",
    "n_frames",
    "has_audio",
    "frames_shape",
    "mel_shape",
    "feature_config",
    "plan",
    "notes",
    "status",
    "reason",
    "cached",
]


@dataclass(frozen=True)
class FeatureConfig:
    """Shapes of the per-video features."""

    n_frames: int = 8
    frame_size: int = 32
    sample_rate: int = 16000
    n_mels: int = 40
    audio_seconds: float = 2.0
    hop_ms: float = 10.0
    win_ms: float = 25.0
    seek: str = "keyframe"
    # Log-mel windows spread across the clip and averaged (1: the middle window only, as before).
    audio_windows: int = 3
    # Bumped when extraction gives other arrays for the same bytes, so old shards are not reused
    # (2: frames turned upright, the main video stream, seek fallbacks, unusable audio masked;
    # 3: whole-clip audio, ``audio_windows``).
    extractor: int = 3

    def __post_init__(self) -> None:
        if self.seek not in SEEK_MODES:
            raise ValueError(f"FeatureConfig.seek must be one of {SEEK_MODES}, got {self.seek!r}")
        if self.n_frames < 1 or self.frame_size < 1 or self.audio_windows < 1:
            raise ValueError(f"FeatureConfig needs n_frames, frame_size and audio_windows >= 1, got {self}")

    def key(self) -> str:
        """Short fingerprint of every setting: shards made under another config are not reused."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def mel_shape(self) -> tuple[int, int]:
        n = n_mel_frames(self.sample_rate, self.audio_seconds, self.hop_ms, self.win_ms)
        return n, self.n_mels

    def frames_shape(self) -> tuple[int, int, int, int]:
        return self.n_frames, 3, self.frame_size, self.frame_size


def extract_one(path: str, target: str, config: FeatureConfig) -> dict[str, Any]:
    """Sample frames and log-mel of one file, write its shard, return its catalogue facts.

    Runs in a worker. The file is opened once for both modalities.
    """
    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise MediaError(
            f"feature extraction cannot open {path} ({error}): it changed or broke after the probe "
            "accepted it; copy the complete file again"
        ) from None
    with container:
        frames, plan = sample_frames_from(
            container,
            n_frames=config.n_frames,
            size=config.frame_size,
            seek=config.seek,
            name=path,
        )
        try:
            mel, has_audio = log_mel_from(
                container,
                sample_rate=config.sample_rate,
                n_mels=config.n_mels,
                seconds=config.audio_seconds,
                hop_ms=config.hop_ms,
                win_ms=config.win_ms,
                name=path,
                windows=config.audio_windows,
            )
            audio_note = None
        except AudioUnavailable as error:
            # Sound is optional: the video keeps its frames, its audio is masked as missing.
            mel, has_audio = np.zeros(config.mel_shape(), np.float16), False
            audio_note = f"audio ignored: {error}"
    write_shard(Path(target), frames, mel, has_audio, plan)
    notes = "; ".join(n for n in (plan.fallback, audio_note) if n) or None
    return _facts(target, plan, has_audio, config, notes)


def _facts(
    target: str, plan: SamplingPlan, has_audio: bool, config: FeatureConfig, notes: str | None = None
) -> dict[str, Any]:
    return {
        "shard_path": str(target),
        "n_frames": len(plan.timestamps),
        "has_audio": bool(has_audio),
        "frames_shape": "x".join(map(str, config.frames_shape())),
        "mel_shape": "x".join(map(str, config.mel_shape())),
        "feature_config": config.key(),
        "plan": plan_json(plan),
        "notes": notes,
    }


def plan_json(plan: SamplingPlan) -> str:
    """The sampling plan as JSON text for the catalogue (NaN frame times become null)."""
    record = asdict(plan)
    record["frame_times"] = [None if t != t else t for t in plan.frame_times]
    return json.dumps(record, sort_keys=True)


def _cached(target: Path, config: FeatureConfig) -> dict[str, Any] | None:
    """Catalogue facts of a usable existing shard, else None (missing, corrupt, or written with
    other shapes). Used when the media catalogue has no row for it (e.g. the catalogue was lost)."""
    if not target.is_file():
        return None
    try:
        shard = read_shard(target)
    except Exception as error:  # unreadable shard: extract again rather than fail
        log.warning("re-extracting unreadable shard %s: %s", target, error)
        return None
    if shard.frames.shape != config.frames_shape() or shard.mel.shape != config.mel_shape():
        return None
    return _facts(str(target), shard.plan, shard.has_audio, config, shard.plan.fallback or None)


def extract_features(
    accepted: pd.DataFrame,
    features_dir: Path,
    config: FeatureConfig = FeatureConfig(),
    workers: int = 2,
    progress: bool = True,
    *,
    timeout_s: float = 120.0,
    memory_mb: int = 1024,
    cache: MediaCache | None = None,
) -> pd.DataFrame:
    """One row per input video: where its shard is, or why extraction quarantined it.

    ``accepted`` holds ``videos`` rows (video_id, path, sha256) with status accepted. Shards
    live under ``features_dir/<config key>/`` addressed by sha256, so videos sharing bytes
    share one shard and one extraction, and a config change never reuses old shards.
    ``cached`` says the shard was reused; ``cache`` (the media catalogue) avoids opening shards
    to find that out, which keeps an unchanged 10,000-video catalogue to a few seconds.
    """
    if "status" in accepted and (accepted["status"] != "accepted").any():
        rejected = accepted.loc[accepted["status"] != "accepted", "video_id"].tolist()
        raise ValueError(
            f"extract_features takes accepted videos only; filter out {rejected[:5]} "
            f"({len(rejected)} rows) with videos[videos.status == 'accepted']"
        )
    shard_dir = Path(features_dir) / config.key()
    unique = accepted.drop_duplicates("sha256")
    known = cache.known_shards(unique["sha256"], config.key()) if cache is not None else {}
    results: dict[str, dict[str, Any]] = {}
    jobs: list[tuple[str, tuple[Any, ...]]] = []
    recovered: dict[str, dict[str, Any]] = {}
    for row in unique.itertuples(index=False):
        sha = row.sha256
        target = shard_path(shard_dir, sha)
        hit = known.get(sha)
        if hit is not None:
            hit = {**hit, "feature_config": config.key()}
        else:
            hit = recovered[sha] = _cached(target, config)  # type: ignore[assignment]
        if hit is not None:
            results[sha] = {**hit, "status": "accepted", "reason": None, "cached": True}
        else:
            jobs.append((sha, (str(row.path), str(target), config)))
    log.info("features: %d shards reused, %d to extract", len(results), len(jobs))

    outcomes = run_isolated(
        extract_one,
        jobs,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        workers=workers,
        progress=progress,
        label="feature extraction",
    )
    made: dict[str, dict[str, Any]] = {}
    for sha, outcome in outcomes.items():
        if outcome.error is None:
            made[sha] = outcome.value
            results[sha] = {**outcome.value, "status": "accepted", "reason": None, "cached": False}
        else:
            reason = describe_failure(
                outcome.error,
                label="feature extraction",
                timeout_s=timeout_s,
                memory_mb=memory_mb,
            )
            results[sha] = {"status": "quarantined", "reason": reason, "cached": False}
    if cache is not None:
        cache.remember_shards({**{k: v for k, v in recovered.items() if v}, **made}, config.key())

    rows = [
        {"video_id": row.video_id, "sha256": row.sha256, **results[row.sha256]}
        for row in accepted.itertuples(index=False)
    ]
    frame = pd.DataFrame(rows, columns=FEATURES_COLUMNS)
    return frame.astype({"n_frames": "Int64", "has_audio": "boolean", "cached": "bool"})
