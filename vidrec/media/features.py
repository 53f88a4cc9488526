"""Extract frame and audio features for accepted videos into content-addressed shards.

Extraction runs in isolated workers like probing; a shard that already exists for a file's
hash (with the configured shapes) is reused, so re-running an unchanged catalog is cheap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vidrec.media.audio import log_mel, n_mel_frames
from vidrec.media.frames import sample_frames
from vidrec.media.pool import describe_failure, run_isolated
from vidrec.media.shards import read_shard, shard_path, write_shard

log = logging.getLogger(__name__)

FEATURES_COLUMNS = [
    "video_id", "sha256", "shard_path", "n_frames", "has_audio", "status", "reason", "cached",
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

    def mel_shape(self) -> tuple[int, int]:
        n = n_mel_frames(self.sample_rate, self.audio_seconds, self.hop_ms, self.win_ms)
        return n, self.n_mels

    def frames_shape(self) -> tuple[int, int, int, int]:
        return self.n_frames, 3, self.frame_size, self.frame_size


def extract_one(path: str, target: str, config: FeatureConfig) -> tuple[int, bool]:
    """Sample frames and log-mel of one file and write its shard (runs in a worker)."""
    frames, plan = sample_frames(path, n_frames=config.n_frames, size=config.frame_size)
    mel, has_audio = log_mel(
        path, sample_rate=config.sample_rate, n_mels=config.n_mels,
        seconds=config.audio_seconds, hop_ms=config.hop_ms, win_ms=config.win_ms,
    )
    write_shard(Path(target), frames, mel, has_audio, plan)
    return len(frames), has_audio


def _cached(target: Path, config: FeatureConfig) -> tuple[int, bool] | None:
    """``(n_frames, has_audio)`` of a usable existing shard, else None (missing, corrupt, or
    written with other shapes, e.g. before a config change)."""
    if not target.is_file():
        return None
    try:
        shard = read_shard(target)
    except Exception as error:  # unreadable shard: extract again rather than fail
        log.warning("re-extracting unreadable shard %s: %s", target, error)
        return None
    if shard.frames.shape != config.frames_shape() or shard.mel.shape != config.mel_shape():
        return None
    return len(shard.frames), shard.has_audio


def extract_features(
    accepted: pd.DataFrame,
    features_dir: Path,
    config: FeatureConfig = FeatureConfig(),
    workers: int = 2,
    progress: bool = True,
    *,
    timeout_s: float = 120.0,
    memory_mb: int = 1024,
) -> pd.DataFrame:
    """One row per input video: where its shard is, or why extraction quarantined it.

    ``accepted`` holds ``videos`` rows (video_id, path, sha256) with status accepted. Videos
    sharing a hash share one shard and one extraction. ``cached`` says the shard was reused.
    """
    if "status" in accepted and (accepted["status"] != "accepted").any():
        rejected = accepted.loc[accepted["status"] != "accepted", "video_id"].tolist()
        raise ValueError(
            f"extract_features takes accepted videos only; filter out {rejected[:5]} "
            f"({len(rejected)} rows) with videos[videos.status == 'accepted']"
        )
    features_dir = Path(features_dir)
    results: dict[str, dict[str, Any]] = {}
    jobs: list[tuple[str, tuple[Any, ...]]] = []
    seen: set[str] = set()
    for row in accepted.itertuples(index=False):
        sha = row.sha256
        if sha in seen:
            continue
        seen.add(sha)
        target = shard_path(features_dir, sha)
        hit = _cached(target, config)
        if hit is not None:
            results[sha] = {"n_frames": hit[0], "has_audio": hit[1], "status": "accepted",
                            "reason": None, "cached": True}
        else:
            jobs.append((sha, (str(row.path), str(target), config)))
    log.info("features: %d shards reused, %d to extract", len(results), len(jobs))

    outcomes = run_isolated(
        extract_one, jobs, timeout_s=timeout_s, memory_mb=memory_mb,
        workers=workers, progress=progress, label="feature extraction",
    )
    for sha, outcome in outcomes.items():
        if outcome.error is None:
            n_frames, has_audio = outcome.value
            results[sha] = {"n_frames": n_frames, "has_audio": has_audio,
                            "status": "accepted", "reason": None, "cached": False}
        else:
            reason = describe_failure(
                outcome.error, label="feature extraction", timeout_s=timeout_s,
                memory_mb=memory_mb,
            )
            results[sha] = {"n_frames": None, "has_audio": None, "status": "quarantined",
                            "reason": reason, "cached": False}

    rows = []
    for row in accepted.itertuples(index=False):
        result = results[row.sha256]
        path = shard_path(features_dir, row.sha256) if result["status"] == "accepted" else None
        rows.append({"video_id": row.video_id, "sha256": row.sha256,
                     "shard_path": None if path is None else str(path), **result})
    frame = pd.DataFrame(rows, columns=FEATURES_COLUMNS)
    return frame.astype({"n_frames": "Int64", "has_audio": "boolean", "cached": "bool"})
