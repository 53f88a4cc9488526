"""The service's live schedule: the bundle's live sessions reach /recommend's final score, and the live boost
applies only while the session is live, by the recommender's clock (set here, no sleeping)."""

from __future__ import annotations

import shutil
from pathlib import Path

import bentoml
import pandas as pd

from bentos import schemas as s
from bentos.content import SentenceEncoder
from bentos.recommender import LoadedRecommender
from bentos.serving_settings import ServingSettings
from models.serving.bundle import LIVE_SESSIONS
from models.serving.exploration import ExplorationSettings
from models.serving.path import PathSettings

START = pd.Timestamp("2030-05-01T18:00:00Z")
END = START + pd.Timedelta(hours=2)


def _load(directory: Path, live_boost: float) -> LoadedRecommender:
    path = PathSettings(n_candidates=8, live_boost=live_boost)
    settings = ServingSettings(path=path, exploration=ExplorationSettings(epsilon=0.0))
    return LoadedRecommender(directory, "t:live", "test-key", SentenceEncoder(), settings)


def test_the_live_boost_applies_only_inside_the_session(trained, known_user, tmp_path: Path) -> None:
    source = Path(bentoml.models.get(trained.tag).path)
    plain = _load(source, 0.0)
    ranked = plain.recommend(s.RecommendRequest(user_id=known_user, k=len(plain.catalogue)))
    # The live creator: the one whose video the plain ranking puts last, so the boost visibly lifts it.
    creator = ranked.items[-1].creator_id
    eligible = {i.video_id for i in ranked.items if i.creator_id == creator}
    directory = tmp_path / "bundle"
    shutil.copytree(source, directory)
    pd.DataFrame({"creator_id": [creator], "start": [START], "end": [END]}).to_parquet(directory / LIVE_SESSIONS)
    model = _load(directory, 100.0)
    request = s.RecommendRequest(user_id=known_user, k=len(eligible))

    def top(now: pd.Timestamp) -> set[str]:
        model.clock = lambda: int(now.value)
        return {item.video_id for item in model.recommend(request).items}

    assert top(START) == eligible and top(END - pd.Timedelta(seconds=1)) == eligible
    assert top(START - pd.Timedelta(seconds=1)) != eligible and top(END) != eligible
    # Before and after the session the answer is the plain ranking's head.
    assert top(END) == {i.video_id for i in ranked.items[: len(eligible)]}
