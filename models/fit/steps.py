"""Pipeline steps that combine vidrec tables with model training and scoring (no Dagster)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.fit.data import ItemTensors
from models.fit.loop import FitResult, TrainConfig
from models.fit.trainers import (
    EncoderTraining,
    RankerTraining,
    blend_weights,
    embed_items,
    impression_arrays,
    train_encoder,
    train_ranker,
)
from models.nn.config import EncoderConfig, RankerConfig
from models.nn.encoders import MODALITIES
from models.nn.ranker import BlendWeights
from models.serving.scoring import RankerScorer, Scores
from models.serving.weights import TrainedModel, load_encoder, load_ranker, save_weights
from vidrec.commerce_tables import live_at
from vidrec.engagement import (
    co_engaged_neighbours,
    engagement_vectors,
    histories_before,
    id_bucket,
    taste_before_sessions,
)
from vidrec.items import id_buckets, item_code_matrix, item_feature_matrix
from vidrec.splits import temporal_split


@dataclass(frozen=True)
class StepSettings:
    encoder_epochs: int = 8
    ranker_epochs: int = 10
    patience: int = 3
    seed: int = 0
    # An epoch trains each click once (models.fit.trainers.train_retrieval keeps one history window per
    # history_length clicks), about history_length times fewer steps than when every click had its own.
    retrieval_epochs: int = 30
    # The encoder's visual branch (models.nn.encoders.VISUAL_ENCODERS): "backbone" pools frozen pretrained
    # frame features, "scratch" trains the small CNN on 32x32 frames (the ablation). Backbone by default:
    # on the demo world's synthetic videos the two tie (benchmarks/results/quality.json,
    # visual_encoder_ablation, 2 seeds), and only the backbone recognises anything in real pictures.
    visual_encoder: str = "backbone"


def fit_info(result: FitResult) -> dict:
    return {k: v for k, v in asdict(result).items() if k != "history"}


def item_tensors(items: pd.DataFrame) -> ItemTensors:
    return ItemTensors.from_catalogue(items, np.stack(items["embedding"].to_numpy()))


def fit_encoder(
    items: pd.DataFrame,
    events: pd.DataFrame,
    out_dir: Path,
    settings: StepSettings,
    params: EncoderTraining | None = None,
) -> TrainedModel:
    params = params or EncoderTraining()
    split = temporal_split(events)
    fit_events = split.part(events, "fit")
    clicks = fit_events[fit_events["clicked"]]
    video_ids = items["video_id"].tolist()
    neighbours = co_engaged_neighbours(clicks, video_ids, per_item=params.neighbours_per_item, seed=settings.seed)
    engagement, has_engagement = (
        engagement_vectors(fit_events, video_ids, params.engagement_dim) if params.engagement_dim else (None, None)
    )
    if settings.visual_encoder == "backbone" and "frame_features_path" not in items:
        raise ValueError(
            "visual_encoder='backbone' needs the items' cached backbone features (frame_features_path, written "
            "by the video_features asset); materialise video_features again or train with visual_encoder='scratch'"
        )
    config = EncoderConfig(visual=settings.visual_encoder)
    encoder, result = train_encoder(
        item_tensors(items),
        neighbours,
        config,
        params,
        TrainConfig(
            checkpoint_dir=out_dir, max_epochs=settings.encoder_epochs, patience=settings.patience, seed=settings.seed
        ),
        engagement,
        has_engagement,
    )
    weights = save_weights(encoder, out_dir / "encoder.pt")
    return TrainedModel(
        "encoder",
        str(weights),
        asdict(config),
        result.history,
        fit_info(result),
        {
            "items": len(items),
            "items_with_neighbours": int((neighbours[:, 0] >= 0).sum()),
            "items_with_engagement": int(has_engagement.sum()) if has_engagement is not None else 0,
            "training": asdict(params),
        },
    )


def item_embedding_matrix(encoder: TrainedModel, items: pd.DataFrame, without: str | None = None) -> np.ndarray:
    """(N, dim) content embeddings row-aligned with ``items``; ``without`` names a modality
    (visual, audio, text) to hide from every item, for ablations."""
    tensors = item_tensors(items)
    if without is not None:
        if without not in MODALITIES:
            raise ValueError(f"unknown modality {without!r}; use one of {MODALITIES}")
        tensors.mask = tensors.mask.clone()
        tensors.mask[:, MODALITIES.index(without)] = False
    return embed_items(load_encoder(Path(encoder.weights_path), encoder.config), tensors)


@dataclass
class RankerInputs:
    """Per-item arrays aligned with the item table, plus the temporal split."""

    item_index: dict[str, int]
    embeddings: np.ndarray
    buckets: np.ndarray
    features: np.ndarray
    known: set[str]
    user_buckets: dict[str, int]  # hashed id of each user_key seen in the fit window
    codes: np.ndarray  # (N, 2) hashed brand and category (vidrec.items.item_code_matrix)
    creators: np.ndarray  # (N,) creator_id per item, for the live schedule
    live: pd.DataFrame | None = None  # live sessions (vidrec.commerce_tables); None: nobody is ever live

    def live_now(self, impressions: pd.DataFrame) -> np.ndarray:
        """(n,) float32: 1 where the impression's video's host was live at the impression's time."""
        if self.live is None or self.live.empty:
            return np.zeros(len(impressions), np.float32)
        rows = impressions["video_id"].map(self.item_index).to_numpy(np.int64)
        ts = pd.to_datetime(impressions["ts"], utc=True).to_numpy("datetime64[ns]").astype(np.int64)
        return live_at(self.live, self.creators[rows], ts).astype(np.float32)

    def users(self, user_keys: pd.Series) -> np.ndarray:
        """Hashed user ids for a column of user_keys; 0 for users the ranker never trained on."""
        return user_keys.map(self.user_buckets).fillna(0).to_numpy(np.int64)


def ranker_inputs(
    items: pd.DataFrame,
    embeddings: pd.DataFrame,
    events: pd.DataFrame,
    config: RankerConfig,
    live: pd.DataFrame | None = None,
) -> RankerInputs:
    aligned = items[["video_id"]].merge(embeddings[["video_id", "embedding"]], on="video_id", how="left")
    if aligned["embedding"].isna().any():
        raise ValueError("item_embeddings lacks rows for some items; re-materialise item_embeddings")
    split = temporal_split(events)
    fit_events = split.part(events, "fit")
    known = set(fit_events["video_id"])
    ids = items["video_id"].tolist()
    return RankerInputs(
        item_index={v: i for i, v in enumerate(ids)},
        embeddings=np.stack(aligned["embedding"].to_numpy()).astype(np.float32),
        buckets=id_buckets(ids, known, config.id_buckets),
        features=item_feature_matrix(items),
        known=known,
        user_buckets={u: id_bucket(u, config.user_buckets) for u in fit_events["user_key"].unique()},
        codes=item_code_matrix(items, config.code_buckets),
        # An item table without creators (a hand-made test table) has no live hosts.
        creators=(items["creator_id"] if "creator_id" in items else pd.Series("", index=items.index))
        .astype(str)
        .to_numpy(object),
        live=live,
    )


def fit_ranker(
    items: pd.DataFrame,
    embeddings: pd.DataFrame,
    events: pd.DataFrame,
    out_dir: Path,
    settings: StepSettings,
    params: RankerTraining | None = None,
    config: RankerConfig | None = None,
    live: pd.DataFrame | None = None,
) -> TrainedModel:
    """Train the ranker on the fit window; ``live`` (vidrec.commerce_tables.read_live_sessions) gives each impression
    its ``live_now`` input at the impression's time (None: nobody live)."""
    config = config or RankerConfig()
    inputs = ranker_inputs(items, embeddings, events, config, live)
    split = temporal_split(events)
    clicks = events[events["clicked"]]
    arrays = {}
    for part in ("train", "val"):
        impressions = split.part(events, part)
        taste = (
            taste_before_sessions(impressions, events, inputs.embeddings, inputs.item_index)
            if config.use_taste
            else None
        )
        arrays[part] = impression_arrays(
            impressions,
            clicks,
            inputs.item_index,
            inputs.buckets,
            inputs.features,
            config.history_length,
            inputs.user_buckets,
            taste,
            inputs.codes if config.commerce else None,
            inputs.live_now(impressions) if config.commerce else None,
        )
    ranker, result = train_ranker(
        arrays["train"],
        arrays["val"],
        inputs.embeddings,
        config,
        params or RankerTraining(),
        TrainConfig(
            checkpoint_dir=out_dir, max_epochs=settings.ranker_epochs, patience=settings.patience, seed=settings.seed
        ),
    )
    weights = save_weights(ranker, out_dir / "ranker.pt")
    blend = blend_weights(split.part(events, "train"))  # heads without labels (imported logs) weigh 0
    return TrainedModel(
        "ranker",
        str(weights),
        asdict(config),
        result.history,
        fit_info(result),
        {
            "blend": asdict(blend),
            "train_impressions": len(arrays["train"]["candidate"]),
            "val_impressions": len(arrays["val"]["candidate"]),
        },
    )


def scorer_for(ranker: TrainedModel, inputs: RankerInputs) -> RankerScorer:
    return RankerScorer(
        load_ranker(Path(ranker.weights_path), ranker.config),
        inputs.embeddings,
        inputs.buckets,
        inputs.features,
        BlendWeights(**ranker.extra["blend"]),
        inputs.codes,
    )


def score_impressions(
    ranker: TrainedModel, inputs: RankerInputs, impressions: pd.DataFrame, events: pd.DataFrame
) -> Scores:
    """The ranker's serving-time scores (no position) for ``impressions``, with each user's click
    history taken from ``events`` strictly before each impression."""
    config = RankerConfig(**ranker.config)
    clicks = events[events["clicked"]]
    history = histories_before(impressions, clicks, inputs.item_index, config.history_length)
    candidates = impressions["video_id"].map(inputs.item_index).to_numpy(np.int64)
    taste = (
        taste_before_sessions(impressions, events, inputs.embeddings, inputs.item_index) if config.use_taste else None
    )
    return scorer_for(ranker, inputs).score(
        history,
        candidates,
        user_ids=inputs.users(impressions["user_key"]),
        taste=taste,
        live_now=inputs.live_now(impressions),
    )


def holdout_scores(
    ranker: TrainedModel, items: pd.DataFrame, embeddings: pd.DataFrame, events: pd.DataFrame, seed: int = 0
) -> pd.DataFrame:
    """Scores of the candidate and two reference orderings on the hold-out window:
    ``random`` (seeded) and ``logging_policy`` (the logged slate order)."""
    config = RankerConfig(**ranker.config)
    inputs = ranker_inputs(items, embeddings, events, config)
    holdout = temporal_split(events).part(events, "holdout").reset_index(drop=True)
    scores = score_impressions(ranker, inputs, holdout, events)
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
