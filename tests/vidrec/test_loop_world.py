"""The loop's simulated users and its nightly judge: satiation (a watched video is clicked less, each policy
keeps its own record, the oracle knows it) and the position-aware SNIPS (weights exactly 1 when the target
is the logger, so the estimate is the logged CTR; a better target is estimated higher)."""

from __future__ import annotations

import numpy as np
import pytest

from models.serving.exploration import ExplorationSettings, explore
from vidrec.loop.judge import LoggedSlate, snips_ctr, target_exposure
from vidrec.loop.users import REWATCH_FACTOR, Session, Watched, answer, oracle_slate
from vidrec.world import behaviour as bh
from vidrec.world.catalogue import sample_items
from vidrec.world.oracle import Oracle
from vidrec.world.spec import world_spec
from vidrec.world.users import build_users

K = 10


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    spec = world_spec("demo")
    items = sample_items(spec, np.random.default_rng(1))
    return Oracle(items, build_users(spec, np.random.default_rng(3)), bh.BehaviourParams())


def test_a_watched_video_is_clicked_less_and_each_policy_keeps_its_own_record(oracle: Oracle) -> None:
    user = str(oracle.users["user_id"].iloc[0])
    videos = oracle.items["video_id"].astype(str).tolist()[:K]
    rng = np.random.default_rng(0)
    fresh = watched = 0
    for index in range(4000):  # the same random numbers answer the fresh and the re-shown slate
        session = Session(index, user, rng.random((3, K)))
        fresh += answer(oracle, session, videos).clicked.sum()
        watched += answer(oracle, session, videos, frozenset(videos)).clicked.sum()
    assert watched < fresh
    assert watched / fresh == pytest.approx(REWATCH_FACTOR, abs=0.03)
    records = {p: Watched() for p in ("vidrec", "frozen")}
    records["vidrec"].add(user, videos[:2], np.array([True, False]))
    assert records["vidrec"].of(user) == {videos[0]} and records["frozen"].of(user) == frozenset()
    with pytest.raises(ValueError, match="rewatch factor"):
        answer(oracle, session, videos, frozenset(), rewatch=1.5)


def test_the_oracle_knows_what_the_user_watched(oracle: Oracle) -> None:
    user = str(oracle.users["user_id"].iloc[1])
    available = oracle.items["video_id"].astype(str).tolist()
    best = oracle_slate(oracle, user, available, K)
    again = oracle_slate(oracle, user, available, K, frozenset(best[:3]))
    assert not set(best[:3]) & set(again) and again[: K - 3] == best[3:]


def _logged(n: int, settings: ExplorationSettings, quality: np.ndarray, theta: np.ndarray, seed: int):
    """``n`` slates of a logger ranking items 0..29 in ``order`` with ε-swaps, clicked by a position-based
    model (examination θ_j times the item's ``quality``)."""
    rng = np.random.default_rng(seed)
    ranked = [f"v{i}" for i in range(K + settings.tail)]
    slates = []
    for _ in range(n):
        slate = explore(np.arange(len(ranked)), K, settings, rng)
        videos = [ranked[r] for r in slate.rows]
        clicked = rng.random(K) < theta * quality[slate.rows]
        slates.append(LoggedSlate(videos, slate.propensity, clicked))
    return ranked, slates


def test_snips_weights_are_one_when_the_target_is_the_logger() -> None:
    settings = ExplorationSettings()
    theta = np.asarray(bh.examination_prob(np.arange(K), bh.BehaviourParams()))
    quality = np.linspace(0.4, 0.05, K + settings.tail)
    ranked, slates = _logged(3000, settings, quality, theta, seed=1)
    assert any(s.propensity.min() < 0.5 for s in slates)  # some slots explored
    same = target_exposure(ranked, K, settings.epsilon, settings.tail, theta)
    found = snips_ctr(slates, [same] * len(slates), settings.epsilon, theta, K, seed=0)
    logged_ctr = np.mean([s.clicked.mean() for s in slates])
    assert found.weight_one_share == 1.0
    assert found.snips == pytest.approx(logged_ctr, rel=1e-12)
    assert found.low <= logged_ctr <= found.high


def test_snips_estimates_a_different_target_near_its_true_ctr() -> None:
    settings = ExplorationSettings(epsilon=0.3, tail=20)  # enough exploration for a tight check
    theta = np.asarray(bh.examination_prob(np.arange(K), bh.BehaviourParams()))
    quality = np.linspace(0.4, 0.05, K + settings.tail)
    ranked, slates = _logged(20000, settings, quality, theta, seed=3)
    swapped = ranked[5:K] + ranked[:5] + ranked[K:]  # ranks 5..9 first: a worse ordering of the same items
    target = target_exposure(swapped, K, settings.epsilon, settings.tail, theta)
    found = snips_ctr(slates, [target] * len(slates), settings.epsilon, theta, K, seed=0)
    index = {v: i for i, v in enumerate(ranked)}
    truth = sum(e * quality[index[v]] for v in target for e in [target[v]]) / K
    logger = target_exposure(ranked, K, settings.epsilon, settings.tail, theta)
    logger_truth = sum(logger[v] * quality[index[v]] for v in logger) / K
    assert truth < logger_truth  # the target really is worse...
    assert found.low <= truth <= found.high  # ...and the estimate's interval holds its true CTR@10
    assert found.snips < np.mean([s.clicked.mean() for s in slates])
