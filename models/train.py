"""Training entry points the pipeline calls: encoder, item embeddings, ranker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from models.config import EncoderConfig, RankerConfig
from models.data import EncoderDataModule, ImpressionDataModule, ItemTensors
from models.encoders import MultimodalItemEncoder
from models.ranker import Ranker
from models.systems import MultimodalEncoderSystem, RankerSystem
from models.training import FitResult, TrainConfig, fit
from vidrec.behaviour import histories_before


@dataclass(frozen=True)
class EncoderTraining:
    lr: float = 2e-3
    batch_size: int = 64
    neighbours_per_item: int = 2
    temperature: float = 0.1
    behaviour_weight: float = 1.0


@dataclass(frozen=True)
class RankerTraining:
    lr: float = 3e-3
    batch_size: int = 512
    id_dropout: float = 0.1


def train_encoder(items: ItemTensors, neighbours: np.ndarray, config: EncoderConfig,
                  params: EncoderTraining, train: TrainConfig) -> tuple[MultimodalItemEncoder, FitResult]:
    encoder = config.build()
    system = MultimodalEncoderSystem(encoder, lr=params.lr, temperature=params.temperature,
                                     behaviour_weight=params.behaviour_weight)
    data = EncoderDataModule(items, neighbours, batch_size=params.batch_size, seed=train.seed)
    result = fit(system, data, train)
    return system.encoder.eval(), result


@torch.inference_mode()
def embed_items(encoder: MultimodalItemEncoder, items: ItemTensors, batch_size: int = 256) -> np.ndarray:
    """(N, dim) L2-normalised content embeddings, row-aligned with ``items.video_ids``."""
    encoder.eval()
    parts = [encoder(items.batch(torch.arange(s, min(s + batch_size, len(items)))))
             for s in range(0, len(items), batch_size)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, encoder.fusion.out[-1].out_features))


def impression_arrays(impressions: pd.DataFrame, clicks: pd.DataFrame, item_index: dict[str, int],
                      id_buckets: np.ndarray, item_features: np.ndarray, history_length: int) -> dict[str, np.ndarray]:
    """Model inputs and labels for impressions whose videos are all in ``item_index``."""
    candidate = impressions["video_id"].map(item_index)
    if candidate.isna().any():
        unknown = impressions.loc[candidate.isna(), "video_id"].unique()[:5].tolist()
        raise ValueError(f"impressions reference videos outside the item table, e.g. {unknown}; "
                         "filter interactions to accepted videos first")
    candidate = candidate.to_numpy(np.int64)
    history = histories_before(impressions, clicks, item_index, history_length)
    safe = np.clip(history, 0, None)
    return {
        "candidate": candidate,
        "candidate_id": id_buckets[candidate],
        "item_features": item_features[candidate],
        "history": history,
        "history_ids": np.where(history >= 0, id_buckets[safe], 0),
        "position": impressions["position"].to_numpy(np.int64),
        "clicked": impressions["clicked"].to_numpy(bool),
        "watch_s": impressions["watch_s"].to_numpy(np.float32),
        "converted": impressions["converted"].to_numpy(bool),
    }


def train_ranker(train_arrays: dict[str, np.ndarray], val_arrays: dict[str, np.ndarray],
                 item_embeddings: np.ndarray, config: RankerConfig, params: RankerTraining,
                 train: TrainConfig) -> tuple[Ranker, FitResult]:
    ranker = config.build()
    system = RankerSystem(ranker, torch.as_tensor(item_embeddings), lr=params.lr, id_dropout=params.id_dropout)
    data = ImpressionDataModule(train_arrays, val_arrays, batch_size=params.batch_size, seed=train.seed)
    result = fit(system, data, train)
    return system.ranker.eval(), result
