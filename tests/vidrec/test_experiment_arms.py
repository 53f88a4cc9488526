"""Live A/B arms: sticky HMAC assignment at the configured share, and the registry's challenger pointer."""

import json

import pytest

from vidrec.experiment import CHALLENGER, PRODUCTION, arm_for
from vidrec.registry import ProductionPointer

USERS = [f"user-{i:05d}" for i in range(10_000)]


@pytest.mark.parametrize("share", [0.05, 0.1, 0.5, 0.8])
def test_challenger_share_within_one_point_over_10k_users(share: float) -> None:
    arms = [arm_for(u, "salt-a", share) for u in USERS]
    observed = arms.count(CHALLENGER) / len(USERS)
    assert abs(observed - share) <= 0.01, observed
    assert set(arms) == {PRODUCTION, CHALLENGER}


def test_assignment_is_sticky_and_salted() -> None:
    first = [arm_for(u, "salt-a", 0.5) for u in USERS]
    assert first == [arm_for(u, "salt-a", 0.5) for u in USERS]  # same user, same experiment: same arm
    other = [arm_for(u, "salt-b", 0.5) for u in USERS]
    changed = sum(a != b for a, b in zip(first, other)) / len(USERS)
    assert 0.45 < changed < 0.55  # a new experiment reshuffles independently (half the users move at 50/50)


def test_raising_the_share_only_moves_users_to_the_challenger() -> None:
    low = {u for u in USERS if arm_for(u, "s", 0.1) == CHALLENGER}
    high = {u for u in USERS if arm_for(u, "s", 0.3) == CHALLENGER}
    assert low < high


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1, 1.5])
def test_share_outside_zero_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        arm_for("u", "s", share)


def test_empty_salt_is_refused() -> None:
    with pytest.raises(ValueError, match="salt is empty"):
        arm_for("u", "", 0.5)


def test_without_a_challenger_the_pointer_behaves_as_before(tmp_path) -> None:
    pointer = ProductionPointer(tmp_path)
    pointer.promote("m:1")
    pointer.promote("m:2")
    assert pointer.read().challenger is None
    assert pointer.rollback().tag == "m:1"
    # a pointer file written before experiments existed still reads
    (tmp_path / "production.json").write_text(json.dumps({"tag": "m:1", "history": [], "updated_at": None}))
    assert pointer.read().tag == "m:1" and pointer.challenger is None


def test_challenger_promoted_is_one_atomic_move_with_history(tmp_path) -> None:
    pointer = ProductionPointer(tmp_path)
    pointer.promote("m:1")
    started = pointer.start_challenger("m:2", 0.2)
    challenger = started.challenger
    assert started.tag == "m:1" and challenger.tag == "m:2" and challenger.share == 0.2
    assert challenger.production_tag == "m:1" and len(challenger.salt) == 32
    ended = pointer.end_challenger(True, "non-inferior", experiment_id=challenger.experiment_id)
    assert ended.tag == "m:2" and ended.history == ["m:1"] and ended.challenger is None
    assert ended.experiments[-1]["outcome"] == "promoted" and ended.experiments[-1]["reason"] == "non-inferior"
    assert pointer.rollback().tag == "m:1"  # the promoted challenger rolls back like any promotion
    assert list(tmp_path.glob("*.tmp")) == []


def test_challenger_rolled_back_leaves_production(tmp_path) -> None:
    pointer = ProductionPointer(tmp_path)
    pointer.promote("m:1")
    pointer.start_challenger("m:2", 0.1, salt="fixed")
    ended = pointer.end_challenger(False, "inferior on ctr_at_10")
    assert ended.tag == "m:1" and ended.history == [] and ended.challenger is None
    assert ended.experiments[-1]["outcome"] == "rolled_back" and ended.experiments[-1]["salt"] == "fixed"
    with pytest.raises(RuntimeError, match="no challenger"):
        pointer.end_challenger(False, "again")


def test_a_new_challenger_or_a_production_move_ends_the_running_experiment(tmp_path) -> None:
    pointer = ProductionPointer(tmp_path)
    pointer.promote("m:1")
    first = pointer.start_challenger("m:2", 0.1).challenger
    second = pointer.start_challenger("m:3", 0.1).challenger
    assert second.salt != first.salt and second.experiment_id != first.experiment_id
    assert pointer.read().experiments[-1]["outcome"] == "superseded"
    with pytest.raises(RuntimeError, match="is running"):  # a decision on the old experiment's results
        pointer.end_challenger(True, "stale", experiment_id=first.experiment_id)
    assert pointer.promote("m:4").challenger is None
    assert pointer.read().experiments[-1]["outcome"] == "superseded"


def test_invalid_challengers_are_refused(tmp_path) -> None:
    pointer = ProductionPointer(tmp_path)
    with pytest.raises(RuntimeError, match="no production model"):
        pointer.start_challenger("m:2", 0.1)
    pointer.promote("m:1")
    with pytest.raises(ValueError, match="already production"):
        pointer.start_challenger("m:1", 0.1)
    for share in (0, 1, 2):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            pointer.start_challenger("m:2", share)
