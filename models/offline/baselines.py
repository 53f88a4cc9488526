"""The table that compares reference recommenders (most-popular, BPR, LightGCN) with the project's models
(sequential retrieval, text path, multimodal item encoder) on imported data under one protocol.

``python -m models.offline.baselines`` is the command line (``models.offline.cli``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from models.fit.data import ItemTensors
from models.fit.id_models import FitSettings, ValidationSet, check_indices
from models.fit.loop import TrainConfig
from models.fit.trainers import EncoderTraining, embed_items, train_encoder
from models.nn.bpr import BPRModel, fit_bpr
from models.nn.config import EncoderConfig
from models.nn.lightgcn import fit_lightgcn
from models.offline.imported_retrieval import retrieval_scorer
from vidrec.config import Paths
from vidrec.engagement import co_engaged_neighbours
from vidrec.imports.content import ProfileScorer, item_text_embeddings
from vidrec.imports.covers import item_shards, no_media_shard
from vidrec.imports.tables import ImportResult
from vidrec.media.features import FeatureConfig, extract_features
from vidrec.media.probe import file_sha256
from vidrec.protocols import Protocol, Split, evaluate, split_interactions

log = logging.getLogger(__name__)

__all__ = ["BASELINES", "BPRModel", "baseline_table", "fit_bpr", "most_popular_scores"]


def most_popular_scores(train_user_idx: np.ndarray, train_item_idx: np.ndarray, n_items: int) -> np.ndarray:
    """Score per item = number of distinct training users who interacted with it, shape ``[n_items]``.

    Distinct users, not raw counts, so one heavy user replaying an item cannot make it "popular".
    """
    items = check_indices("train_item_idx", train_item_idx, n_items)
    users = np.asarray(train_user_idx).astype(np.int64, copy=False)
    if users.shape != items.shape:
        raise ValueError(f"train_user_idx {users.shape} and train_item_idx {items.shape} must be row-aligned")
    if items.size == 0:
        return np.zeros(n_items, dtype=np.float32)
    pairs = np.unique(np.stack([users, items], axis=1), axis=0)
    return np.bincount(pairs[:, 1], minlength=n_items).astype(np.float32)


# --- the baseline table on imported data -------------------------------------------------------------

BASELINES = ("most_popular", "bpr", "lightgcn", "retrieval", "text_content", "multimodal_encoder")
NEEDS_STATE = ("retrieval", "text_content", "multimodal_encoder")


def _catalogue(items: pd.DataFrame, features_dir: Path) -> pd.DataFrame:
    """video_id, shard_path, has_visual, has_audio, has_text for ``items``: videos extracted like the
    pipeline does, covers as one-frame videos, media-less items (or failed videos) with blank shards."""
    shards = item_shards(items, features_dir)
    videos = items[items["media_kind"] == "video"]
    if len(videos):
        accepted = pd.DataFrame(
            {
                "video_id": videos["video_id"],
                "path": videos["media_path"],
                "sha256": [file_sha256(str(p)) for p in videos["media_path"]],
            }
        )
        extracted = extract_features(accepted, features_dir, FeatureConfig(), workers=1, progress=False)
        extracted["has_visual"] = extracted["status"] == "accepted"
        failed = ~extracted["has_visual"]
        if failed.any():  # keep the item, with its visual and audio marked missing
            _, blank_path = no_media_shard(features_dir)
            extracted.loc[failed, "shard_path"] = str(blank_path)
            log.warning("%d videos failed feature extraction; scored from text only", int(failed.sum()))
        shards = pd.concat([shards, extracted], ignore_index=True)
    catalogue = items[["video_id", "text"]].merge(
        shards[["video_id", "shard_path", "has_visual", "has_audio"]], on="video_id", how="left", validate="one_to_one"
    )
    catalogue["has_audio"] = catalogue["has_audio"].fillna(False).astype(bool)
    catalogue["has_visual"] = catalogue["has_visual"].astype(bool)
    catalogue["has_text"] = catalogue["text"].fillna("") != ""
    return catalogue


def _encoder_scorer(result: ImportResult, split: Split, state: Paths, seed: int, epochs: int) -> ProfileScorer:
    """Train the project's multimodal item encoder on the imported catalogue (co-engagement from the fit
    part only) and score users by their profile over its content vectors."""
    items = result.items.set_index("video_id").loc[split.item_ids].reset_index()
    catalogue = _catalogue(items, state.features)
    texts = item_text_embeddings(catalogue["text"].fillna("").tolist(), state.features / "text")
    tensors = ItemTensors.from_catalogue(catalogue, texts)
    fit = split.fit
    clicks = pd.DataFrame({"user_key": fit["user_idx"].to_numpy(), "video_id": split.item_ids[fit["item_idx"]]})
    params = EncoderTraining()
    neighbours = co_engaged_neighbours(clicks, list(split.item_ids), params.neighbours_per_item, seed)
    run_dir = Path(tempfile.mkdtemp(prefix="import-encoder-", dir=state.checkpoints))
    encoder, _ = train_encoder(
        tensors,
        neighbours,
        EncoderConfig(),
        params,
        TrainConfig(checkpoint_dir=run_dir, max_epochs=epochs, seed=seed, resume=False),
    )
    return ProfileScorer(embed_items(encoder, tensors), split.matrix(fit))


def _id_model(name: str, split: Split, settings: FitSettings, seed: int) -> tuple[object, dict[str, object]]:
    """Fit BPR or LightGCN: on train with early stopping on validation NDCG@10 when the split has a
    validation part and ``settings.patience`` > 0 (RecBole's protocol), else on train + validation."""
    n_users, n_items = len(split.user_ids), len(split.item_ids)
    stop_early = settings.patience > 0 and len(split.val) > 0
    part = split.train if stop_early else split.fit
    users, items = part["user_idx"].to_numpy(), part["item_idx"].to_numpy()
    valid = (
        ValidationSet.from_pairs(
            (users, items), (split.val["user_idx"].to_numpy(), split.val["item_idx"].to_numpy()), n_users, n_items
        )
        if stop_early
        else None
    )
    fit = fit_bpr if name == "bpr" else fit_lightgcn
    model = fit(users, items, n_users, n_items, settings, seed=seed, valid=valid)
    info = {k: v for k, v in model.fit_info.items() if k != "history"}
    return model, {
        "fitted_on": "train, early stopping on validation ndcg@10" if stop_early else "train + validation",
        **info,
    }


def baseline_table(
    result: ImportResult,
    protocol: Protocol,
    models: tuple[str, ...] = BASELINES,
    state: Paths | None = None,
    settings: FitSettings | None = None,
    encoder_epochs: int = 5,
    retrieval_epochs: int = 10,
    seed: int = 0,
) -> tuple[pd.DataFrame, Split]:
    """Split ``result``'s positives by ``protocol``, fit each model and score the test part with the same
    metric code (items the user had in train + validation masked): one row per model, the protocol
    recorded in each row. ``settings`` are the id-only models' (BPR, LightGCN: ``models.fit.id_models``;
    default ``FitSettings()``, RecBole's).

    ``retrieval`` (the project's two-tower model over item text, ``models.offline.imported_retrieval``),
    ``text_content`` (the project's frozen text features) and ``multimodal_encoder`` (the project's
    item encoder, trained here on the imported catalogue) need ``state`` (where feature shards, the text
    cache and checkpoints go); a model that cannot run says why in the split's notes.
    """
    settings = settings or FitSettings()
    unknown = set(models) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; choose from {list(BASELINES)}")
    split = split_interactions(
        result.positives(),
        protocol,
        item_ids=result.items["video_id"].tolist(),
        clock_time=result.signals.get("clock_time", True),
    )
    fit = split.fit
    users, items = fit["user_idx"].to_numpy(), fit["item_idx"].to_numpy()
    n_items = len(split.item_ids)
    texts = result.items.set_index("video_id").loc[split.item_ids, "text"].fillna("").tolist()
    rows = []
    for name in models:
        started = time.perf_counter()
        extra: dict[str, object] = {}
        if name in NEEDS_STATE and state is None:
            split.notes.append(f"{name} skipped: no state directory given for features and checkpoints")
            continue
        if name in ("text_content", "retrieval") and not any(texts):
            split.notes.append(f"{name} skipped: no item has text")
            continue
        if name == "most_popular":
            popularity = most_popular_scores(users, items, n_items)
            score = lambda batch, p=popularity: np.broadcast_to(p, (len(batch), n_items))  # noqa: E731
        elif name in ("bpr", "lightgcn"):
            model, extra = _id_model(name, split, settings, seed)
            score = model.score
        elif name == "retrieval":
            content = item_text_embeddings(texts, state.features / "text")
            score = retrieval_scorer(split, content, state.checkpoints, seed, retrieval_epochs)
        elif name == "text_content":
            score = ProfileScorer(item_text_embeddings(texts, state.features / "text"), split.matrix(fit))
        else:
            score = _encoder_scorer(result, split, state, seed, encoder_epochs)
        fitted = time.perf_counter() - started
        row = evaluate(split, score, name)
        row.update(fit_s=round(fitted, 2), eval_s=round(time.perf_counter() - started - fitted, 2), **extra)
        log.info("%s: %s", name, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})
        rows.append(row)
    return pd.DataFrame(rows), split


if __name__ == "__main__":  # python -m models.offline.baselines
    from models.offline.cli import run

    run()
