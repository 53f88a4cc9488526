"""Simulations can repeat the service's exploration: with ``VIDREC_SIM_NONCE_SEED`` the nonce stream (which
seeds every request's ε-swap draw) is seeded, so two runs with the same seed serve identical slates; unset,
as in production, the nonces come from the OS."""

from pathlib import Path

import bentoml

from bentos import schemas as s
from bentos.content import SentenceEncoder
from bentos.recommender import LoadedRecommender
from bentos.serving_settings import ServingSettings
from models.serving.exploration import ExplorationSettings
from models.serving.path import PathSettings
from vidrec.impressions import NONCE_SEED_ENV_VAR, request_seed, reset_nonce_streams


def _run(model: LoadedRecommender, user: str) -> list[tuple[list[str], list[float], int]]:
    replies = [model.recommend(s.RecommendRequest(user_id=user, k=3)) for _ in range(30)]
    return [
        ([i.video_id for i in r.items], [i.propensity for i in r.items], request_seed(r.request_id)) for r in replies
    ]


def test_two_runs_with_the_same_nonce_seed_serve_identical_slates(trained, known_user, monkeypatch) -> None:
    settings = ServingSettings(path=PathSettings(n_candidates=100), exploration=ExplorationSettings(0.5, 4))
    model = LoadedRecommender(Path(bentoml.models.get(trained.tag).path), "t:1", "k", SentenceEncoder(), settings)
    monkeypatch.setenv(NONCE_SEED_ENV_VAR, "7")
    reset_nonce_streams()
    first = _run(model, known_user)
    reset_nonce_streams()  # a second run of the simulation
    second = _run(model, known_user)
    assert first == second
    assert len({tuple(videos) for videos, _, _ in first}) > 1  # the slates really explore
    monkeypatch.setenv(NONCE_SEED_ENV_VAR, "8")
    assert _run(model, known_user) != first
    monkeypatch.delenv(NONCE_SEED_ENV_VAR)
    reset_nonce_streams()
    assert [n for _, _, n in _run(model, known_user)] != [n for _, _, n in first]  # production: from the OS
