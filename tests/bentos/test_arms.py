"""Both arms in one worker: the challenger is loaded, swapped and dropped as the registry says, users are
assigned sticky at the share, a promoted challenger is reused, and /model's schema reports the arms."""

from pathlib import Path

import bentoml

from bentos import schemas as s
from bentos.arms import ArmHolder
from bentos.content import SentenceEncoder
from bentos.recommender import LoadedRecommender
from tests.bentos.test_recommender import Fake, FakeStore, _pointer
from vidrec.experiment import arm_for

USERS = [f"key-{i}" for i in range(4000)]


def test_without_a_challenger_everyone_gets_production(tmp_path: Path) -> None:
    arms = ArmHolder(_pointer(tmp_path, "m:1"), FakeStore(), poll_s=60)
    assert all(arms.pick(u) == ("production", Fake("m:1")) for u in USERS[:100])
    assert arms.experiment_info() is None and len(arms.models()) == 1


def test_users_are_split_sticky_at_the_share_and_the_challenger_is_reused_on_promotion(tmp_path: Path) -> None:
    pointer, store = _pointer(tmp_path, "m:1"), FakeStore()
    arms = ArmHolder(pointer, store, poll_s=60)
    experiment = pointer.start_challenger("m:2", 0.25, salt="s").challenger
    assert arms.pick("anyone").arm == "production"  # not followed until the next poll
    arms.refresh()
    picks = [arms.pick(u) for u in USERS]
    challenger = [u for u, p in zip(USERS, picks) if p.arm == "challenger"]
    assert abs(len(challenger) / len(USERS) - 0.25) < 0.02
    assert all(p.model.tag == ("m:2" if p.arm == "challenger" else "m:1") for p in picks)
    assert all(arm_for(u, "s", 0.25) == "challenger" for u in challenger)  # the analysis can recompute arms
    info = arms.experiment_info()
    assert info.experiment_id == experiment.experiment_id and info.challenger_serving
    assert [(a.arm, a.tag, a.share) for a in info.arms] == [("production", "m:1", 0.75), ("challenger", "m:2", 0.25)]
    assert s.ModelInfo.model_fields["experiment"].default is None  # absent unless an experiment runs
    pointer.end_challenger(True, "non-inferior")
    arms.refresh()
    assert arms.production.current.tag == "m:2" and store.loads.count("m:2") == 1  # reused, not reloaded
    assert arms.pick(challenger[0]) == ("production", Fake("m:2")) and arms.experiment_info() is None


def test_a_rolled_back_or_broken_challenger_serves_nobody(tmp_path: Path) -> None:
    pointer, store = _pointer(tmp_path, "m:1"), FakeStore("m:broken")
    arms = ArmHolder(pointer, store, poll_s=60, retry_s=60)
    pointer.start_challenger("m:2", 0.5)
    assert arms.refresh_challenger() and len(arms.models()) == 2
    pointer.end_challenger(False, "inferior")
    assert arms.refresh_challenger() and {arms.pick(u).arm for u in USERS[:200]} == {"production"}
    pointer.start_challenger("m:broken", 0.5)
    assert not arms.refresh_challenger() and "m:broken" in arms.challenger_error
    assert not arms.refresh_challenger() and store.loads.count("m:broken") == 1  # retried after retry_s only
    assert {arms.pick(u).arm for u in USERS[:200]} == {"production"}
    info = arms.experiment_info()
    assert not info.challenger_serving and "ranker.pt missing" in info.challenger_error


def test_a_new_experiment_reshuffles_with_its_own_salt(tmp_path: Path) -> None:
    pointer = _pointer(tmp_path, "m:1")
    arms = ArmHolder(pointer, FakeStore(), poll_s=60)
    pointer.start_challenger("m:2", 0.5, salt="first")
    arms.refresh()
    before = [arms.pick(u).arm for u in USERS[:1000]]
    pointer.start_challenger("m:2", 0.5, salt="second")  # same model, new experiment
    arms.refresh()
    after = [arms.pick(u).arm for u in USERS[:1000]]
    assert before != after and after == [arm_for(u, "second", 0.5) for u in USERS[:1000]]


def test_the_holder_serves_two_stored_models(trained, tmp_path: Path) -> None:
    """Production and a challenger loaded from the BentoML store as the service loads them."""
    sentences = SentenceEncoder()
    challenger_tag = trained.save_again("arms-test")

    def load(tag: str) -> LoadedRecommender:
        stored = bentoml.models.get(tag)
        return LoadedRecommender(Path(stored.path), str(stored.tag), "arms-key", sentences)

    pointer = _pointer(tmp_path, trained.tag)
    pointer.start_challenger(challenger_tag, 0.5, salt="stored")
    arms = ArmHolder(pointer, load, poll_s=60)
    user = next(u for u in USERS if arm_for(u, "stored", 0.5) == "challenger")
    arm, model = arms.pick(user)
    assert arm == "challenger" and model.tag == challenger_tag
    response = model.recommend(s.RecommendRequest(user_id="someone", k=3))
    assert response.model_tag == challenger_tag and len(response.items) == 3
    assert arms.pick(next(u for u in USERS if arm_for(u, "stored", 0.5) == "production")).model.tag == trained.tag


def test_pick_uses_the_same_assignment_as_the_analysis(tmp_path: Path) -> None:
    pointer = _pointer(tmp_path, "m:1")
    pointer.start_challenger("m:2", 0.1, salt="x")
    arms = ArmHolder(pointer, FakeStore(), poll_s=60)  # a challenger running at start is loaded at once
    assert all(arms.pick(u).arm == arm_for(u, "x", 0.1) for u in USERS)


def test_every_poll_catches_both_models_up(tmp_path: Path) -> None:
    """Uploads landed by another worker reach the challenger too, not only production."""
    pointer = _pointer(tmp_path, "m:1")
    pointer.start_challenger("m:2", 0.5)
    caught: list[str] = []
    arms = ArmHolder(pointer, FakeStore(), poll_s=60, catch_up=lambda model: caught.append(model.tag))
    arms.refresh()
    assert caught == ["m:1", "m:2"]
