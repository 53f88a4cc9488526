"""Audiences over a served path (untrained weights: what is under test is the selection, not the model),
lookalikes in user-tower space, k-anonymity, and the lift estimator against hand-worked numbers."""

from __future__ import annotations

import numpy as np
import pytest

from models.marketing.audience import AudienceTooSmall, AudienceUsers, lookalikes, top_audience, user_scores
from models.marketing.lift import lift_at
from models.serving.bundle import load_bundle, write_bundle
from models.serving.path import ServedPath
from tests.model_fixtures import tiny_contents, untrained_models

N_ITEMS, N_USERS = 12, 130


@pytest.fixture(scope="module")
def path_and_users(tmp_path_factory: pytest.TempPathFactory) -> tuple[ServedPath, AudienceUsers]:
    directory = tmp_path_factory.mktemp("bundle")
    rng = np.random.default_rng(0)
    histories = {f"k{u:03d}": [f"v{i}" for i in rng.choice(N_ITEMS, 3, replace=False)] for u in range(N_USERS)}
    histories["k999"] = list(histories["k000"])  # a twin of k000
    write_bundle(directory / "b", tiny_contents(untrained_models(directory / "m"), n=N_ITEMS, histories=histories))
    bundle = load_bundle(directory / "b")
    row_of = {v: i for i, v in enumerate(bundle.items["video_id"])}
    return bundle.served_path(), AudienceUsers.from_histories(bundle.histories, row_of, {})


def test_audience_is_the_top_users_by_predicted_conversion(path_and_users: tuple[ServedPath, AudienceUsers]) -> None:
    path, users = path_and_users
    target = np.array([2, 5])
    audience = top_audience(path, users, target, n=100, objective="click", min_size=100)
    assert len(audience.user_keys) == 100 and len(set(audience.user_keys)) == 100
    assert np.all(np.diff(audience.scores) <= 0)
    # Independently: each user's best p_click over the campaign, straight from the ranker scorer.
    best = {
        key: path.scorer.score_user(rows, path.ranker_history, target).p_click.max()
        for key, rows in zip(users.user_keys, users.histories)
    }
    threshold = audience.scores[-1]
    assert all(best[k] == pytest.approx(s, rel=1e-5) for k, s in zip(audience.user_keys, audience.scores))
    assert all(v <= threshold + 1e-6 for k, v in best.items() if k not in set(audience.user_keys))
    conversion = user_scores(path, users, target, "conversion")
    assert conversion.shape == (len(users),) and np.all(conversion <= user_scores(path, users, target, "click"))


def test_too_small_audiences_are_refused(path_and_users: tuple[ServedPath, AudienceUsers]) -> None:
    path, users = path_and_users
    with pytest.raises(AudienceTooSmall, match="below the minimum of 100"):
        top_audience(path, users, np.array([1]), n=50)
    with pytest.raises(AudienceTooSmall, match=r"only 131 users are eligible"):
        top_audience(path, users, np.array([1]), n=500, min_size=200)
    with pytest.raises(ValueError, match="no video"):
        top_audience(path, users, np.array([], dtype=np.int64), n=100)


def test_lookalikes_start_with_the_seed_twin(path_and_users: tuple[ServedPath, AudienceUsers]) -> None:
    path, users = path_and_users
    audience, ignored = lookalikes(path, users, ["k000", "nobody"], n=100)
    assert ignored == ["nobody"]
    assert audience.user_keys[0] == "k999" and audience.scores[0] == pytest.approx(1.0, abs=1e-5)
    assert "k000" not in audience.user_keys and np.all(np.diff(audience.scores) <= 0)
    with pytest.raises(ValueError, match="none of the 1 seed users"):
        lookalikes(path, users, ["nobody"], n=100)


def test_lift_against_hand_worked_numbers() -> None:
    # 2 campaigns x 10 users, top 2 (share 0.2). Campaign 0: the model's top 2 are users 0, 1, both
    # convert; campaign 1: top 2 are users 9, 8, one converts. Popularity picks users 5, 6.
    scores = np.array([np.arange(10, 0, -1), np.arange(10)], dtype=float)
    outcomes = np.zeros((2, 10), dtype=bool)
    outcomes[0, [0, 1, 5]] = True
    outcomes[1, [9, 6]] = True
    popularity = np.zeros(10)
    popularity[[5, 6]] = [2, 1]
    lift = lift_at(scores, outcomes, popularity, share=0.2, resamples=200)
    assert lift.n == 2 and lift.hits == 3 and lift.hits_popular == 2
    assert lift.hits_random == pytest.approx(2 * 0.3 + 2 * 0.2)  # n x base rate per campaign
    assert lift.over_random == pytest.approx(3.0) and lift.over_popular == pytest.approx(1.5)
    low, high = lift.over_random_ci
    assert low <= lift.over_random <= high
    with pytest.raises(ValueError, match="shapes disagree"):
        lift_at(scores, outcomes[:, :5], popularity)
