"""POST /audience: in-process over the trained tiny model (a small minimum so the 30-user world can
answer), and over the real HTTP server with the default minimum of 100, where every audience of the
tiny world is too small and must be a 400 with the reason."""

from pathlib import Path

import bentoml
import httpx
import pytest

from bentos import marketing
from bentos.content import SentenceEncoder
from bentos.recommender import LoadedRecommender
from tests.bentos.live_server import served
from vidrec.privacy import pseudonymise

KEY = "marketing-test-key"


@pytest.fixture(scope="module")
def model(trained) -> LoadedRecommender:
    return LoadedRecommender(Path(bentoml.models.get(trained.tag).path), "t:1", "test-key", SentenceEncoder())


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
            both = client.post("/audience", json={"video_ids": [video], "seed_user_ids": ["u"], "n": 100})
            assert both.status_code == 400 and "either video_ids" in both.text
