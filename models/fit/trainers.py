"""Training entry points the pipeline calls: encoder, item embeddings, ranker."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from models.fit.data import ClickDataModule, EncoderDataModule, ImpressionDataModule, ItemTensors
from models.fit.loop import FitResult, TrainConfig, fit, seed_everything
from models.fit.systems import MultimodalEncoderSystem, RankerSystem, RetrievalSystem
from models.nn.config import EncoderConfig, RankerConfig, RetrievalConfig
from models.nn.encoders import MultimodalItemEncoder
from models.nn.ranker import SERVING_POSITION, BlendWeights, Ranker
from models.nn.retrieval import TwoTower
from vidrec.engagement import histories_before


def _defaults(system: type) -> dict:
    """A Lightning system's hyperparameter defaults (its typed ``__init__``), so the training settings below
    repeat none of them: the systems are the one place they are written."""
    return {n: p.default for n, p in inspect.signature(system.__init__).parameters.items() if p.default is not p.empty}


_ENCODER, _RANKER, _RETRIEVAL = _defaults(MultimodalEncoderSystem), _defaults(RankerSystem), _defaults(RetrievalSystem)


@dataclass(frozen=True)
class EncoderTraining:
    lr: float = _ENCODER["lr"]
    batch_size: int = 64
    neighbours_per_item: int = 2
    temperature: float = _ENCODER["temperature"]
    behaviour_weight: float = _ENCODER["behaviour_weight"]
    engagement_dim: int = 16  # the system's default 0 builds it without the engagement head
    engagement_weight: float = _ENCODER["engagement_weight"]


@dataclass(frozen=True)
class RankerTraining:
    lr: float = _RANKER["lr"]
    batch_size: int = 512
    id_dropout: float = _RANKER["id_dropout"]
    weight_decay: float = _RANKER["weight_decay"]


def train_encoder(
    items: ItemTensors,
    neighbours: np.ndarray,
    config: EncoderConfig,
    params: EncoderTraining,
    train: TrainConfig,
    engagement: np.ndarray | None = None,
    has_engagement: np.ndarray | None = None,
) -> tuple[MultimodalItemEncoder, FitResult]:
    seed_everything(train)
    encoder = config.build()
    if encoder.descriptors is not None:
        encoder.descriptors.fit(list(items.batches()))
    encoder.text.fit_scale(items.text[items.mask[:, 2]])
    dim = engagement.shape[1] if engagement is not None else 0
    system = MultimodalEncoderSystem(
        encoder,
        lr=params.lr,
        temperature=params.temperature,
        behaviour_weight=params.behaviour_weight,
        engagement_dim=dim,
        engagement_weight=params.engagement_weight,
    )
    data = EncoderDataModule(
        items,
        neighbours,
        batch_size=params.batch_size,
        seed=train.seed,
        engagement=engagement,
        has_engagement=has_engagement,
    )
    result = fit(system, data, train)
    return system.encoder.eval(), result


@torch.inference_mode()
def embed_items(encoder: MultimodalItemEncoder, items: ItemTensors, batch_size: int = 256) -> np.ndarray:
    """(N, dim) content embeddings (``MultimodalItemEncoder.forward``), row-aligned with ``items.video_ids``."""
    encoder.eval()
    parts = [encoder(batch) for batch in items.batches(batch_size)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, encoder.output_dim))


def impression_arrays(
    impressions: pd.DataFrame,
    clicks: pd.DataFrame,
    item_index: dict[str, int],
    id_buckets: np.ndarray,
    item_features: np.ndarray,
    history_length: int,
    user_buckets: dict[str, int] | None = None,
    taste: np.ndarray | None = None,
    item_codes: np.ndarray | None = None,
    live_now: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Model inputs and labels for impressions whose videos are all in ``item_index``.

    ``item_codes`` (N items, 2): hashed brand and category per item row; ``live_now`` (impressions,):
    whether the candidate's host was live at the impression's time. Both are passed on when given.

    ``user_buckets`` maps the user_keys the ranker trains an id for to their hashed bucket;
    anyone else gets 0 (scored from history alone). ``taste`` (N, D), row-aligned, is passed
    through when given (``vidrec.engagement.taste_before_sessions``).

    Optional columns a source never recorded arrive as NULL and are not filled in as labels:
    ``has_watch_label`` / ``has_conversion_label`` are False on those rows (their watch_s and
    converted are placeholders the loss never reads), and a NULL position becomes
    ``SERVING_POSITION``, the bucket serving scores with, so the position tower adds the same
    constant to every such row instead of learning from a made-up slot."""
    candidate = impressions["video_id"].map(item_index)
    if candidate.isna().any():
        unknown = impressions.loc[candidate.isna(), "video_id"].unique()[:5].tolist()
        raise ValueError(
            f"impressions reference videos outside the item table, e.g. {unknown}; "
            "filter interactions to accepted videos first"
        )
    candidate = candidate.to_numpy(np.int64)
    history = histories_before(impressions, clicks, item_index, history_length)
    safe = np.clip(history, 0, None)
    extra = {} if taste is None else {"taste": np.asarray(taste, dtype=np.float32)}
    if item_codes is not None:
        extra["item_codes"] = np.asarray(item_codes, dtype=np.int64)[candidate]
    if live_now is not None:
        extra["live_now"] = np.asarray(live_now, dtype=np.float32)
    return {
        **extra,
        "candidate": candidate,
        "candidate_id": id_buckets[candidate],
        "user_id": impressions["user_key"].map(user_buckets or {}).fillna(0).to_numpy(np.int64),
        "item_features": item_features[candidate],
        "history": history,
        "history_ids": np.where(history >= 0, id_buckets[safe], 0),
        "position": impressions["position"].to_numpy(np.int64, na_value=SERVING_POSITION),
        "clicked": impressions["clicked"].to_numpy(bool),
        # NULL labels become placeholders that the masks keep out of every loss.
        "watch_s": impressions["watch_s"].to_numpy(np.float32, na_value=0.0),
        "has_watch_label": impressions["watch_s"].notna().to_numpy(bool),
        "converted": impressions["converted"].to_numpy(bool, na_value=False),
        "has_conversion_label": impressions["converted"].notna().to_numpy(bool),
    }


def blend_weights(train_impressions: pd.DataFrame) -> BlendWeights:
    """Serving blend for a ranker trained on ``train_impressions``: watch time is scaled by the mean
    logged watch of clicks, and a head that had no labels at all (the source lacks watch_s or
    converted) gets weight 0, because its untrained output would only add noise to the ranking."""
    clicks = train_impressions[train_impressions["clicked"].astype(bool)]
    watch = clicks["watch_s"].dropna().astype(float)
    has_conversion = bool(train_impressions["converted"].notna().any())
    mean = float(watch.mean()) if len(watch) else 0.0
    scale = mean if mean > 0 else 1.0
    return BlendWeights(
        watch=1.0 if len(watch) else 0.0, conversion=1.0 if has_conversion else 0.0, watch_scale_s=round(scale, 3)
    )


def train_ranker(
    train_arrays: dict[str, np.ndarray],
    val_arrays: dict[str, np.ndarray],
    item_embeddings: np.ndarray,
    config: RankerConfig,
    params: RankerTraining,
    train: TrainConfig,
) -> tuple[Ranker, FitResult]:
    seed_everything(train)
    ranker = config.build()
    ranker.fit_content_scale(torch.as_tensor(item_embeddings))
    system = RankerSystem(
        ranker,
        torch.as_tensor(item_embeddings),
        lr=params.lr,
        id_dropout=params.id_dropout,
        weight_decay=params.weight_decay,
    )
    data = ImpressionDataModule(train_arrays, val_arrays, batch_size=params.batch_size, seed=train.seed)
    result = fit(system, data, train)
    return system.ranker.eval(), result


@dataclass(frozen=True)
class RetrievalTraining:
    lr: float = _RETRIEVAL["lr"]
    # Histories per batch; with the every-position loss each carries up to history_length examples.
    batch_size: int = 128
    temperature: float = _RETRIEVAL["temperature"]
    id_dropout: float = _RETRIEVAL["id_dropout"]
    # SASRec's loss: every history position predicts the click after it (models.fit.systems.RetrievalSystem).
    every_position: bool = _RETRIEVAL["every_position"]


def click_arrays(
    clicks_in: pd.DataFrame,
    clicks: pd.DataFrame,
    item_index: dict[str, int],
    id_buckets: np.ndarray,
    history_length: int,
    log_q: np.ndarray,
    user_buckets: dict[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """One retrieval example per click in ``clicks_in``: the user's clicks before it, and the item.
    With ``user_buckets`` (user_key → hashed id; anyone else 0) each example also carries ``user_id``.

    ``window_end`` marks every ``history_length``-th example counted back from each user's last click
    in ``clicks_in``: with SASRec's every-position loss those examples alone train each of the user's
    transitions once (``train_retrieval``)."""
    item = clicks_in["video_id"].map(item_index)
    if item.isna().any():
        raise ValueError("clicks reference videos outside the item table; filter interactions to accepted videos")
    item = item.to_numpy(np.int64)
    users = (
        {}
        if user_buckets is None
        else {"user_id": clicks_in["user_key"].map(user_buckets).fillna(0).to_numpy(np.int64)}
    )
    # Each click's count of the same user's later clicks (ties in ts: row order), by position.
    order = pd.DataFrame({"user": clicks_in["user_key"].to_numpy(), "ts": clicks_in["ts"].to_numpy()})
    after = order.sort_values("ts", kind="stable").groupby("user", sort=False).cumcount(ascending=False).sort_index()
    return {
        "history": histories_before(clicks_in, clicks, item_index, history_length),
        "window_end": (after.to_numpy() % max(history_length, 1)) == 0,
        "item": item,
        "item_id": id_buckets[item],
        "log_q": log_q[item],
        **users,
    }


def item_tables(arrays: list[dict[str, np.ndarray]], n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-item id bucket and log q, row-aligned with the item table, from click arrays that carry them
    per example (``click_arrays``); an item no example clicked gets bucket 0 and the smallest log q seen."""
    buckets = np.zeros(n_items, dtype=np.int64)
    log_q = np.full(n_items, np.nan, dtype=np.float32)
    for part in arrays:
        buckets[part["item"]] = part["item_id"]
        log_q[part["item"]] = part["log_q"]
    known = log_q[~np.isnan(log_q)]
    return buckets, np.nan_to_num(log_q, nan=float(known.min()) if len(known) else 0.0)


def train_retrieval(
    train_arrays: dict[str, np.ndarray],
    val_arrays: dict[str, np.ndarray],
    item_embeddings: np.ndarray,
    config: RetrievalConfig,
    params: RetrievalTraining,
    train: TrainConfig,
) -> tuple[TwoTower, FitResult]:
    seed_everything(train)
    model = config.build()
    model.fit_content_scale(torch.as_tensor(item_embeddings))
    buckets, log_q = item_tables([train_arrays, val_arrays], len(item_embeddings))
    if params.every_position and "window_end" in train_arrays:
        # Every position of a history predicts the click after it, so an example whose history is
        # covered by a later one repeats its transitions: one click per user per history_length
        # ones trains every transition once. Keeping all made an epoch ~history_length times longer for
        # the same information (measured: >5 minutes an epoch on lastfm-2k's 74k clicks on the shared box).
        keep = train_arrays["window_end"]
        train_arrays = {k: v[keep] for k, v in train_arrays.items()}
    system = RetrievalSystem(
        model,
        torch.as_tensor(item_embeddings),
        lr=params.lr,
        temperature=params.temperature,
        id_dropout=params.id_dropout,
        id_buckets=torch.as_tensor(buckets),
        log_q=torch.as_tensor(log_q),
        every_position=params.every_position,
    )
    data = ClickDataModule(train_arrays, val_arrays, batch_size=params.batch_size, seed=train.seed)
    result = fit(system, data, train)
    return system.model.eval(), result
