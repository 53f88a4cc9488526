"""The item table the models see: one row per accepted video, with numeric side features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vidrec.behaviour import id_bucket

ITEM_FEATURES = ("is_product", "log_price", "log_duration")


def item_feature_matrix(items: pd.DataFrame) -> np.ndarray:
    """(N, 3) float32: is_product, log1p(price), log1p(duration_s), from an items frame."""
    return np.stack([
        items["is_product"].astype(float).to_numpy(),
        np.log1p(items["price"].fillna(0.0).astype(float).to_numpy()),
        np.log1p(items["duration_s"].astype(float).to_numpy()),
    ], axis=1).astype(np.float32)


def id_buckets(video_ids: list[str], known: set[str], buckets: int) -> np.ndarray:
    """Hashed id per item; 0 for items the model never saw in training (cold items)."""
    return np.array([id_bucket(v, buckets) if v in known else 0 for v in video_ids], dtype=np.int64)


def build_items(videos: pd.DataFrame, metadata: pd.DataFrame, features: pd.DataFrame,
                text: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join the accepted rows of each table into the item table the models use.

    Returns ``(items, excluded)``: ``excluded`` names every accepted video that is not an item
    and why (no metadata row, metadata quarantined, features failed), so nothing vanishes.
    """
    accepted = videos[videos["status"] == "accepted"][["video_id", "sha256", "duration_s", "has_audio"]]
    meta = metadata[metadata["status"] == "accepted"].drop(columns=["status", "reason"])
    feats = features[features["status"] == "accepted"][["video_id", "shard_path"]]
    items = (accepted.merge(meta, on="video_id", how="inner")
             .merge(feats, on="video_id", how="inner")
             .merge(text[["video_id", "has_text", "embedding"]], on="video_id", how="inner"))
    items["has_visual"] = True
    items["has_audio"] = items["has_audio"].astype(bool)
    items = items.sort_values("video_id").reset_index(drop=True)
    excluded = accepted[~accepted["video_id"].isin(items["video_id"])][["video_id"]].copy()
    meta_ids = set(metadata["video_id"])
    meta_ok = set(meta["video_id"])
    feat_ok = set(feats["video_id"])
    excluded["reason"] = [
        "no metadata row for this file" if v not in meta_ids
        else "metadata row quarantined" if v not in meta_ok
        else "feature extraction failed" if v not in feat_ok
        else "no text features" for v in excluded["video_id"]
    ]
    return items, excluded
