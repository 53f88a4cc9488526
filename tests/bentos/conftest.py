"""A tiny trained model in the BentoML store, made production once per test session.

Trains directly through ``models.steps`` (no Dagster) on the tiny world, then saves with the same
``save_to_store`` the promotion asset uses, so the service loads exactly what a pipeline run ships.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from assets.model_store import save_to_store
from models.bundle import BundleContents
from models.config import RankerConfig
from models.served_path import PathSettings
from models.steps import (StepSettings, fit_encoder, fit_ranker, fit_retrieval, holdout_scores,
                          item_embedding_matrix, ranker_inputs)
from vidrec.behaviour import latest_histories
from vidrec.config import Paths
from vidrec.ingest import prepare_events, with_text
from vidrec.items import build_items
from vidrec.media.features import extract_features
from vidrec.media.probe import probe_videos
from vidrec.registry import ProductionPointer
from vidrec.sources import list_videos, read_events, read_metadata
from vidrec.text_embedding import TextEmbedder
from vidrec.world.generate import generate_world


@dataclass
class Trained:
    world: Path
    tag: str
    items: pd.DataFrame
    events: pd.DataFrame  # raw events (user_id in the clear)
    save_again: object  # () -> str: another store entry of the same models (a "new version")


def _click_auc(frame: pd.DataFrame) -> float:
    """Mann-Whitney AUC of p_click against clicks (ties get half credit)."""
    ranks = frame["p_click"].rank(method="average").to_numpy()
    positive = frame["clicked"].to_numpy(bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / max(n_pos * n_neg, 1))


@pytest.fixture(scope="session")
def trained(vidrec_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    paths = Paths(vidrec_root).ensure()
    world = tmp_path_factory.mktemp("serving-world")
    generate_world(world, size="tiny", progress=False)
    files = list_videos(world)
    videos = probe_videos(list(zip(files["video_id"], files["path"])), workers=2, progress=False)
    metadata = with_text(read_metadata(world))
    metadata["status"], metadata["reason"] = "accepted", None
    features = extract_features(videos[videos["status"] == "accepted"], paths.features, workers=2, progress=False)
    texts = metadata["text"].fillna("").tolist()
    text = pd.DataFrame({"video_id": metadata["video_id"], "has_text": [bool(t) for t in texts],
                         "embedding": list(TextEmbedder(paths.features / "text").embed(texts))})
    items, _ = build_items(videos, metadata, features, text)
    raw = read_events(world)
    events = prepare_events(raw, os.environ["VIDREC_PSEUDONYM_KEY"], set(items["video_id"]))
    events = events[events["status"] == "accepted"].drop(columns=["status", "reason"]).reset_index(drop=True)
    settings = StepSettings(encoder_epochs=1, ranker_epochs=1, patience=1, retrieval_epochs=2)
    encoder = fit_encoder(items, events, paths.checkpoints / "serve-encoder", settings)
    embeddings = pd.DataFrame({"video_id": items["video_id"], "embedding": list(item_embedding_matrix(encoder, items))})
    ranker = fit_ranker(items, embeddings, events, paths.checkpoints / "serve-ranker", settings)
    retrieval = fit_retrieval(items, embeddings, events, paths.checkpoints / "serve-retrieval", settings)
    inputs = ranker_inputs(items, embeddings, events, RankerConfig(**ranker.config))
    histories = latest_histories(events[events["clicked"]], length=ranker.config["history_length"])
    scores = holdout_scores(ranker, items, embeddings, events)
    evaluation = [{"model": m, "click_auc": _click_auc(g)} for m, g in scores.groupby("model")]

    def save(run: str = "serve-tests") -> str:
        labels = {"git_commit": "test", "data_version": "tiny", "run_id": run, "stage": "production"}
        # Retrieval depth below the tiny catalogue's 24 items, so served requests really retrieve.
        contents = BundleContents(encoder, ranker, retrieval, items, inputs.embeddings, inputs.buckets, histories,
                                  evaluation, user_buckets=inputs.user_buckets, path=PathSettings(n_candidates=8))
        return save_to_store(contents, labels, {"metrics": {}})

    tag = save()
    ProductionPointer(paths.registry).promote(tag)
    return Trained(world=world, tag=tag, items=items, events=raw, save_again=save)


@pytest.fixture(scope="session")
def known_user(trained: Trained) -> str:
    clicked = trained.events[trained.events["clicked"]]
    return str(clicked["user_id"].value_counts().index[0])


@pytest.fixture(scope="session")
def sample_video(trained: Trained) -> Path:
    """A real MP4 from the tiny world (H.264 + AAC, 2 s)."""
    return sorted((trained.world / "videos").glob("*.mp4"))[0]

