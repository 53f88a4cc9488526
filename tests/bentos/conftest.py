"""A tiny trained model in the BentoML store, made production once per test session.

Runs the pipeline's steps without Dagster (``vidrec.items.tables_from_directory``, then
``models.fit.candidate``) on the tiny world, and saves with the same ``save_to_store`` the promotion asset
uses, so the service loads exactly what a pipeline run ships.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

from assets.model_store import save_to_store
from bentos.guard import API_KEY_ENV_VAR
from bentos.serving_settings import EPSILON_ENV_VAR
from models.fit.candidate import bundle_contents, train_candidate
from models.fit.steps import StepSettings, holdout_scores
from models.serving.path import PathSettings
from vidrec.config import Paths
from vidrec.items import tables_from_directory
from vidrec.registry import ProductionPointer
from vidrec.sources import read_events
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
    items, events = tables_from_directory(world, paths.features, os.environ["VIDREC_PSEUDONYM_KEY"])
    settings = StepSettings(encoder_epochs=1, ranker_epochs=1, patience=1, retrieval_epochs=2)
    candidate = train_candidate(items, events.drop(columns=["user_id"]), paths.checkpoints / "serve", settings)
    scores = holdout_scores(candidate.ranker, items, candidate.embeddings, events)
    evaluation = [{"model": m, "click_auc": _click_auc(g)} for m, g in scores.groupby("model")]
    # Retrieval depth below the tiny catalogue's 24 items, so served requests really retrieve.
    contents = bundle_contents(
        candidate.encoder,
        candidate.ranker,
        candidate.retrieval,
        items,
        candidate.embeddings,
        events,
        evaluation,
        path=PathSettings(n_candidates=8),
    )

    def save(run: str = "serve-tests") -> str:
        labels = {"git_commit": "test", "data_version": "tiny", "run_id": run, "stage": "production"}
        return save_to_store(contents, labels, {"metrics": {}})

    tag = save()
    ProductionPointer(paths.registry).promote(tag)
    return Trained(world=world, tag=tag, items=items, events=read_events(world), save_again=save)


@pytest.fixture(scope="session")
def known_user(trained: Trained) -> str:
    clicked = trained.events[trained.events["clicked"]]
    return str(clicked["user_id"].value_counts().index[0])


@pytest.fixture(scope="session")
def sample_video(trained: Trained) -> Path:
    """A real MP4 from the tiny world (H.264 + AAC, 2 s)."""
    return sorted((trained.world / "videos").glob("*.mp4"))[0]


KEY = "test-api-key"
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="package")
def api(trained):
    """The service in-process (BentoML's ASGI app under a TestClient), shared by the test_service* modules:
    BentoML registers its metrics once per process, so the app cannot be built twice. The environment it
    reads at startup is set for the startup only, so the modules after it see their own."""
    os.environ[API_KEY_ENV_VAR] = KEY
    os.environ[EPSILON_ENV_VAR] = "0"  # deterministic slates here; the default policy is tested in test_parity
    try:
        from bentos.service import Recommender

        client = TestClient(Recommender.to_asgi(), headers=AUTH)
        client.__enter__()
    finally:
        os.environ.pop(API_KEY_ENV_VAR, None)
        os.environ.pop(EPSILON_ENV_VAR, None)
    try:
        yield client
    finally:
        client.__exit__(None, None, None)
