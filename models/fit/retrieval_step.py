"""The retrieval training step: two towers on the train window's clicks, validated on the validation day's,
with recall@10 over the whole catalogue recorded beside the losses."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from models.fit.loop import TrainConfig
from models.fit.steps import StepSettings, fit_info, ranker_inputs
from models.fit.trainers import (
    RetrievalTraining,
    click_arrays,
    train_retrieval,
)
from models.nn.config import RankerConfig, RetrievalConfig
from models.nn.retrieval import RetrievalScorer, sampling_log_q
from models.serving.weights import TrainedModel, save_weights
from vidrec.engagement import (
    id_bucket,
)
from vidrec.splits import temporal_split


def fit_retrieval(
    items: pd.DataFrame,
    embeddings: pd.DataFrame,
    events: pd.DataFrame,
    out_dir: Path,
    settings: StepSettings,
    params: RetrievalTraining | None = None,
    config: RetrievalConfig | None = None,
) -> TrainedModel:
    """Two-tower retrieval on the train window's clicks, validated on the validation day's, with
    recall@10 over the whole catalogue on validation clicks recorded beside the losses."""
    ranker_config = RankerConfig()
    # The bundle holds one id-bucket column, hashed with the ranker's bucket count; a larger retrieval
    # table would only hold rows no item maps to.
    config = config or replace(RetrievalConfig(), id_buckets=ranker_config.id_buckets)
    params = params or RetrievalTraining()
    inputs = ranker_inputs(items, embeddings, events, ranker_config)
    split = temporal_split(events)
    clicks = events[events["clicked"]]
    train_clicks = split.part(clicks, "train")
    log_q = sampling_log_q(
        train_clicks["video_id"].map(inputs.item_index).to_numpy(np.int64), len(inputs.item_index), params.batch_size
    )
    users = retrieval_user_buckets(split.part(events, "fit"), config) if config.user_buckets else None
    arrays = {
        part: click_arrays(
            split.part(clicks, part), clicks, inputs.item_index, inputs.buckets, config.history_length, log_q, users
        )
        for part in ("train", "val")
    }
    model, result = train_retrieval(
        arrays["train"],
        arrays["val"],
        inputs.embeddings,
        config,
        params,
        TrainConfig(
            checkpoint_dir=out_dir, max_epochs=settings.retrieval_epochs, patience=settings.patience, seed=settings.seed
        ),
    )
    weights = save_weights(model, out_dir / "retrieval.pt")
    scorer = RetrievalScorer(model, inputs.embeddings, inputs.buckets)
    recall = recall_at_k(
        scorer, arrays["val"]["history"], arrays["val"]["item"], k=10, user_ids=arrays["val"].get("user_id")
    )
    return TrainedModel(
        "retrieval",
        str(weights),
        asdict(config),
        result.history,
        fit_info(result),
        {
            "train_clicks": len(arrays["train"]["item"]),
            "val_clicks": len(arrays["val"]["item"]),
            "val_recall_at_10": round(recall, 4),
            "items": len(inputs.item_index),
            "training": asdict(params),
        },
    )


def retrieval_user_buckets(fit_events: pd.DataFrame, config: RetrievalConfig) -> dict[str, int]:
    """user_key → the retrieval model's hashed user id, for users seen in the fit window (others: 0)."""
    return {u: id_bucket(u, config.user_buckets) for u in fit_events["user_key"].unique()}


def recall_at_k(
    scorer: RetrievalScorer, histories: np.ndarray, items: np.ndarray, k: int = 10, user_ids: np.ndarray | None = None
) -> float:
    """Share of clicks whose item is among the top ``k`` of the whole catalogue for that history."""
    if len(items) == 0:
        return float("nan")
    scores = scorer.user_vectors(histories, user_ids) @ scorer.item_vectors().T
    top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    return float((top == items[:, None]).any(axis=1).mean())
