"""Metrics that need a signal the hold-out lacks are left out with the reason, and the gate skips the
rules on them with that reason instead of failing (metric missing) or passing on a made-up number."""

import numpy as np
import pandas as pd
import pytest

from vidrec.evaluation.availability import (
    SHARE_MODEL,
    Availability,
    drop_unsupported,
    drop_unsupported_reliability,
    needs,
)
from vidrec.evaluation.metrics import headline
from vidrec.gate import FAIL, NO_CHAMPION, PASS, check_gate, load_policy


def _impressions(
    propensity: list, watch_s: list, converted: list, clicked: list, position: list | None = None
) -> pd.DataFrame:
    n = len(clicked)
    return pd.DataFrame(
        {
            "position": pd.array(position or list(range(n)), dtype="Int64"),
            "propensity": pd.array(propensity, dtype="Float64"),
            "watch_s": pd.array(watch_s, dtype="Float64"),
            "converted": pd.array(converted, dtype="boolean"),
            "clicked": clicked,
        }
    )


IMPORTED = _impressions([None] * 4, [None] * 4, [None] * 4, [True] * 4, position=[None] * 4)
LOGGED = _impressions(
    [0.5, 0.2, 0.1, 0.3], [3.0, 0.0, 0.0, 1.0], [True, False, False, False], [True, False, False, True]
)


def test_needs_names_the_signals_behind_each_metric() -> None:
    assert needs("candidate", "ctr_at_10_snips") == {"propensity", "impressions"}
    assert needs("candidate", "watch_s_per_session_at_10_ips") == {"propensity", "watch_s"}
    assert needs("candidate", "conversion_at_10_snips") == {"propensity", "converted"}
    assert needs("candidate", "conversion_auc") == {"converted"}
    assert needs("candidate", "click_auc") == needs("candidate", "ndcg_at_10") == {"impressions"}
    assert needs("logging_policy", "click_auc") == {"impressions", "propensity"}
    assert needs("candidate_vs_logging_policy", "mrr_at_10") == {"impressions", "position"}
    for free in ("coverage_at_10", "novelty_at_10", "scoring_p99_ms", "ab_watch_s_per_session_at_10"):
        assert needs("candidate", free) == frozenset()


def test_shares_are_measured_on_the_hold_out() -> None:
    assert Availability.from_impressions(LOGGED).missing() == {}
    imported = Availability.from_impressions(IMPORTED)
    assert imported.shares == {"position": 0.0, "propensity": 0.0, "watch_s": 0.0, "converted": 0.0, "impressions": 0.0}
    assert imported.missing()["propensity"] == "source has no propensities"
    assert imported.missing()["impressions"] == "source has no non-clicked impressions (positives only)"
    partial = Availability.from_impressions(LOGGED.assign(propensity=pd.array([0.5, None, 0.1, 0.3], "Float64")))
    assert partial.missing() == {"propensity": "propensities missing on 25.0% of hold-out impressions"}
    with pytest.raises(ValueError, match="empty"):
        Availability.from_impressions(LOGGED.iloc[:0])


def _row(model: str, metric: str, value: float, slice_: str = "all") -> dict:
    return {
        "slice": slice_,
        "model": model,
        "metric": metric,
        "value": value,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "resamples": 0,
    }


def _suite_output() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _row("candidate", "click_auc", 0.5),
            _row("candidate", "click_auc", 0.5, "cold_item=true"),
            _row("candidate", "ndcg_at_10", 1.0),
            _row("random", "ndcg_at_10", 1.0),
            _row("candidate", "ctr_at_10_snips", 1.0),
            _row("random", "ctr_at_10_snips", 1.0),
            _row("candidate", "coverage_at_10", 0.4),
            _row("candidate", "scoring_p99_ms", 12.0),
        ]
    )


def test_unsupported_metrics_are_dropped_with_their_reason() -> None:
    kept, skipped = drop_unsupported(_suite_output(), Availability.from_impressions(IMPORTED))
    assert set(kept["metric"]) == {"coverage_at_10", "scoring_p99_ms"}
    reasons = skipped.set_index("metric")
    assert reasons.loc["ctr_at_10_snips", "models"] == "candidate, random"
    assert reasons.loc["ctr_at_10_snips", "reason"] == (
        "source has no propensities; source has no non-clicked impressions (positives only)"
    )
    assert len(kept) + 6 == len(_suite_output())  # every row is kept or accounted for
    everything, none = drop_unsupported(_suite_output(), Availability.from_impressions(LOGGED))
    assert len(everything) == len(_suite_output()) and none.empty


def test_reliability_bins_of_missing_heads_are_dropped() -> None:
    bins = pd.DataFrame(
        {
            "model": ["candidate", "candidate", "logging_policy"],
            "head": ["click", "conversion", "click"],
            "bin": 0,
            "n": 1,
            "mean_pred": 0.5,
            "observed": 1.0,
        }
    )
    no_conversion = Availability.from_impressions(
        LOGGED.assign(converted=pd.array([None] * 4, "boolean"), propensity=pd.array([None] * 4, "Float64"))
    )
    kept = drop_unsupported_reliability(bins, no_conversion)
    assert list(zip(kept["model"], kept["head"])) == [("candidate", "click")]


def _evaluated(impressions: pd.DataFrame) -> pd.DataFrame:
    availability = Availability.from_impressions(impressions)
    kept, _ = drop_unsupported(_suite_output(), availability)
    return pd.concat([kept, availability.rows()], ignore_index=True)


def test_gate_skips_rules_on_missing_signals_with_the_reason() -> None:
    results = {r.name: r for r in check_gate(_evaluated(IMPORTED), load_policy())}
    snips = results["off-policy CTR@10 (SNIPS) beats a random top 10"]
    assert snips.verdict == (
        "skipped: source has no propensities; source has no non-clicked impressions (positives only)"
    )
    assert snips.passed and snips.value is None
    assert results["click AUC floor"].verdict == "skipped: source has no non-clicked impressions (positives only)"
    watch = results["watch time per session (SNIPS) not worse than the champion by more than 1% at 95%"]
    assert watch.verdict == "skipped: source has no propensities; source has no watch times"
    assert results["scoring latency p99 on a fixed batch of 1024 impressions within budget"].verdict == PASS
    # A rule on a metric the data supports is still judged: a slow scorer fails.
    slow = _evaluated(IMPORTED)
    slow.loc[slow["metric"] == "scoring_p99_ms", "value"] = 900.0
    assert {r.name: r.verdict for r in check_gate(slow, load_policy())}[
        "scoring latency p99 on a fixed batch of 1024 impressions within budget"
    ] == FAIL


def test_gate_without_share_rows_or_with_every_signal_judges_every_rule() -> None:
    for table in (_suite_output(), _evaluated(LOGGED)):  # old tables have no `holdout` rows
        verdicts = {r.name: r.verdict for r in check_gate(table, load_policy())}
        assert not any(v.startswith("skipped: source") for v in verdicts.values())
        assert verdicts["click AUC floor"] == FAIL  # 0.5 < 0.55: judged, not skipped
        assert verdicts["click AUC not worse than the champion by more than 1% at 95%"] == NO_CHAMPION


def test_shares_travel_in_the_evaluation_table() -> None:
    table = _evaluated(IMPORTED)
    rows = table[table["model"] == SHARE_MODEL]
    assert len(rows) == 5 and rows["metric"].str.startswith("holdout_share_").all()
    assert Availability.from_table(table) == Availability.from_impressions(IMPORTED)
    assert Availability.from_table(_suite_output()) is None
    # The shares describe the data, not a model: the per-model headline view leaves them out.
    assert SHARE_MODEL not in set(headline(table)["model"])
