"""Per-video feature shards on disk, addressed by the content hash of the source file.

Addressing by hash makes extraction a cache: the same bytes map to the same shard, so an
unchanged catalogue is not re-decoded, and renaming a file does not invalidate its features.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
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


def write_shard(path: Path, frames: np.ndarray, mel: np.ndarray, has_audio: bool, plan: SamplingPlan) -> None:
    """Write a shard atomically: readers see the old file, the new one, or none, never half.

    Three members (frames, mel, and the rest as JSON) and no compression: each npz member
    and zlib cost more than the decoding they store (measured 4 ms against 0.4 ms per shard),
    and noisy 32x32 frames shrink by only ~20%.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"has_audio": bool(has_audio), **asdict(plan)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one writer per process
    try:
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                frames=np.asarray(frames, dtype=np.uint8),
                mel=np.asarray(mel, dtype=np.float16),
                meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_shard(path: Path) -> Shard:
    """Load a shard written by ``write_shard`` (or by its earlier one-member-per-field form)."""
    with np.load(Path(path), allow_pickle=False) as data:
        if "meta" in data:
            meta = json.loads(data["meta"].tobytes())
            has_audio = bool(meta.pop("has_audio"))
            plan = SamplingPlan(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta.items()})
        else:
            has_audio = bool(data["has_audio"])
            plan = SamplingPlan(
                timestamps=tuple(float(t) for t in data["timestamps"]),
                size=int(data["size"]),
                repeated=tuple(int(i) for i in data["repeated"]),
                frames_decoded=int(data["frames_decoded"]),
                # Shards written before these fields existed read as "no record".
                frame_times=(tuple(float(t) for t in data["frame_times"]) if "frame_times" in data else ()),
                seek=str(data["seek"]) if "seek" in data else "exact",
            )
        return Shard(frames=data["frames"], mel=data["mel"], has_audio=has_audio, plan=plan)
