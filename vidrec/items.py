"""The item table the models see: one row per accepted video (or imported media-less item), with numeric
side features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.engagement import id_bucket
from vidrec.ingest import media_less_ids

ITEM_FEATURES = ("is_product", "log_price", "log_duration")
# Categorical commerce columns the ranker embeds (hashed, 0 = none: a video that sells no product has no brand).
ITEM_CODES = ("brand", "category")


def item_feature_matrix(items: pd.DataFrame) -> np.ndarray:
    """(N, 3) float32: is_product, log1p(price), log1p(duration_s), from an items frame."""
    return np.stack(
        [
            items["is_product"].astype(float).to_numpy(),
            np.log1p(items["price"].fillna(0.0).astype(float).to_numpy()),
            np.log1p(items["duration_s"].astype(float).to_numpy()),
        ],
        axis=1,
    ).astype(np.float32)


def with_products(items: pd.DataFrame, products: pd.DataFrame | None) -> pd.DataFrame:
    """``items`` with each product video's ``sku`` and ``brand`` from a ``products`` table (sku, brand,
    ``|``-separated video_ids; vidrec.imports.commerce); None where a video sells no product, or no table."""
    sku: dict[str, str] = {}
    brand: dict[str, str] = {}
    if products is not None:
        for row in products.itertuples(index=False):
            for video in str(row.video_ids or "").split("|"):
                if video:
                    sku[video] = str(row.sku)
                    brand[video] = None if pd.isna(row.brand) else str(row.brand)
    ids = items["video_id"].astype(str)
    return items.assign(sku=[sku.get(v) for v in ids], brand=[brand.get(v) for v in ids])


def item_code_matrix(items: pd.DataFrame, buckets: int) -> np.ndarray:
    """(N, 2) int64 hashed brand and category ids (``ITEM_CODES``); 0 where the value is missing or the
    table has no such column (the neutral value: the ranker's padding vector is zero)."""
    out = np.zeros((len(items), len(ITEM_CODES)), dtype=np.int64)
    for j, column in enumerate(ITEM_CODES):
        if column in items:
            out[:, j] = [
                0
                if v is None or (isinstance(v, float) and np.isnan(v)) or v == ""
                else id_bucket(f"{column}:{v}", buckets)
                for v in items[column].tolist()
            ]
    return out


def id_buckets(video_ids: list[str], known: set[str], buckets: int) -> np.ndarray:
    """Hashed id per item; 0 for items the model never saw in training (cold items)."""
    return np.array([id_bucket(v, buckets) if v in known else 0 for v in video_ids], dtype=np.int64)


def accepted_item_ids(videos: pd.DataFrame, metadata: pd.DataFrame) -> set[str]:
    """Ids that can become items: an accepted video file with an accepted metadata row, or an accepted
    metadata row that declares no video file (an imported cover or text-only item, ``media_kind``)."""
    ok_meta = set(metadata.loc[metadata["status"] == "accepted", "video_id"].astype(str))
    ok_videos = set(videos.loc[videos["status"] == "accepted", "video_id"].astype(str))
    return (ok_videos | media_less_ids(metadata)) & ok_meta


def _media_less_rows(metadata: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame | None:
    """``videos``-shaped accepted rows for items without a video file: no duration, no audio track; the
    content hash is the shard's (cover image or the shared no-media shard). None for a video catalogue."""
    ids = media_less_ids(metadata)
    if not ids:
        return None
    rows = features.loc[
        features["video_id"].astype(str).isin(ids) & (features["status"] == "accepted"), ["video_id", "sha256"]
    ]
    return rows.assign(duration_s=0.0, has_audio=False)


def build_items(
    videos: pd.DataFrame, metadata: pd.DataFrame, features: pd.DataFrame, text: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join the accepted rows of each table into the item table the models use.

    Imported items without a video file (sidecar ``media_kind`` image or none) join through their
    feature rows instead of a probed file; ``has_visual`` comes from those rows (False for text-only
    items), so the models see the missing modalities masked.

    Returns ``(items, excluded)``: ``excluded`` names every accepted video that is not an item
    and why (no metadata row, metadata quarantined, features failed), so nothing vanishes.
    """
    accepted = videos[videos["status"] == "accepted"][["video_id", "sha256", "duration_s", "has_audio"]]
    media_less = _media_less_rows(metadata, features)
    if media_less is not None and len(media_less):
        accepted = pd.concat([accepted, media_less], ignore_index=True)
    meta = metadata[metadata["status"] == "accepted"].drop(columns=["status", "reason"])
    # Recognition (vidrec.media.recognition) travels with the item when extraction ran it: the tags
    # for search and payloads, the cached backbone features for the encoder.
    optional = [c for c in ("has_visual", "recognised", "frame_features_path") if c in features]
    columns = ["video_id", "shard_path", *optional]
    feats = features[features["status"] == "accepted"]
    # The shard says whether its log-mel holds sound: a track the probe saw may prove unreadable at
    # extraction (its mel is then zeros), and the model must see that audio as missing.
    if "has_audio" in feats:
        masked = set(feats.loc[feats["has_audio"].eq(False), "video_id"])
        accepted = accepted.assign(
            has_audio=accepted["has_audio"].astype("boolean") & ~accepted["video_id"].isin(masked)
        )
    feats = feats[columns]
    items = (
        accepted.merge(meta, on="video_id", how="inner")
        .merge(feats, on="video_id", how="inner")
        .merge(text[["video_id", "has_text", "embedding"]], on="video_id", how="inner")
    )
    items["has_visual"] = items["has_visual"].fillna(True).astype(bool) if "has_visual" in items else True
    items["has_audio"] = items["has_audio"].astype(bool)
    items = items.sort_values("video_id").reset_index(drop=True)
    excluded = accepted[~accepted["video_id"].isin(items["video_id"])][["video_id"]].copy()
    meta_ids = set(metadata["video_id"])
    meta_ok = set(meta["video_id"])
    feat_ok = set(feats["video_id"])
    excluded["reason"] = [
        "no metadata row for this file"
        if v not in meta_ids
        else "metadata row quarantined"
        if v not in meta_ok
        else "feature extraction failed"
        if v not in feat_ok
        else "no text features"
        for v in excluded["video_id"]
    ]
    return items, excluded


def tables_from_directory(
    directory: Path, features_dir: Path, key: str, workers: int = 2, recognition: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(items, events)`` straight from a raw-data directory, without the orchestrator: probe,
    extract features (content-hash cached under ``features_dir``), recognise what the frames show
    (``recognition``: tags and cached backbone features), embed text, pseudonymise.

    For benchmarks and notebooks. It keeps the probe's accept/quarantine decision but does not
    run the Great Expectations suites (``vidrec`` stays free of them); the pipeline does.
    ``events`` keeps only events on items, and the raw ``user_id`` beside ``user_key`` so a
    simulated world's oracle can be joined.
    """
    from vidrec.ingest import prepare_events, with_text
    from vidrec.media.features import FeatureConfig, extract_features
    from vidrec.media.probe import probe_videos
    from vidrec.sources import list_videos, read_events, read_metadata
    from vidrec.text_embedding import TextEmbedder

    files = list_videos(directory)
    videos = probe_videos(list(zip(files["video_id"], files["path"])), workers=workers, progress=False)
    good = videos[videos["status"] == "accepted"]
    features = extract_features(good, features_dir, FeatureConfig(), workers=workers, progress=False)
    if recognition:
        from vidrec.config import resolve_backbone_cache
        from vidrec.media.recognition import recognise

        extracted = good[good["video_id"].isin(features.loc[features["status"] == "accepted", "video_id"])]
        recognised, _ = recognise(extracted, resolve_backbone_cache(features_dir))
        features = features.merge(recognised, on="video_id", how="left")
    metadata = with_text(read_metadata(directory))
    metadata["status"], metadata["reason"] = "accepted", None
    texts = metadata["text"].fillna("").tolist()
    text = pd.DataFrame(
        {
            "video_id": metadata["video_id"],
            "has_text": [bool(t) for t in texts],
            "embedding": list(TextEmbedder(features_dir / "text").embed(texts)),
        }
    )
    from vidrec.commerce_tables import read_products

    items, _ = build_items(videos, metadata, features, text)
    items = with_products(items, read_products(Path(directory)))
    raw = read_events(directory)
    events = prepare_events(raw, key, set(items["video_id"]))
    events["user_id"] = raw.set_index("event_id").loc[events["event_id"], "user_id"].to_numpy()
    events = events[events["status"] == "accepted"].drop(columns=["status", "reason"]).reset_index(drop=True)
    return items, events
