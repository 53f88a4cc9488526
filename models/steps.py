"""Pipeline steps that combine vidrec tables with model training and scoring (no Dagster)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.config import EncoderConfig, RankerConfig
from models.data import ItemTensors
from models.ranker import BlendWeights
from models.scoring import RankerScorer
from models.serialization import TrainedModel, load_encoder, load_ranker, save_weights
from models.train import (EncoderTraining, RankerTraining, embed_items, impression_arrays,
                          train_encoder, train_ranker)
from models.training import FitResult, TrainConfig
from vidrec.behaviour import co_engaged_neighbours, histories_before
from vidrec.items import id_buckets, item_feature_matrix
from vidrec.splits import temporal_split


@dataclass(frozen=True)
class StepSettings:
    encoder_epochs: int = 8
    ranker_epochs: int = 10
    patience: int = 3
    seed: int = 0


def _fit_info(result: FitResult) -> dict:
    return {k: v for k, v in asdict(result).items() if k != "history"}


def item_tensors(items: pd.DataFrame) -> ItemTensors:
    return ItemTensors.from_catalog(items, np.stack(items["embedding"].to_numpy()))


def fit_encoder(items: pd.DataFrame, events: pd.DataFrame, out_dir: Path, settings: StepSettings) -> TrainedModel:
    split = temporal_split(events)
    fit_events = split.part(events, "fit")
    clicks = fit_events[fit_events["clicked"]]
    neighbours = co_engaged_neighbours(clicks, items["video_id"].tolist(), per_item=EncoderTraining().neighbours_per_item, seed=settings.seed)
    config = EncoderConfig()
    encoder, result = train_encoder(
        item_tensors(items), neighbours, config, EncoderTraining(),
        TrainConfig(checkpoint_dir=out_dir, max_epochs=settings.encoder_epochs,
                    patience=settings.patience, seed=settings.seed))
    weights = save_weights(encoder, out_dir / "encoder.pt")
    return TrainedModel("encoder", str(weights), asdict(config), result.history, _fit_info(result),
                        {"items": len(items), "items_with_neighbours": int((neighbours[:, 0] >= 0).sum())})


def item_embedding_matrix(encoder: TrainedModel, items: pd.DataFrame) -> np.ndarray:
    return embed_items(load_encoder(Path(encoder.weights_path), encoder.config), item_tensors(items))


@dataclass
class RankerInputs:
    """Per-item arrays aligned with the item table, plus the temporal split."""

    item_index: dict[str, int]
    embeddings: np.ndarray
    buckets: np.ndarray
    features: np.ndarray
    known: set[str]


def ranker_inputs(items: pd.DataFrame, embeddings: pd.DataFrame, events: pd.DataFrame,
                  config: RankerConfig) -> RankerInputs:
    aligned = items[["video_id"]].merge(embeddings[["video_id", "embedding"]], on="video_id", how="left")
    if aligned["embedding"].isna().any():
        raise ValueError("item_embeddings lacks rows for some items; re-materialise item_embeddings")
    split = temporal_split(events)
    known = set(split.part(events, "fit")["video_id"])
    ids = items["video_id"].tolist()
    return RankerInputs(
        item_index={v: i for i, v in enumerate(ids)},
        embeddings=np.stack(aligned["embedding"].to_numpy()).astype(np.float32),
        buckets=id_buckets(ids, known, config.id_buckets),
        features=item_feature_matrix(items),
        known=known,
    )


def fit_ranker(items: pd.DataFrame, embeddings: pd.DataFrame, events: pd.DataFrame, out_dir: Path,
               settings: StepSettings) -> TrainedModel:
    config = RankerConfig()
    inputs = ranker_inputs(items, embeddings, events, config)
    split = temporal_split(events)
    clicks = events[events["clicked"]]
    arrays = {part: impression_arrays(split.part(events, part), clicks, inputs.item_index, inputs.buckets,
                                      inputs.features, config.history_length) for part in ("train", "val")}
    ranker, result = train_ranker(arrays["train"], arrays["val"], inputs.embeddings, config, RankerTraining(),
                                  TrainConfig(checkpoint_dir=out_dir, max_epochs=settings.ranker_epochs,
                                              patience=settings.patience, seed=settings.seed))
    weights = save_weights(ranker, out_dir / "ranker.pt")
    train_clicks = split.part(events, "train")
    watch_scale = float(train_clicks.loc[train_clicks["clicked"], "watch_s"].mean() or 1.0)
    blend = BlendWeights(watch_scale_s=round(watch_scale, 3))
    return TrainedModel("ranker", str(weights), asdict(config), result.history, _fit_info(result),
                        {"blend": asdict(blend), "train_impressions": len(arrays["train"]["candidate"]),
                         "val_impressions": len(arrays["val"]["candidate"])})


def scorer_for(ranker: TrainedModel, inputs: RankerInputs) -> RankerScorer:
    return RankerScorer(load_ranker(Path(ranker.weights_path), ranker.config), inputs.embeddings,
                        inputs.buckets, inputs.features, BlendWeights(**ranker.extra["blend"]))


def holdout_scores(ranker: TrainedModel, items: pd.DataFrame, embeddings: pd.DataFrame,
                   events: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Scores of the candidate and two reference orderings on the hold-out window:
    ``random`` (seeded) and ``logging_policy`` (the logged slate order)."""
    config = RankerConfig(**ranker.config)
    inputs = ranker_inputs(items, embeddings, events, config)
    holdout = temporal_split(events).part(events, "holdout").reset_index(drop=True)
    clicks = events[events["clicked"]]
    history = histories_before(holdout, clicks, inputs.item_index, config.history_length)
    candidates = holdout["video_id"].map(inputs.item_index).to_numpy(np.int64)
    scores = scorer_for(ranker, inputs).score(history, candidates)
    base = holdout[["event_id", "session_id", "user_key", "video_id", "position", "clicked", "watch_s", "converted"]]
    rng = np.random.default_rng(seed)
    random_scores = rng.random(len(holdout))
    logged = -holdout["position"].to_numpy(float)
    frames = [
        base.assign(model="candidate", p_click=scores.p_click, score=scores.score),
        base.assign(model="random", p_click=random_scores, score=random_scores),
        base.assign(model="logging_policy", p_click=holdout["propensity"].to_numpy(float), score=logged),
    ]
    return pd.concat(frames, ignore_index=True)
