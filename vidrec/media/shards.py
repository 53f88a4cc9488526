"""Per-video feature shards on disk, addressed by the content hash of the source file.

Addressing by hash makes extraction a cache: the same bytes map to the same shard, so an
unchanged catalog is not re-decoded, and renaming a file does not invalidate its features.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidrec.media.frames import SamplingPlan


@dataclass(frozen=True)
class Shard:
    """Features of one video: sampled frames (T, C, H, W) uint8 and log-mel (F, M) float16."""

    frames: np.ndarray
    mel: np.ndarray
    has_audio: bool
    plan: SamplingPlan


def shard_path(features_dir: Path, sha256: str) -> Path:
    """``<features_dir>/<sha[:2]>/<sha>.npz`` (two-level fan-out keeps directories small)."""
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a lowercase hex sha256: {sha256!r}")
    return Path(features_dir) / sha256[:2] / f"{sha256}.npz"


def write_shard(
    path: Path, frames: np.ndarray, mel: np.ndarray, has_audio: bool, plan: SamplingPlan
) -> None:
    """Write a shard atomically: readers see the old file, the new one, or none, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            np.savez_compressed(
                handle,
                frames=np.asarray(frames, dtype=np.uint8),
                mel=np.asarray(mel, dtype=np.float16),
                has_audio=np.bool_(has_audio),
                timestamps=np.asarray(plan.timestamps, dtype=np.float64),
                size=np.int64(plan.size),
                repeated=np.asarray(plan.repeated, dtype=np.int64),
                frames_decoded=np.int64(plan.frames_decoded),
            )
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def read_shard(path: Path) -> Shard:
    """Load a shard written by ``write_shard``."""
    with np.load(Path(path), allow_pickle=False) as data:
        plan = SamplingPlan(
            timestamps=tuple(float(t) for t in data["timestamps"]),
            size=int(data["size"]),
            repeated=tuple(int(i) for i in data["repeated"]),
            frames_decoded=int(data["frames_decoded"]),
        )
        return Shard(
            frames=data["frames"], mel=data["mel"], has_audio=bool(data["has_audio"]), plan=plan
        )
