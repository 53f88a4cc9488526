"""The live A/B results (per-arm metrics, differences, SRM) against hand-computed numbers, and the online
promotion stage's decisions."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from vidrec.evaluation.online import (
    DIFFERENCE,
    EXPERIMENT,
    RELATIVE,
    OnlineSettings,
    experiment_rows,
    online_metrics,
    per_arm,
    srm_passed,
    value,
)
from vidrec.experiment import CHALLENGER, arm_for
from vidrec.gate import load_policy
from vidrec.online_stage import OnlineRule, OnlineStage, apply_decision, decide, online_stage
from vidrec.registry import Challenger, ProductionPointer

CHALLENGER_AT = Challenger("m:2", 0.5, "salt", "exp-1", "2026-12-01T00:00:00+00:00", "m:1")


def _hand_frame() -> pd.DataFrame:
    rows = [  # arm, user, position, clicked, watch_s, converted
        ("production", "p1", 0, True, 10.0, False),
        ("production", "p1", 1, False, 0.0, False),
        ("production", "p1", 12, True, 5.0, True),  # beyond position 10: not in CTR@10, in the per-impression rates
        ("production", "p2", 0, False, 0.0, False),
        ("production", "p2", 2, True, 20.0, True),
        ("challenger", "c1", 0, True, 30.0, True),
        ("challenger", "c1", 1, True, 10.0, False),
        ("challenger", "c2", 0, False, 0.0, False),
    ]
    return pd.DataFrame(rows, columns=["arm", "user_key", "position", "clicked", "watch_s", "converted"])


def test_per_arm_metrics_equal_hand_computed_numbers() -> None:
    table = online_metrics(_hand_frame(), CHALLENGER_AT, OnlineSettings(resamples=50))
    expected = {
        ("production", "impressions"): 5,
        ("production", "users"): 2,
        ("production", "ctr_at_10"): 2 / 4,
        ("production", "watch_s_per_impression"): 35 / 5,
        ("production", "conversion_rate"): 2 / 5,
        ("challenger", "impressions"): 3,
        ("challenger", "users"): 2,
        ("challenger", "ctr_at_10"): 2 / 3,
        ("challenger", "watch_s_per_impression"): 40 / 3,
        ("challenger", "conversion_rate"): 1 / 3,
        (DIFFERENCE, "ctr_at_10"): 2 / 3 - 1 / 2,
        (RELATIVE, "ctr_at_10"): (2 / 3 - 1 / 2) / (1 / 2),
        (DIFFERENCE, "watch_s_per_impression"): 40 / 3 - 7,
        (EXPERIMENT, "share"): 0.5,
        (EXPERIMENT, "srm_p_value"): 1.0,  # 2 users against 2: exactly the configured split
    }
    for (model, metric), number in expected.items():
        assert value(table, model, metric) == pytest.approx(number), (model, metric)
    rates = table[table["model"].isin(["production", "challenger", DIFFERENCE]) & table["ci_low"].notna()]
    assert len(rates) == 9 and (rates["ci_low"] <= rates["value"] + 1e-12).all()
    assert (rates["value"] <= rates["ci_high"] + 1e-12).all()
    assert set(table["experiment_id"]) == {"exp-1"}
    shown = per_arm(table)
    assert list(shown["arm"]) == ["production", "challenger", DIFFERENCE, RELATIVE]


def test_rows_are_read_from_logged_impressions_of_the_running_experiment() -> None:
    frame = _hand_frame().assign(ts="2026-12-02T10:00:00+00:00", request_id="r", policy="p", video_id="v")
    frame["model_tag"] = frame["arm"].map({"production": "m:1", "challenger": "m:2"})
    frame["score"], frame["propensity"] = 0.5, 1.0
    frame.loc[0, "ts"] = "2026-11-30T10:00:00+00:00"  # before the experiment started
    frame.loc[5, "model_tag"] = "m:9"  # another model's impression
    frame[["clicked", "converted"]] = frame[["clicked", "converted"]].astype(object)
    frame.loc[7, ["clicked", "watch_s", "converted"]] = None  # shown, no event joined: unclicked
    with duckdb.connect() as con:
        con.register("frame", frame)
        con.execute("CREATE VIEW logged_impressions AS SELECT * FROM frame")
        rows = experiment_rows(con, CHALLENGER_AT)
    assert len(rows) == 6 and rows["clicked"].notna().all() and rows["watch_s"].notna().all()
    with duckdb.connect() as con, pytest.raises(RuntimeError, match="no logged_impressions"):
        experiment_rows(con, CHALLENGER_AT)


def _simulated(n_users: int, share: float, ctr: dict[str, float], drop_challenger: float = 0.0) -> pd.DataFrame:
    """``n_users`` users assigned by arm_for, 10 impressions each at positions 0..9, clicks at each arm's CTR."""
    rng = np.random.default_rng(7)
    users = [f"u{i}" for i in range(n_users)]
    arms = np.array([arm_for(u, CHALLENGER_AT.salt, share) for u in users])
    keep = ~((arms == CHALLENGER) & (rng.random(n_users) < drop_challenger))  # lost challenger users (SRM)
    users, arms = np.repeat(np.array(users)[keep], 10), np.repeat(arms[keep], 10)
    p = np.where(arms == CHALLENGER, ctr["challenger"], ctr["production"])
    clicked = rng.random(len(users)) < p
    return pd.DataFrame(
        {
            "user_key": users,
            "arm": arms,
            "position": np.tile(np.arange(10), len(users) // 10),
            "clicked": clicked,
            "watch_s": np.where(clicked, 30.0, 0.0),
            "converted": False,
        }
    )


STAGE = OnlineStage(
    enabled=True, share=0.5, min_users=1000, min_impressions=5000, rules=(OnlineRule("ctr_at_10", 0.02),)
)


def _table(frame: pd.DataFrame, share: float = 0.5) -> pd.DataFrame:
    challenger = Challenger("m:2", share, "salt", "exp-1", "2026-12-01T00:00:00+00:00", "m:1")
    return online_metrics(frame, challenger, OnlineSettings(resamples=100))


def test_an_injected_sample_ratio_mismatch_fails_the_check_and_rolls_back() -> None:
    healthy = _table(_simulated(10_000, 0.5, {"production": 0.1, "challenger": 0.1}))
    assert srm_passed(healthy) and value(healthy, EXPERIMENT, "srm_p_value") > 0.01
    broken = _table(_simulated(10_000, 0.5, {"production": 0.1, "challenger": 0.1}, drop_challenger=0.1))
    assert not srm_passed(broken) and value(broken, EXPERIMENT, "srm_p_value") < 1e-6
    decision = decide(broken, STAGE)
    assert decision.action == "rollback" and "sample ratio mismatch" in decision.reason


def test_the_online_stage_promotes_a_non_inferior_challenger() -> None:
    decision = decide(_table(_simulated(6000, 0.5, {"production": 0.1, "challenger": 0.12})), STAGE)
    assert decision.action == "promote", decision
    assert decision.rules[0]["ci_low"] > -0.02


def test_the_online_stage_rolls_back_an_inferior_challenger() -> None:
    decision = decide(_table(_simulated(6000, 0.5, {"production": 0.1, "challenger": 0.07})), STAGE)
    assert decision.action == "rollback" and "ctr_at_10" in decision.reason
    assert decision.rules[0]["ci_low"] < -0.02


def test_the_online_stage_waits_below_the_minimum_sample() -> None:
    decision = decide(_table(_simulated(400, 0.5, {"production": 0.1, "challenger": 0.2})), STAGE)
    assert decision.action == "wait" and "users" in decision.reason


def test_decisions_move_the_registry_only_for_the_running_experiment(tmp_path) -> None:
    pointer = ProductionPointer(tmp_path)
    pointer.promote("m:1")
    running = pointer.start_challenger("m:2", 0.5).challenger
    table = _table(_simulated(6000, 0.5, {"production": 0.1, "challenger": 0.12})).assign(
        experiment_id=running.experiment_id
    )
    wait = decide(_table(_simulated(400, 0.5, {"production": 0.1, "challenger": 0.1})), STAGE)
    assert apply_decision(pointer, wait) is None and pointer.challenger is not None
    moved = apply_decision(pointer, decide(table, STAGE))
    assert moved.tag == "m:2" and moved.challenger is None and moved.experiments[-1]["outcome"] == "promoted"


def test_the_versioned_policy_keeps_the_online_stage_off() -> None:
    assert online_stage(load_policy()).enabled is False
    assert online_stage({"version": 1, "rules": []}) == OnlineStage()
    stage = online_stage(
        {"online": {"enabled": True, "share": 0.2, "rules": [{"metric": "ctr_at_10", "non_inferior_margin": 0.01}]}}
    )
    assert stage.enabled and stage.share == 0.2 and stage.rules == (OnlineRule("ctr_at_10", 0.01),)
    for bad in ({"share": 1.0}, {"typo": 1}, {"rules": [{"metric": "ctr_at_10"}]}):
        with pytest.raises(ValueError, match="online"):
            online_stage({"online": bad})
