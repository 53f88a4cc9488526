"""Feature shards for items that are not videos: a cover image is a one-frame video, and an item with
no media gets an all-zero shard with its visual and audio modalities marked missing.

Covers are decoded and resized by PyAV exactly as ``vidrec.media.frames`` resizes video frames, so a
cover and a one-frame video of the same picture give (up to video compression) the same features.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import av
import numpy as np
import pandas as pd

from vidrec.media.features import FEATURES_COLUMNS, FeatureConfig
from vidrec.media.frames import SamplingPlan
from vidrec.media.pool import MediaError
from vidrec.media.probe import file_sha256
from vidrec.media.shards import read_shard, shard_path, write_shard

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


def cover_frames(path: str, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """``(n_frames, 3, size, size)`` uint8: the image's one frame, repeated at every sampled moment
    (what ``sample_frames`` returns for a video with a single frame)."""
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise MediaError(f"cannot read cover {path}: no image stream")
            frame = next(container.decode(video=0), None)
    except av.FFmpegError as error:
        raise MediaError(f"cannot decode cover image {path}: {error}") from error
    if frame is None:
        raise MediaError(f"cannot read cover {path}: it holds no picture")
    size = config.frame_size
    rgb = frame.reformat(width=size, height=size, format="rgb24").to_ndarray().transpose(2, 0, 1)
    return np.ascontiguousarray(np.repeat(rgb[None], config.n_frames, axis=0), dtype=np.uint8)


def _silent(config: FeatureConfig) -> np.ndarray:
    return np.zeros(config.mel_shape(), dtype=np.float16)


def write_cover_shard(path: str, features_dir: Path, config: FeatureConfig = FeatureConfig()) -> tuple[str, Path]:
    """Write (or reuse) the shard of a cover image, addressed by the image's sha256 like a video's."""
    sha = file_sha256(path)
    target = shard_path(features_dir, sha)
    if not target.is_file() or read_shard(target).frames.shape != config.frames_shape():
        frames = cover_frames(path, config)
        plan = SamplingPlan(
            timestamps=(0.0,) * config.n_frames,
            size=config.frame_size,
            repeated=tuple(range(1, config.n_frames)),
            frames_decoded=1,
        )
        write_shard(target, frames, _silent(config), has_audio=False, plan=plan)
    return sha, target


def no_media_shard(features_dir: Path, config: FeatureConfig = FeatureConfig()) -> tuple[str, Path]:
    """The one shared all-zero shard for items without media (its content never reaches a model:
    the item's has_visual / has_audio mask is False). Addressed by a hash of the shapes."""
    sha = hashlib.sha256(f"vidrec:no-media:{config.frames_shape()}:{config.mel_shape()}".encode()).hexdigest()
    target = shard_path(features_dir, sha)
    if not target.is_file():
        frames = np.zeros(config.frames_shape(), dtype=np.uint8)
        plan = SamplingPlan(timestamps=(), size=config.frame_size, repeated=(), frames_decoded=0)
        write_shard(target, frames, _silent(config), has_audio=False, plan=plan)
    return sha, target


def item_shards(items: pd.DataFrame, features_dir: Path, config: FeatureConfig = FeatureConfig()) -> pd.DataFrame:
    """A ``video_features``-shaped frame (FEATURES_COLUMNS + has_visual) for the image and media-less items of an
    import; videos are left to the pipeline's probe and extraction. Unreadable covers are quarantined
    with the decoder's reason (the item is kept, its visual modality is then missing)."""
    rows = []
    for row in items[items["media_kind"] != "video"].itertuples(index=False):
        if row.media_kind == "image":
            try:
                sha, target = write_cover_shard(str(row.media_path), features_dir, config)
                rows.append(
                    {
                        "video_id": row.video_id,
                        "sha256": sha,
                        "shard_path": str(target),
                        "n_frames": config.n_frames,
                        "has_audio": False,
                        "status": "accepted",
                        "reason": None,
                        "cached": False,
                        "has_visual": True,
                    }
                )
                continue
            except (MediaError, OSError) as error:
                log.warning("cover of %s unreadable, visual marked missing: %s", row.video_id, error)
                reason = f"cover image unreadable ({error}); visual modality marked missing"
        else:
            reason = None
        sha, target = no_media_shard(features_dir, config)
        rows.append(
            {
                "video_id": row.video_id,
                "sha256": sha,
                "shard_path": str(target),
                "n_frames": 0,
                "has_audio": False,
                "status": "accepted",
                "reason": reason or "no media: visual and audio modalities marked missing",
                "cached": False,
                "has_visual": False,
            }
        )
    frame = pd.DataFrame(rows, columns=[*FEATURES_COLUMNS, "has_visual"])
    return frame.astype({"n_frames": "Int64", "has_audio": "boolean", "cached": "bool"})
