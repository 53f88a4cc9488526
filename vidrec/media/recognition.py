"""What is in the picture: per-frame backbone features cached by content hash, and per-video tags.

Frames are sampled at the backbone's resolution (aspect kept, not the 32x32 squares of the
feature shards), featurised by the frozen EfficientNet-Lite0 and stored as ``(T, 1280)`` float16
under ``<cache_dir>/<backbone key>-t<T>/<sha[:2]>/<sha>.npy``. The same bytes never go through
the network twice, so a retrain, a re-run or a renamed file costs a file read per video.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.media.backbone import Backbone, imagenet_labels, shared_backbone, short_label
from vidrec.media.frame_sampling import sample_rgb
from vidrec.media.pool import MediaError

log = logging.getLogger(__name__)

RECOGNITION_COLUMNS = ["video_id", "sha256", "n_frames", "cached", "status", "reason"]
TAG_COLUMNS = ["video_id", "rank", "tag", "label", "label_index", "confidence"]


@dataclass(frozen=True)
class RecognitionConfig:
    n_frames: int = 8
    top_k: int = 5

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.top_k < 1:
            raise ValueError(f"RecognitionConfig needs n_frames >= 1 and top_k >= 1, got {self}")


def cache_path(cache_dir: Path, backbone_key: str, n_frames: int, sha256: str) -> Path:
    return Path(cache_dir) / f"{backbone_key}-t{n_frames}" / sha256[:2] / f"{sha256}.npy"


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, array.astype(np.float16))
    os.replace(tmp, path)


def frame_features(
    videos: pd.DataFrame,
    cache_dir: Path,
    config: RecognitionConfig = RecognitionConfig(),
    backbone: Backbone | None = None,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Per-frame backbone features of each video (``videos``: video_id, path, sha256).

    Returns ``{sha256: (T, 1280) float32}`` and one row per input video: cached or computed, or
    quarantined with the reason (a file that decoded at probe time but not now). The backbone is
    loaded only when something must be computed, so a fully cached run never loads it."""
    features: dict[str, np.ndarray] = {}
    status: dict[str, tuple[bool, str, str | None]] = {}
    todo = []
    key = backbone.key if backbone is not None else None
    for row in videos.drop_duplicates("sha256").itertuples(index=False):
        if key is None:
            backbone = shared_backbone()
            key = backbone.key
        path = cache_path(cache_dir, key, config.n_frames, row.sha256)
        if path.is_file():
            features[row.sha256] = np.load(path).astype(np.float32)
            status[row.sha256] = (True, "accepted", None)
        else:
            todo.append((row.sha256, str(row.path), path))
    started = time.perf_counter()
    for sha, source, target in todo:
        try:
            frames = sample_rgb(source, config.n_frames)
        except MediaError as error:
            status[sha] = (False, "quarantined", str(error))
            continue
        features[sha] = _featurise(backbone, frames, target)  # type: ignore[arg-type]
        status[sha] = (False, "accepted", None)
    if todo:
        log.info("recognition: %d videos featurised in %.1f s", len(todo), time.perf_counter() - started)
    rows = []
    for row in videos.itertuples(index=False):
        cached, state, reason = status[row.sha256]
        n = len(features[row.sha256]) if row.sha256 in features else None
        rows.append({"video_id": row.video_id, "sha256": row.sha256, "n_frames": n, "cached": cached,
                     "status": state, "reason": reason})  # fmt: skip
    frame = pd.DataFrame(rows, columns=RECOGNITION_COLUMNS).astype({"n_frames": "Int64", "cached": bool})
    return features, frame


def _featurise(backbone: Backbone, frames: np.ndarray, target: Path) -> np.ndarray:
    """Frames through the backbone, stored in the cache; returns what a cache hit would read (float16)."""
    vectors = backbone.features(frames)
    _save(target, vectors)
    return vectors.astype(np.float16).astype(np.float32)


@dataclass(frozen=True)
class OneVideo:
    """One video's recognition: where its cached ``(T, 1280)`` features are, its tags as JSON (``tags_json``)."""

    frame_features_path: str
    recognised: str
    cached: bool


def cached_features(sha256: str, cache_dir: Path, config: RecognitionConfig = RecognitionConfig()) -> Path | None:
    """The cached features of these bytes, or None when they must be computed (loads the backbone: its
    weights are part of the cache key)."""
    path = cache_path(cache_dir, shared_backbone().key, config.n_frames, sha256)
    return path if path.is_file() else None


def recognise_one(
    sha256: str, frames: np.ndarray | None, cache_dir: Path, config: RecognitionConfig = RecognitionConfig()
) -> OneVideo:
    """One video's recognition from frames decoded elsewhere (``frame_sampling.sample_rgb`` in the service's
    isolated upload worker), stored under the same content-addressed key the pipeline reads, so the nightly
    run finds them cached; ``frames`` None reads features already cached (``cached_features``)."""
    backbone = shared_backbone()
    path = cache_path(cache_dir, backbone.key, config.n_frames, sha256)
    if frames is None:
        vectors, cached = np.load(path).astype(np.float32), True
    else:
        if len(frames) != config.n_frames:
            raise ValueError(f"recognition needs {config.n_frames} frames (the cache key says so), got {len(frames)}")
        vectors, cached = _featurise(backbone, frames, path), False
    tags = video_tags([sha256], [vectors], backbone, config.top_k)
    return OneVideo(str(path), tags_json(tags), cached)


def video_tags(video_ids: list[str], features: list[np.ndarray], backbone: Backbone, top_k: int = 5) -> pd.DataFrame:
    """The top ImageNet labels per video: class probabilities averaged over its frames, so a label
    seen in every frame outranks one flashed in a single frame. ``confidence`` is that mean probability."""
    labels = imagenet_labels()
    rows = []
    for video_id, vectors in zip(video_ids, features):
        mean = backbone.probabilities(vectors).mean(axis=0)
        for rank, index in enumerate(np.argsort(-mean)[:top_k], start=1):
            rows.append({"video_id": video_id, "rank": rank, "tag": short_label(int(index)), "label": labels[index],
                         "label_index": int(index), "confidence": float(mean[index])})  # fmt: skip
    return pd.DataFrame(rows, columns=TAG_COLUMNS)


def tags_json(tags: pd.DataFrame) -> str:
    """One video's tags as compact JSON for a table cell: ``[{"tag", "confidence", "label_index"}, ...]``."""
    return json.dumps(
        [
            {"tag": t, "confidence": round(float(c), 4), "label_index": int(i)}
            for t, c, i in zip(tags["tag"], tags["confidence"], tags["label_index"])
        ]
    )


def recognise(
    videos: pd.DataFrame, cache_dir: Path, config: RecognitionConfig = RecognitionConfig()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recognition for accepted videos (video_id, path, sha256).

    Returns ``(per_video, tags)``: one row per input video with ``frame_features_path`` (the cached
    ``(T, 1280)`` array, which training reads), ``recognised`` (its tags as JSON) and, where its frames
    would not decode, ``recognition_reason``; and the long tag table (``TAG_COLUMNS``)."""
    features, status = frame_features(videos, cache_dir, config)
    ok = status[status["status"] == "accepted"]
    backbone = shared_backbone() if len(ok) else None
    tags = (
        video_tags(ok["video_id"].tolist(), [features[s] for s in ok["sha256"]], backbone, config.top_k)
        if backbone is not None
        else pd.DataFrame(columns=TAG_COLUMNS)
    )
    by_video = {v: tags_json(g) for v, g in tags.groupby("video_id", sort=False)}
    key = backbone.key if backbone is not None else None
    per_video = pd.DataFrame(
        {
            "video_id": status["video_id"],
            "frame_features_path": [
                str(cache_path(cache_dir, key, config.n_frames, s)) if ok_ and key else None
                for s, ok_ in zip(status["sha256"], status["status"] == "accepted")
            ],
            "recognised": [by_video.get(v) for v in status["video_id"]],
            "recognition_cached": status["cached"],
            "recognition_reason": status["reason"],
        }
    )
    return per_video, tags


def top_tags_md(tags: pd.DataFrame, rows: int = 15) -> str:
    """The most frequent first-ranked tags across videos, as a Markdown table for the UI."""
    if tags.empty:
        return "no video recognised"
    first = tags[tags["rank"] == 1]
    summary = (
        first.groupby("tag")
        .agg(videos=("video_id", "size"), mean_confidence=("confidence", "mean"), example=("video_id", "first"))
        .sort_values("videos", ascending=False)
        .head(rows)
        .reset_index()
    )
    summary["mean_confidence"] = summary["mean_confidence"].round(3)
    return summary.to_markdown(index=False)


def tags_table(features: pd.DataFrame) -> pd.DataFrame:
    """The long tag table (``tag_id`` + ``TAG_COLUMNS``) from ``video_features``' ``recognised`` JSON cells."""
    rows = []
    if "recognised" in features:
        for video_id, cell in zip(features["video_id"], features["recognised"]):
            if isinstance(cell, str) and cell:
                labels = imagenet_labels()
                for rank, tag in enumerate(json.loads(cell), start=1):
                    rows.append({"tag_id": f"{video_id}#{rank}", "video_id": video_id, "rank": rank, "tag": tag["tag"],
                                 "label": labels[tag["label_index"]], "label_index": tag["label_index"],
                                 "confidence": tag["confidence"]})  # fmt: skip
    return pd.DataFrame(rows, columns=["tag_id", *TAG_COLUMNS])
