"""A candidate model from tables to bundle, without Dagster: the pipeline's training steps in their order
(encoder → item embeddings → ranker → retrieval) and the bundle contents promotion saves.

The Dagster assets run the same steps one asset each and call ``bundle_contents`` at promotion; the
serve benchmark and the test fixtures call ``train_candidate`` then ``bundle_contents``, so the order
of the steps and what a bundle holds are written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from models.fit.retrieval_step import fit_retrieval
from models.fit.steps import StepSettings, fit_encoder, fit_ranker, item_embedding_matrix, ranker_inputs
from models.nn.config import RankerConfig
from models.serving.bundle import BundleContents
from models.serving.path import PathSettings
from models.serving.weights import TrainedModel
from vidrec.engagement import latest_histories


@dataclass
class Candidate:
    encoder: TrainedModel
    embeddings: pd.DataFrame  # video_id, embedding: the item_embeddings table
    ranker: TrainedModel
    retrieval: TrainedModel


def embeddings_frame(encoder: TrainedModel, items: pd.DataFrame) -> pd.DataFrame:
    """The item_embeddings table: one content embedding per item, row-aligned with ``items``."""
    return pd.DataFrame({"video_id": items["video_id"], "embedding": list(item_embedding_matrix(encoder, items))})


def train_candidate(
    items: pd.DataFrame,
    events: pd.DataFrame,
    out_dir: Path,
    settings: StepSettings,
    live: pd.DataFrame | None = None,
) -> Candidate:
    """Every training step on the accepted ``events`` over ``items``; weights under ``out_dir/<step>``;
    ``live``: the live sessions that give the ranker its live-now input (vidrec.commerce_tables)."""
    encoder = fit_encoder(items, events, out_dir / "encoder", settings)
    embeddings = embeddings_frame(encoder, items)
    ranker = fit_ranker(items, embeddings, events, out_dir / "ranker", settings, live=live)
    retrieval = fit_retrieval(items, embeddings, events, out_dir / "retrieval", settings)
    return Candidate(encoder, embeddings, ranker, retrieval)


def bundle_contents(
    encoder: TrainedModel,
    ranker: TrainedModel,
    retrieval: TrainedModel,
    items: pd.DataFrame,
    item_embeddings: pd.DataFrame,
    events: pd.DataFrame,
    evaluation: list[dict],
    path: PathSettings = PathSettings(),
    live: pd.DataFrame | None = None,
) -> BundleContents:
    """What promotion saves: the three models, the items with their embeddings and id buckets, each user's
    latest clicks (the serving history) and hashed id, the evaluation the candidate passed, the live
    schedule (``live``) the service's live-now input and boost read, and the data's cut-off (its newest
    event: seeding the online user state keeps the events after it)."""
    inputs = ranker_inputs(items, item_embeddings, events, RankerConfig(**ranker.config))
    histories = latest_histories(events[events["clicked"]], length=ranker.config["history_length"])
    return BundleContents(
        encoder,
        ranker,
        retrieval,
        items,
        inputs.embeddings,
        inputs.buckets,
        histories,
        evaluation,
        user_buckets=inputs.user_buckets,
        path=path,
        live=live,
        data_cutoff=float(events["ts"].max().timestamp()) if len(events) else None,
    )
