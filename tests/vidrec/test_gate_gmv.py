"""The gate's GMV rule: GMV@10 (SNIPS) non-inferiority to the champion, decided by
vidrec.evaluation.commerce.gmv_non_inferiority, skipped with the reason on data without orders; and the
GMV@10 rows of the evaluation table (models.offline.gmv) worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.offline.gmv import gmv_rows, orders_share
from vidrec.evaluation.availability import Availability, drop_unsupported
from vidrec.gate import FAIL, NO_CHAMPION, PASS, check_gate, load_policy

METRIC = "gmv_at_10_snips"


def _rule() -> dict:
    return next(r for r in load_policy()["rules"] if r["metric"] == METRIC)


def _table(rel: tuple[float, float, float] | None, orders: float = 1.0, propensity: float = 1.0) -> pd.DataFrame:
    rows = [
        {"slice": "all", "model": "champion", "metric": "click_auc", "value": 0.7, "ci_low": 0.68, "ci_high": 0.72},
        *Availability({"propensity": propensity, "orders": orders}).rows().to_dict("records"),
    ]
    if rel is not None:
        value, low, high = rel
        rows.append(
            {"slice": "all", "model": "candidate_vs_champion", "metric": METRIC, "value": value, "ci_low": low,
             "ci_high": high}
        )  # fmt: skip
    return pd.DataFrame(rows).assign(resamples=100)


def _verdict(table: pd.DataFrame, has_champion: bool = True):
    policy = {"version": 1, "rules": [_rule()]}
    return check_gate(table, policy, has_champion=has_champion)[0]


def test_the_versioned_policy_has_a_gmv_rule_with_a_five_percent_margin() -> None:
    assert _rule()["non_inferior_to_champion"] == 0.05


def test_gmv_rule_passes_and_fails_on_the_lower_bound() -> None:
    passed = _verdict(_table((0.02, -0.04, 0.08)))
    assert passed.verdict == PASS and passed.ci_low == -0.04 and passed.threshold == -0.05
    failed = _verdict(_table((0.02, -0.06, 0.08)))
    assert failed.verdict == FAIL and "0.940 < 0.950" in failed.detail


def test_gmv_rule_is_skipped_with_the_reason_without_orders_or_a_champion() -> None:
    no_orders = _verdict(_table(None, orders=0.0))
    assert no_orders.verdict == "skipped: the hold-out has no orders (no GMV to compare)" and no_orders.passed
    # An evaluation table written before the orders signal existed records no orders either.
    old = _table(None).query("metric != 'holdout_share_orders'")
    assert _verdict(old).verdict.startswith("skipped: the hold-out has no orders")
    assert _verdict(_table(None, propensity=0.0)).verdict == "skipped: source has no propensities"
    assert _verdict(_table((0.0, -0.5, 0.5)), has_champion=False).verdict == NO_CHAMPION


def _holdout() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    impressions = pd.DataFrame(
        {
            "session_id": ["s1", "s1", "s2", "s2"],
            "user_key": ["a", "a", "b", "b"],
            "video_id": ["v1", "v2", "v1", "v3"],
            "propensity": [0.5, 0.25, 0.5, 0.5],
        }
    )
    orders = pd.DataFrame(
        {"session_id": ["s1", "s2"], "video_id": ["v2", "v3"], "quantity": [2, 1], "unit_price": [10.0, 4.0]}
    )
    top_k = pd.DataFrame(
        {
            "model": ["candidate", "candidate", "champion", "champion"],
            "session_id": ["s1", "s2", "s1", "s2"],
            "video_id": ["v2", "v3", "v1", "v3"],
        }
    )
    return impressions, orders, top_k


def test_gmv_rows_by_hand() -> None:
    impressions, orders, top_k = _holdout()
    rows = gmv_rows(impressions, top_k, orders, k=10, resamples=50).set_index("model")
    # candidate hits (s1, v2): w 4, gmv 20 and (s2, v3): w 2, gmv 4 -> SNIPS = 10 * (80 + 8) / 6
    assert rows.loc["candidate", "value"] == pytest.approx(10 * 88 / 6)
    # champion hits (s1, v1): w 2, gmv 0 and (s2, v3): w 2, gmv 4 -> 10 * 8 / 4
    assert rows.loc["champion", "value"] == pytest.approx(20.0)
    assert rows.loc["candidate_vs_champion", "value"] == pytest.approx((88 / 6 * 10 - 20) / 20)
    low, high = rows.loc["candidate", ["ci_low", "ci_high"]]
    assert low <= rows.loc["candidate", "value"] <= high
    assert orders_share(impressions, orders) == 1.0 and orders_share(impressions, orders.iloc[:0]) == 0.0
    assert orders_share(impressions, None) == 0.0


def test_gmv_rows_are_dropped_as_unsupported_without_orders() -> None:
    impressions, orders, top_k = _holdout()
    rows = gmv_rows(impressions, top_k, orders, resamples=10)
    kept, skipped = drop_unsupported(rows, Availability({"propensity": 1.0, "orders": 0.0}))
    assert kept.empty and set(skipped["reason"]) == {"source has no orders"}
    kept, _ = drop_unsupported(rows, Availability({"propensity": 1.0, "orders": 1.0}))
    assert len(kept) == 3 and np.isfinite(kept["value"]).all()


def test_the_simulated_ab_gmv_decides_once_it_exists() -> None:
    policy = load_policy()
    rules = {r["metric"]: r for r in policy["rules"]}
    assert rules[METRIC]["superseded_by"] == "ab_gmv_per_session_at_10"
    ab = {"slice": "all", "model": "candidate_vs_champion", "metric": "ab_gmv_per_session_at_10", "resamples": 100}
    table = pd.concat(
        [_table((0.0, -0.5, 0.5)), pd.DataFrame([{**ab, "value": 0.01, "ci_low": -0.03, "ci_high": 0.05}])]
    )
    results = {r.metric: r for r in check_gate(table, {"version": 1, "rules": [rules[METRIC], rules[ab["metric"]]]})}
    assert results[METRIC].verdict.startswith("skipped: ab_gmv_per_session_at_10 vs the champion decides")
    assert results[ab["metric"]].verdict == PASS
    worse = pd.concat([_table(None), pd.DataFrame([{**ab, "value": -0.02, "ci_low": -0.08, "ci_high": 0.03}])])
    assert check_gate(worse, {"version": 1, "rules": [rules[ab["metric"]]]})[0].verdict == FAIL


def test_ab_gmv_rows_by_hand() -> None:
    from models.offline.gmv import ab_gmv_rows

    top_k = pd.DataFrame(
        {
            "model": ["candidate"] * 3 + ["champion"] * 3,
            "session_id": ["s1", "s1", "s2"] * 2,
            "user_key": ["a", "a", "b"] * 2,
            "video_id": ["v1", "v2", "v1", "v2", "v3", "v2"],
            "oracle_conversion": [0.1, 0.2, 0.1, 0.2, 0.5, 0.2],
        }
    )
    items = pd.DataFrame({"video_id": ["v1", "v2", "v3"], "price": [10.0, 5.0, np.nan]})
    rows = ab_gmv_rows(top_k, items, resamples=20).set_index("model")
    # candidate: s1 = 0.1*10 + 0.2*5 = 2, s2 = 1 -> 1.5 per session; champion: s1 = 1 + 0 (no price), s2 = 1 -> 1
    assert rows.loc["candidate", "value"] == pytest.approx(1.5) and rows.loc["champion", "value"] == pytest.approx(1.0)
    assert rows.loc["candidate_vs_champion", "value"] == pytest.approx(0.5)
    assert ab_gmv_rows(top_k.assign(oracle_conversion=np.nan), items).empty  # not a demo world


def test_warehouse_gmv_rows_match_the_whole_frames() -> None:
    """Offline evaluation keeps the hold-out in DuckDB only (models.offline.batches): the GMV rows it reads
    from there (only the impressions the lists hit, every logged user) are the rows of the whole frames."""
    import duckdb

    from models.offline.gmv import ab_gmv_rows, warehouse_gmv_rows
    from vidrec.evaluation.tables import TABLES, load_table

    rng = np.random.default_rng(3)
    n, videos = 400, [f"v{i}" for i in range(12)]
    impressions = pd.DataFrame(
        {
            "event_id": [f"e{i:04d}" for i in range(n)],
            "session_id": [f"s{i // 8}" for i in range(n)],
            "user_key": [f"u{(i // 8) % 17}" for i in range(n)],
            "video_id": rng.choice(videos, n),
            "propensity": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0.05, 1.0, n)),
        }
    )
    impressions = impressions.assign(**{c: 0 for c in TABLES["impressions"] if c not in impressions})
    sessions = impressions.drop_duplicates("session_id")[["session_id", "user_key"]]
    top_k = pd.concat(
        [
            sessions.assign(model=model, video_id=rng.choice(videos, len(sessions)), rank=1)
            for model in ("candidate", "champion", "random")
            for _ in range(3)
        ],
        ignore_index=True,
    ).assign(oracle_click=0.5, oracle_watch_s=1.0, oracle_conversion=rng.random(3 * 3 * len(sessions)))
    bought = impressions.sample(60, random_state=1)
    orders = bought[["session_id", "video_id"]].assign(quantity=rng.integers(1, 4, 60), unit_price=rng.random(60) * 50)
    items = pd.DataFrame({"video_id": videos, "price": rng.random(len(videos)) * 20})
    con = duckdb.connect()
    load_table(con, "impressions", impressions)
    load_table(con, "top_k", top_k)
    has_orders, gmv, ab_gmv = warehouse_gmv_rows(con, items, orders, k=3, resamples=40, seed=2)
    assert has_orders == 1.0
    expected = gmv_rows(impressions, top_k, orders, k=3, resamples=40, seed=2)
    assert len(expected) == 3 and expected["value"].iloc[:2].gt(0).all()  # both models hit orders
    pd.testing.assert_frame_equal(gmv, expected, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(ab_gmv, ab_gmv_rows(top_k, items, k=3, resamples=40, seed=2))
    assert warehouse_gmv_rows(con, items, orders.assign(session_id="elsewhere"), k=3)[:2] == (0.0, None)
    assert warehouse_gmv_rows(con, items, None, k=3)[:2] == (0.0, None)
