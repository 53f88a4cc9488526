"""POST /audience: in-process over the trained tiny model (a small minimum so the 30-user world can
answer), and over the real HTTP server with the default minimum of 100, where every audience of the
tiny world is too small and must be a 400 with the reason."""

from pathlib import Path

import bentoml
import httpx
import numpy as np
import pytest

from bentos import marketing
from bentos.content import SentenceEncoder
from bentos.recommender import LoadedRecommender
from bentos.serving_settings import ServingSettings
from models.serving.exploration import ExplorationSettings
from tests.bentos.live_server import served
from vidrec.privacy import pseudonymise

KEY = "marketing-test-key"


@pytest.fixture(scope="module")
def model(trained) -> LoadedRecommender:
    deterministic = ServingSettings(exploration=ExplorationSettings(epsilon=0.0))  # explained == plain, slot by slot
    return LoadedRecommender(
        Path(bentoml.models.get(trained.tag).path), "t:1", "test-key", SentenceEncoder(), deterministic
    )


def test_campaign_audience_names_only_pseudonymised_users(
    model: LoadedRecommender, trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(marketing.MIN_SIZE_ENV_VAR, "5")
    products = trained.items.loc[trained.items["is_product"], "video_id"].tolist()[:3]
    reply = marketing.answer_audience(model, marketing.AudienceRequest(video_ids=[*products, "nope"], n=10))
    assert reply.size == 10 and reply.min_size == 5 and reply.unknown_video_ids == ["nope"]
    assert reply.scores == sorted(reply.scores, reverse=True) and all(0 <= v <= 1 for v in reply.scores)
    raw = set(trained.events["user_id"])
    assert set(reply.user_keys) <= set(model.histories) and not set(reply.user_keys) & raw
    seed = trained.events["user_id"].iloc[0]
    look = marketing.answer_audience(model, marketing.AudienceRequest(seed_user_ids=[seed, "stranger"], n=5))
    assert look.objective == "lookalike" and look.size == 5 and look.ignored_seed_users == 1
    assert pseudonymise(seed, "test-key") not in look.user_keys


def test_creative_choice_logs_exact_propensities(model: LoadedRecommender, trained) -> None:
    videos = trained.items["video_id"].tolist()[:4]
    user = trained.events["user_id"].iloc[0]
    request = marketing.CreativeRequest(user_id=user, video_ids=[*videos, "nope"], epsilon=0.2)
    reply = marketing.answer_creative(model, request, np.random.default_rng(0))
    probs = {o.video_id: o.probability for o in reply.options}
    assert sum(probs.values()) == pytest.approx(1.0) and reply.unknown_video_ids == ["nope"]
    best = max(reply.options, key=lambda o: o.p_click * o.p_conversion).video_id
    assert probs[best] == pytest.approx(1 - 0.2 + 0.2 / 4)
    assert reply.propensity == pytest.approx(probs[reply.video_id]) and reply.explored == (reply.video_id != best)
    rng = np.random.default_rng(1)
    shown = [marketing.answer_creative(model, request, rng).video_id for _ in range(400)]
    assert shown.count(best) / 400 == pytest.approx(probs[best], abs=0.06)


def test_recommendations_carry_reasons_when_asked(model: LoadedRecommender, known_user: str) -> None:
    from bentos import schemas as s
    from models.serving.explain import PRIOR_REASON

    plain = model.recommend(s.RecommendRequest(user_id=known_user, k=4))
    explained = model.recommend(s.RecommendRequest(user_id=known_user, k=4, explain=True))
    assert [i.video_id for i in plain.items] == [i.video_id for i in explained.items]
    assert all(i.reason is None for i in plain.items)
    titles = {h.title for h in explained.history}
    assert all(i.reason.startswith("because you watched") for i in explained.items)
    assert all(any(t in i.reason for t in titles) for i in explained.items)
    cold = model.recommend(s.RecommendRequest(user_id="never-seen", k=3, explain=True))
    assert [i.reason for i in cold.items] == [PRIOR_REASON] * 3


def test_the_minimum_size_is_configured_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(marketing.MIN_SIZE_ENV_VAR, raising=False)
    assert marketing.min_audience_size() == 100
    monkeypatch.setenv(marketing.MIN_SIZE_ENV_VAR, "zero")
    with pytest.raises(ValueError, match="not a whole number"):
        marketing.min_audience_size()


def test_too_small_audiences_are_a_400_with_the_reason_over_http(trained, vidrec_env: dict, vidrec_root: Path) -> None:
    env = {**vidrec_env, "VIDREC_API_KEY": KEY}
    env.pop(marketing.MIN_SIZE_ENV_VAR, None)
    video = trained.items["video_id"].iloc[0]
    with served(env, vidrec_root / "marketing_test.log") as base:
        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=60) as client:
            below = client.post("/audience", json={"video_ids": [video], "n": 50})
            assert below.status_code == 400 and "below the minimum of 100" in below.text
            # The tiny world has 30 users: even a request of 100 cannot be k-anonymous.
            few = client.post("/audience", json={"video_ids": [video], "n": 100})
            assert few.status_code == 400 and "users are eligible" in few.text
            creative = client.post("/creative", json={"user_id": "u1", "video_ids": [video, "v00001"]})
            assert creative.status_code == 200 and 0 < creative.json()["propensity"] <= 1
            both = client.post("/audience", json={"video_ids": [video], "seed_user_ids": ["u"], "n": 100})
            assert both.status_code == 400 and "either video_ids" in both.text
