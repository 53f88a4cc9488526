"""The promotion gate's rules and the production pointer's atomic moves and rollback."""

import pandas as pd
import pytest

from vidrec.gate import check_gate, load_policy
from vidrec.registry import ProductionPointer


def _evaluation(candidate_auc: float, candidate_ndcg: float) -> pd.DataFrame:
    return pd.DataFrame([
        {"model": "candidate", "click_auc": candidate_auc, "ndcg_at_10": candidate_ndcg, "ctr_at_10": 0.1},
        {"model": "random", "click_auc": 0.5, "ndcg_at_10": 0.3, "ctr_at_10": 0.05},
    ])


def test_versioned_policy_passes_a_good_candidate() -> None:
    results = check_gate(_evaluation(0.7, 0.5), load_policy())
    assert results and all(r.passed for r in results)


def test_gate_fails_a_candidate_below_the_floor_or_the_random_ordering() -> None:
    results = {r.metric: r for r in check_gate(_evaluation(0.52, 0.2), load_policy())}
    assert not results["click_auc"].passed and results["click_auc"].threshold == 0.55
    assert not results["ndcg_at_10"].passed and results["ndcg_at_10"].threshold == 0.3


def test_missing_metric_fails_rather_than_passes() -> None:
    evaluation = _evaluation(0.7, 0.5).drop(columns=["ctr_at_10"])
    results = {r.metric: r for r in check_gate(evaluation, load_policy())}
    assert not results["ctr_at_10"].passed and results["ctr_at_10"].value is None


def test_pointer_promotes_and_rolls_back(tmp_path) -> None:
    pointer = ProductionPointer(tmp_path)
    assert pointer.tag is None
    pointer.promote("m:1")
    pointer.promote("m:2")
    assert pointer.read().history == ["m:1"]
    assert pointer.rollback().tag == "m:1"
    with pytest.raises(RuntimeError, match="nothing to roll back"):
        pointer.rollback()
    assert not list(tmp_path.glob("*.tmp"))
