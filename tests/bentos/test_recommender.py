"""One model version without HTTP: candidate generation paths, the retrieval user tower, model swaps."""

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import bentoml
import numpy as np
import pytest

from bentos import schemas as s
from bentos.content import SentenceEncoder
from bentos.model_watch import ModelHolder
from bentos.recommender import LoadedRecommender
from bentos.service import torch_threads
from bentos.serving_settings import EPSILON_ENV_VAR, TAIL_ENV_VAR, ServingSettings, exploration_from_env
from models.serving.exploration import ExplorationSettings
from models.serving.path import PathSettings
from vidrec.impressions import verify_request_id
from vidrec.privacy import pseudonymise
from vidrec.registry import ProductionPointer


@pytest.fixture(scope="module")
def sentences() -> SentenceEncoder:
    return SentenceEncoder()


@pytest.fixture(scope="module")
def bundle_dir(trained) -> Path:
    return Path(bentoml.models.get(trained.tag).path)


def _load(bundle_dir, sentences, **settings) -> LoadedRecommender:
    settings.setdefault("exploration", ExplorationSettings(epsilon=0.0))  # deterministic unless a test explores
    return LoadedRecommender(bundle_dir, "t:1", "test-key", sentences, ServingSettings(**settings))


def test_exploration_swaps_in_tail_items_with_their_propensities_under_a_signed_request_id(
    bundle_dir, sentences, known_user
) -> None:
    exploring = ExplorationSettings(epsilon=0.5, tail=4)
    model = _load(bundle_dir, sentences, path=PathSettings(n_candidates=100), exploration=exploring)
    plain = _load(bundle_dir, sentences, path=PathSettings(n_candidates=100))
    top = [i.video_id for i in plain.recommend(s.RecommendRequest(user_id=known_user, k=3)).items]
    explored = 0
    for _ in range(20):
        reply = model.recommend(s.RecommendRequest(user_id=known_user, k=3))
        assert reply.policy == exploring.policy and [i.position for i in reply.items] == [0, 1, 2]
        issued = verify_request_id("test-key", pseudonymise(known_user, "test-key"), reply.request_id)
        assert [issued.position_of(i.video_id) for i in reply.items] == [0, 1, 2]
        for item, ranked in zip(reply.items, top):
            if item.video_id == ranked:
                assert item.propensity == pytest.approx(1 - exploring.epsilon)
            else:  # a tail item: epsilon spread uniformly over the tail
                assert item.propensity == pytest.approx(exploring.epsilon / exploring.tail)
                explored += 1
    assert explored > 0  # P(no swap in 60 slots at eps 0.5) ~ 1e-18
    assert {plain.recommend(s.RecommendRequest(user_id=known_user, k=3)).policy} == {"deterministic"}


def test_exploration_settings_come_from_the_environment() -> None:
    assert exploration_from_env({}) == ExplorationSettings()
    assert exploration_from_env({EPSILON_ENV_VAR: "0"}).policy == "deterministic"
    assert exploration_from_env({EPSILON_ENV_VAR: "0.1", TAIL_ENV_VAR: "7"}) == ExplorationSettings(0.1, 7)
    with pytest.raises(ValueError, match="VIDREC_EXPLORATION_EPSILON"):
        exploration_from_env({EPSILON_ENV_VAR: "lots"})
    with pytest.raises(ValueError, match="epsilon must be in"):
        exploration_from_env({EPSILON_ENV_VAR: "1.5"})


def test_large_catalogue_path_uses_the_ivf_index_and_the_prior(bundle_dir, sentences, known_user) -> None:
    model = _load(bundle_dir, sentences, path=PathSettings(n_candidates=6), ann_threshold=10)
    assert model.path.index.kind == "ivf"
    known = model.recommend(s.RecommendRequest(user_id=known_user, k=3))
    assert known.retrieval == "ivf" and 3 <= known.candidates <= 6 + 2 and len(known.items) == 3
    cold = model.recommend(s.RecommendRequest(user_id="nobody", k=3))
    assert cold.retrieval == "prior" and cold.candidates == 6
    prior_top = [model.catalogue.items.at[r, "video_id"] for r in model.path.prior_order[:3]]
    assert [i.video_id for i in cold.items] == prior_top  # an empty history ranks exactly as the prior
    travel = model.recommend(s.RecommendRequest(user_id=known_user, k=5, filters=s.Filters(category="travel")))
    assert {i.category for i in travel.items} == {"travel"}


def test_small_catalogue_scores_every_allowed_item(bundle_dir, sentences, known_user) -> None:
    model = _load(bundle_dir, sentences, path=PathSettings(n_candidates=100))
    reply = model.recommend(s.RecommendRequest(user_id=known_user, k=100))
    assert reply.retrieval == "all" and reply.candidates == len(reply.items) == len(model.catalogue) - len(
        {h.video_id for h in reply.history}
    )


def test_retrieval_searches_the_user_tower_vector_among_item_tower_vectors(bundle_dir, sentences, known_user) -> None:
    model = _load(bundle_dir, sentences, path=PathSettings(n_candidates=4, prior_share=0.25), ann_threshold=10**6)
    user = model._user(known_user, [])
    candidates, how = model.path.candidates(user.rows, None)
    vector = model.path.retrieval.user_vector(user.rows, model.path.retrieval_history)
    similarity = model.path.retrieval.item_vectors() @ vector
    # The user tower's 4 best items lead the candidates (then the prior's head), ties allowed.
    assert how == "exact" and similarity[candidates[:4]].min() >= np.sort(similarity)[-4] - 1e-5
    cold = model.path.candidates([], None)
    assert cold[1] == "prior" and cold[0].tolist() == model.path.prior_order[:4].tolist()


def test_workers_times_threads_never_exceed_cores() -> None:
    for cores in (1, 2, 3, 8, 16):
        for workers in (1, 2, 4):
            assert torch_threads(cores, workers) >= 1
            assert workers * torch_threads(cores, workers) <= max(cores, workers)


@dataclass
class Fake:
    tag: str


class FakeStore:
    """``load(tag)`` for the holder: records every load and fails for the tags in ``broken``."""

    def __init__(self, *broken: str) -> None:
        self.broken, self.loads = set(broken), []

    def __call__(self, tag: str) -> Fake:
        self.loads.append(tag)
        if tag in self.broken:
            raise FileNotFoundError("ranker.pt missing")
        return Fake(tag)


def _pointer(directory: Path, *tags: str) -> ProductionPointer:
    pointer = ProductionPointer(directory)
    for tag in tags:
        pointer.promote(tag)
    return pointer


def test_holder_swaps_on_promotion_and_keeps_the_old_model_when_a_load_fails(tmp_path: Path) -> None:
    pointer, store = _pointer(tmp_path, "m:1"), FakeStore("m:broken")
    holder = ModelHolder(pointer, store, poll_s=60)
    assert holder.current.tag == "m:1" and not holder.refresh()
    in_flight = holder.current  # a request that started before the promotion keeps its model
    pointer.promote("m:2")
    assert holder.refresh() and holder.current.tag == "m:2" and in_flight.tag == "m:1"
    pointer.promote("m:broken")
    assert not holder.refresh() and holder.current.tag == "m:2"
    assert "m:broken" in holder.last_error and "still serving m:2" in holder.last_error
    assert not holder.refresh() and store.loads.count("m:broken") == 1  # not retried at once (retry_s)
    pointer.rollback()
    pointer.promote("m:3")
    assert holder.refresh() and holder.current.tag == "m:3" and holder.last_error is None


def test_holder_refuses_to_start_without_a_production_model(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no production model"):
        ModelHolder(ProductionPointer(tmp_path), lambda tag: Fake(tag))


def test_holder_starts_on_the_previous_champion_when_production_cannot_load(tmp_path: Path) -> None:
    pointer, store = _pointer(tmp_path, "m:1", "m:2", "m:broken"), FakeStore("m:broken")
    holder = ModelHolder(pointer, store, poll_s=60, retry_s=0.2)
    assert holder.current.tag == "m:2" and pointer.tag == "m:broken"  # the pointer itself is not moved
    assert "m:broken failed at start" in holder.last_error and "ranker.pt missing" in holder.last_error
    assert not holder.refresh() and store.loads.count("m:broken") == 1  # not retried at once
    store.broken.clear()  # the store entry is readable again (say, a volume mounted late)
    time.sleep(0.25)
    assert holder.refresh() and holder.current.tag == "m:broken" and holder.last_error is None
    assert store.loads.count("m:broken") == 2
    with pytest.raises(FileNotFoundError, match="ranker.pt missing"):  # nothing loadable: the real error
        ModelHolder(_pointer(tmp_path / "alone", "m:broken"), FakeStore("m:broken"))


def test_a_rollback_after_a_failed_start_clears_the_error(tmp_path: Path) -> None:
    pointer = _pointer(tmp_path, "m:1", "m:broken")
    holder = ModelHolder(pointer, FakeStore("m:broken"), poll_s=60)
    assert holder.current.tag == "m:1" and holder.last_error
    pointer.rollback()  # what the docs recommend: the pointer now names the model that serves
    assert not holder.refresh() and holder.last_error is None and holder.failed_tag is None


def test_holder_background_thread_follows_the_pointer(tmp_path: Path) -> None:
    pointer = ProductionPointer(tmp_path)
    pointer.promote("m:1")
    swapped = threading.Event()
    holder = ModelHolder(pointer, lambda tag: Fake(tag), poll_s=0.05, catch_up=lambda m: swapped.set())
    holder.start()
    try:
        pointer.promote("m:2")
        assert swapped.wait(5) and holder.current.tag == "m:2"
    finally:
        holder.stop()


def test_holder_catches_up_on_every_poll_so_other_workers_see_uploads(tmp_path: Path) -> None:
    pointer = ProductionPointer(tmp_path)
    pointer.promote("m:1")
    ticks = threading.Semaphore(0)
    holder = ModelHolder(pointer, lambda tag: Fake(tag), poll_s=0.02, catch_up=lambda m: ticks.release())
    holder.start()
    try:
        assert all(ticks.acquire(timeout=5) for _ in range(3)) and holder.current.tag == "m:1"
    finally:
        holder.stop()


def test_a_returning_user_is_encoded_once_and_scores_as_the_uncached_ranker(bundle_dir, sentences, known_user) -> None:
    model = _load(bundle_dir, sentences)
    first = model.recommend(s.RecommendRequest(user_id=known_user, k=10))
    misses = model.path._user_state.cache_info().misses
    again = model.recommend(s.RecommendRequest(user_id=known_user, k=10))
    assert model.path._user_state.cache_info().misses == misses and model.path._user_state.cache_info().hits >= 1
    assert [i.video_id for i in again.items] == [i.video_id for i in first.items]
    user = model._user(known_user, [])
    candidates = np.array([r for r in range(len(model.catalogue)) if r not in user.rows])
    uncached = model.path.scorer.score_user(user.rows, model.history_length, candidates, user_bucket=user.bucket)
    by_row = dict(zip(candidates.tolist(), uncached.score.tolist()))
    for item in again.items:
        assert item.score == pytest.approx(by_row[model.catalogue.row_of[item.video_id]], abs=1e-5)
    # Extra history is a different user state, not the cached one.
    extra = [v for v in model.catalogue.video_ids[:3] if model.catalogue.row_of[v] not in user.rows][:1]
    model.recommend(s.RecommendRequest(user_id=known_user, k=10, history=extra))
    assert model.path._user_state.cache_info().misses == misses + 1


def test_rank_groups_a_mixed_batch_by_user_and_matches_per_pair_scoring(bundle_dir, sentences, known_user) -> None:
    model = _load(bundle_dir, sentences)
    ids = model.catalogue.video_ids.tolist()
    requests = [
        s.RankRequest(user_id=known_user, video_ids=ids[:5]),
        s.RankRequest(user_id="someone-new", video_ids=ids[3:9], history=ids[:2]),
        s.RankRequest(user_id=known_user, video_ids=ids[6:8] + ["nope"]),
    ]
    replies = model.rank(requests)
    assert model.path._user_state.cache_info().misses == 2  # two distinct users in three requests
    assert replies[2].unknown_video_ids == ["nope"] and replies[0].known_user and not replies[1].known_user
    for request, reply in zip(requests, replies):
        user = model._user(request.user_id, request.history)
        rows, _ = model.catalogue.rows(request.video_ids)
        line = np.full(model.history_length, -1, dtype=np.int64)
        if user.rows:
            line[-len(user.rows) :] = user.rows
        # The per-pair path (history repeated per candidate) is the reference the grouped path must equal.
        reference = model.path.scorer.score(
            np.tile(line, (len(rows), 1)), np.asarray(rows), user_ids=np.full(len(rows), user.bucket)
        )
        expected = dict(zip((ids[r] for r in rows), reference.score.tolist()))
        assert {i.video_id: i.score for i in reply.items} == pytest.approx(expected, abs=1e-5)
        assert [i.score for i in reply.items] == sorted((i.score for i in reply.items), reverse=True)


def test_describe_many_matches_describe(bundle_dir, sentences) -> None:
    catalogue = _load(bundle_dir, sentences).catalogue
    rows = [3, 0, 7]
    assert catalogue.describe_many(np.array(rows)) == [catalogue.describe(r) for r in rows]
    assert catalogue.describe(0)["title"] == str(catalogue.items.at[0, "title"])
