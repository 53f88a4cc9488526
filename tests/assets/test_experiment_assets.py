"""The live A/B assets invoked directly: online_experiment over a warehouse holding logged_impressions, the
sample-ratio check, and experiment_decision moving the registry only when the online stage is on."""

from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from assets import model_store
from assets.definitions import build_resources
from assets.experiment import experiment_decision, online_experiment, sample_ratio
from assets.model_store import promote
from assets.resources import GatePolicy, VidrecStorage
from vidrec.config import Paths
from vidrec.experiment import CHALLENGER, arm_for
from vidrec.gate import load_policy
from vidrec.registry import ProductionPointer


def _policy(tmp_path: Path, enabled: bool) -> GatePolicy:
    policy = load_policy()
    policy["online"] = {**policy["online"], "enabled": enabled, "share": 0.5, "min_users": 500, "min_impressions": 2000}
    path = tmp_path / f"gate-{enabled}.yaml"
    path.write_text(yaml.safe_dump(policy))
    return GatePolicy(path=str(path))


def _log(
    storage: VidrecStorage,
    salt: str,
    started_at: str,
    ctr: float,
    drop_challenger: float = 0.0,
    tags: tuple[str, str] = ("m:1", "m:2"),
) -> None:
    """A logged_impressions table in the warehouse: 2000 users assigned by arm_for, 5 slots each."""
    rng = np.random.default_rng(1)
    users = np.array([f"user{i}" for i in range(2000)])
    arms = np.array([arm_for(u, salt, 0.5) for u in users])
    keep = ~((arms == CHALLENGER) & (rng.random(len(users)) < drop_challenger))
    users, arms = np.repeat(users[keep], 5), np.repeat(arms[keep], 5)
    clicked = rng.random(len(users)) < np.where(arms == CHALLENGER, ctr, 0.2)
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i // 5}" for i in range(len(users))],
            "ts": pd.Timestamp(started_at) + pd.Timedelta(minutes=5),
            "user_key": users,
            "model_tag": np.where(arms == CHALLENGER, tags[1], tags[0]),
            "arm": arms,
            "policy": "served",
            "video_id": "v1",
            "position": np.tile(np.arange(5), len(users) // 5),
            "score": 0.5,
            "propensity": 1.0,
            "clicked": clicked,
            "watch_s": np.where(clicked, 12.0, 0.0),
            "converted": False,
        }
    )
    with duckdb.connect(str(storage.paths.warehouse)) as con:
        con.register("frame", frame)
        con.execute("CREATE OR REPLACE TABLE logged_impressions AS SELECT * FROM frame")


@pytest.fixture
def storage(tmp_path: Path) -> VidrecStorage:
    pointer = ProductionPointer(Paths(tmp_path).registry)
    pointer.promote("m:1")
    return VidrecStorage(root=str(tmp_path))


def _run(storage: VidrecStorage, policy: GatePolicy) -> tuple[dg.Output, dg.AssetCheckResult, dg.Output]:
    with dg.build_asset_context() as context:
        table = online_experiment(context, storage=storage, gate_policy=policy)
    check = sample_ratio(online_experiment=table.value)
    decision = experiment_decision(online_experiment=table.value, storage=storage, gate_policy=policy)
    return table, check, decision


def test_without_an_experiment_nothing_is_computed_or_moved(storage: VidrecStorage, tmp_path: Path) -> None:
    table, check, decision = _run(storage, _policy(tmp_path, enabled=True))
    assert table.value.empty and check.passed and decision.value["action"] == "none"
    assert ProductionPointer(storage.paths.registry).tag == "m:1"


def test_a_non_inferior_challenger_is_promoted(storage: VidrecStorage, tmp_path: Path) -> None:
    pointer = ProductionPointer(storage.paths.registry)
    challenger = pointer.start_challenger("m:2", 0.5, salt="fixed-salt").challenger
    _log(storage, challenger.salt, challenger.started_at, ctr=0.24)
    table, check, decision = _run(storage, _policy(tmp_path, enabled=True))
    assert check.passed and "challenger" in table.metadata["per_arm"].value
    assert table.metadata["plot"].value.startswith("![")
    assert decision.value["action"] == "promote" and decision.value["applied"]
    assert pointer.tag == "m:2" and pointer.challenger is None


def test_a_sample_ratio_mismatch_fails_the_check_and_rolls_back(storage: VidrecStorage, tmp_path: Path) -> None:
    pointer = ProductionPointer(storage.paths.registry)
    challenger = pointer.start_challenger("m:2", 0.5, salt="fixed-salt").challenger
    _log(storage, challenger.salt, challenger.started_at, ctr=0.24, drop_challenger=0.2)
    table, check, decision = _run(storage, _policy(tmp_path, enabled=True))
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["srm_p_value"].value < check.metadata["srm_alpha"].value
    assert decision.value["action"] == "rollback" and pointer.tag == "m:1" and pointer.challenger is None


def test_with_the_stage_off_the_decision_is_reported_not_applied(storage: VidrecStorage, tmp_path: Path) -> None:
    pointer = ProductionPointer(storage.paths.registry)
    challenger = pointer.start_challenger("m:2", 0.5, salt="fixed-salt").challenger
    _log(storage, challenger.salt, challenger.started_at, ctr=0.1)
    _table, _check, decision = _run(storage, _policy(tmp_path, enabled=False))
    assert decision.value["action"] == "rollback" and not decision.value["applied"]
    assert pointer.challenger is not None and pointer.tag == "m:1"


def test_promotion_starts_a_challenger_only_when_asked_and_production_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_store, "verify_stored", lambda tag: tmp_path)  # no store entries in this test
    pointer = ProductionPointer(tmp_path)
    first = promote(lambda: "m:1", pointer, challenger_share=0.1)
    assert first.arm == "production" and pointer.tag == "m:1"  # nothing to compare with yet
    second = promote(lambda: "m:2", pointer, challenger_share=0.1)
    assert second.arm == "challenger" and pointer.tag == "m:1" and pointer.challenger.tag == "m:2"


def test_the_assets_materialise_through_the_pipelines_io_managers(tmp_path: Path) -> None:
    root = tmp_path / "state"
    pointer = ProductionPointer(Paths(root).ensure().registry)
    pointer.promote("m:1")
    policy = _policy(tmp_path, enabled=True)
    resources = build_resources(root, tmp_path, "test-key", gate_policy=policy.path)
    selection = [online_experiment, sample_ratio, experiment_decision]
    idle = dg.materialize(selection, resources=resources)  # no experiment: an empty table round-trips
    assert idle.success and idle.output_for_node("experiment_decision")["action"] == "none"
    challenger = pointer.start_challenger("m:2", 0.5, salt="fixed-salt").challenger
    _log(VidrecStorage(root=str(root)), challenger.salt, challenger.started_at, ctr=0.24)
    result = dg.materialize(selection, resources=resources)
    assert result.success and result.output_for_node("experiment_decision")["action"] == "promote"
    assert pointer.tag == "m:2"
    with duckdb.connect(str(Paths(root).warehouse), read_only=True) as con:
        stored = con.execute("SELECT count(*) FROM vidrec.online_experiment WHERE model = 'challenger'").fetchone()
    assert stored[0] >= 5  # impressions, users and the three rates
    # A broken split: the check fails, and the decision still runs in the same materialisation and rolls back.
    broken = pointer.start_challenger("m:3", 0.5, salt="fixed-salt").challenger
    _log(VidrecStorage(root=str(root)), broken.salt, broken.started_at, 0.24, drop_challenger=0.2, tags=("m:2", "m:3"))
    result = dg.materialize(selection, resources=resources, raise_on_error=False)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert result.output_for_node("experiment_decision")["action"] == "rollback"
    assert pointer.tag == "m:2" and pointer.challenger is None


def test_the_experiment_and_the_production_model_carry_freshness_policies() -> None:
    """The UI flags a missed night: the A/B read and the production model warn after 26 h and fail after 48 h."""
    from datetime import timedelta

    from assets.definitions import defs

    for name in ("online_experiment", "promoted_model"):
        spec = next(iter(defs.resolve_assets_def(dg.AssetKey(name)).specs))
        policy = spec.freshness_policy
        assert policy is not None, name
        assert (policy.warn_window.to_timedelta(), policy.fail_window.to_timedelta()) == (
            timedelta(hours=26),
            timedelta(hours=48),
        ), name
