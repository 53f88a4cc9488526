"""The DuckDB metric suite against independent references, to 1e-9: off-policy, catalogue, simulated A/B,
intervals, slices, options and input errors (replicate weights as in test_evaluation_metrics.py).
"""

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tests.vidrec.eval_fixtures import (
    RESAMPLES,
    TOL,
    K,
    joined,
    loaded,
    random_tables,
    rep_value,
)
from vidrec.evaluation.metrics import SuiteSettings, evaluate, headline
from vidrec.evaluation.tables import bootstrap_weights, load_table


def test_intervals_are_numpy_percentiles_of_the_replicates(suite) -> None:
    _, result, reps, _ = suite
    table = result.table
    for metric in ("click_auc", f"ndcg_at_{K}", f"ctr_at_{K}_snips"):
        row = table[(table["model"] == "candidate") & (table["metric"] == metric) & (table["slice"] == "all")].iloc[0]
        boot = [rep_value(reps, r, "candidate", metric) for r in range(1, RESAMPLES + 1)]
        assert row["value"] == pytest.approx(rep_value(reps, 0, "candidate", metric), abs=TOL)
        assert row["ci_low"] == pytest.approx(np.percentile(boot, 2.5), abs=TOL)
        assert row["ci_high"] == pytest.approx(np.percentile(boot, 97.5), abs=TOL)
        assert row["resamples"] == RESAMPLES
        paired = table[(table["model"] == "candidate_vs_champion") & (table["metric"] == metric)].iloc[0]
        rel = [
            (rep_value(reps, r, "candidate", metric) - rep_value(reps, r, "champion", metric))
            / abs(rep_value(reps, r, "champion", metric))
            for r in range(RESAMPLES + 1)
        ]
        assert paired["value"] == pytest.approx(rel[0], abs=TOL)
        assert paired["ci_low"] == pytest.approx(np.percentile(rel[1:], 2.5), abs=TOL)


def test_slices_are_the_metric_restricted_to_their_rows(suite) -> None:
    tables, _, reps, _ = suite
    rows = joined(tables, "candidate")
    for slice_, mask in (
        ("cold_item=true", rows["cold_item"]),
        ("new_user=true", rows["new_user"]),
        ("category=music", rows["category"] == "music"),
        ("is_product=false", ~rows["is_product"]),
        ("is_live_host=true", rows["is_live_host"]),
    ):
        part = rows[mask]
        assert rep_value(reps, 0, "candidate", "click_auc", slice_) == pytest.approx(
            roc_auc_score(part["clicked"], part["p_click"]), abs=TOL
        ), slice_


def test_headline_has_the_stable_names(suite) -> None:
    _, result, _, _ = suite
    wide = headline(result.table, k=K).set_index("model")
    assert wide.loc["candidate", f"ctr_at_{K}"] == wide.loc["candidate", f"ctr_at_{K}_snips"]
    assert {"candidate", "champion", "logging_policy"} == set(wide.index)


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="scores frame lacks columns"):
        load_table(duckdb.connect(), "scores", pd.DataFrame({"model": ["m"]}))


def test_empty_holdout_is_a_clear_error() -> None:
    con = duckdb.connect()
    tables = random_tables(sessions=2)
    load_table(con, "impressions", tables["impressions"].iloc[:0])
    load_table(con, "scores", tables["scores"])
    with pytest.raises(ValueError, match="hold-out window has no events"):
        evaluate(con, SuiteSettings(resamples=0))


def test_reliability_bins_match_numpy(suite) -> None:
    tables, result, _, _ = suite
    rows = joined(tables, "candidate")
    bins = np.minimum((rows["p_click"].to_numpy() * 10).astype(int), 9)
    got = result.reliability.query("model == 'candidate' and head == 'click'").set_index("bin")
    for b in np.unique(bins):
        part = rows[bins == b]
        assert got.loc[b, "n"] == len(part)
        assert got.loc[b, "mean_pred"] == pytest.approx(part["p_click"].mean(), abs=TOL)
        assert got.loc[b, "observed"] == pytest.approx(part["clicked"].mean(), abs=TOL)


def test_options_leave_out_only_the_extras(suite) -> None:
    """reliability=False and logging_policy=False drop exactly those outputs; every other row is unchanged."""
    tables, result, _, _ = suite
    con = loaded(tables)
    lean = evaluate(
        con,
        SuiteSettings(k=K, resamples=RESAMPLES, seed=11, reliability=False, logging_policy=False),
        catalogue_size=60,
        n_users=40,
    )
    assert lean.reliability.empty and list(lean.reliability.columns) == list(result.reliability.columns)
    assert "logging_policy" not in set(lean.table["model"])
    full = result.table[~result.table["model"].str.contains("logging_policy")]
    keys = ["slice", "model", "metric"]
    merged = full.merge(lean.table, on=keys, suffixes=("", "_lean"), how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    for column in ("value", "ci_low", "ci_high"):
        assert np.allclose(merged[column], merged[f"{column}_lean"], atol=TOL, equal_nan=True), column


def test_point_estimate_without_replicates_equals_replicate_zero(suite) -> None:
    """resamples=0 takes the join-free replicate-0 branches; the values are those of the bootstrap run's rep 0."""
    tables, _, reps, _ = suite
    con = loaded(tables)
    point = evaluate(con, SuiteSettings(k=K, resamples=0, seed=11), catalogue_size=60, n_users=40).table
    assert (point["resamples"] == 0).all()
    rep0 = reps[reps["rep"] == 0].set_index(["slice", "model", "metric"])["value"]
    got = point[~point["model"].str.contains("_vs_")].set_index(["slice", "model", "metric"])["value"]
    assert set(got.index) == set(rep0.index)
    assert np.allclose(got.sort_index(), rep0.sort_index(), atol=TOL, equal_nan=True)


def test_packed_key_keeps_users_and_models_apart() -> None:
    """Large sparse integer user keys (the string keys of the other tests are covered by the fixture), users
    whose keys sort differently from their first appearance, and a second model: per-user AUC must not mix
    users or models (the window partitions on one packed BIGINT)."""
    rng = np.random.default_rng(5)
    n = 400
    users = rng.integers(0, 30, n) * 7919 + 10**12  # large, sparse integer keys
    impressions = pd.DataFrame(
        {
            "event_id": np.arange(n),
            "session_id": np.arange(n) // 8,
            "user_key": users,
            "video_id": rng.integers(0, 50, n),
            "position": np.arange(n) % 8,
            "propensity": 0.1,
            "clicked": rng.random(n) < 0.3,
            "watch_s": 0.0,
            "converted": rng.random(n) < 0.1,
            "cold_item": False,
            "new_user": False,
            "category": "c",
            "is_product": False,
            "is_live_host": False,
        }
    )
    impressions["user_key"] = impressions.groupby("session_id")["user_key"].transform("first")
    scores = pd.concat(
        [
            pd.DataFrame(
                {
                    "model": model,
                    "event_id": impressions["event_id"],
                    "p_click": np.round(rng.random(n), 1),
                    "p_watch_s": 1.0,
                    "p_conversion": np.round(rng.random(n), 1),
                    "score": rng.random(n),
                }
            )
            for model in ("a", "b")
        ],
        ignore_index=True,
    )
    con = loaded({"impressions": impressions, "scores": scores})
    table = evaluate(con, SuiteSettings(k=3, resamples=0, slices=False), baselines=()).table
    for model in ("a", "b"):
        rows = scores[scores["model"] == model].merge(impressions, on="event_id")
        for head, label, pred in (("click", "clicked", "p_click"), ("conversion", "converted", "p_conversion")):
            num = den = 0.0
            for _, group in rows.groupby("user_key"):
                if group[label].nunique() == 2:
                    num += len(group) * roc_auc_score(group[label], group[pred])
                    den += len(group)
            got = table[(table["model"] == model) & (table["metric"] == f"{head}_gauc")]["value"].iloc[0]
            assert got == pytest.approx(num / den, abs=TOL), (model, head)


def test_empty_or_unnamed_scores_are_clear_errors() -> None:
    tables = random_tables(sessions=4)
    con = duckdb.connect()
    load_table(con, "impressions", tables["impressions"])
    load_table(con, "scores", tables["scores"].iloc[:0])
    with pytest.raises(ValueError, match="scores table is empty"):
        evaluate(con, SuiteSettings(resamples=0))
    load_table(con, "scores", tables["scores"].assign(model=None))
    with pytest.raises(ValueError, match="rows without a model name"):
        evaluate(con, SuiteSettings(resamples=0))


def test_user_weights_must_keep_the_point_estimate_unweighted() -> None:
    from vidrec.evaluation.tables import load_weights

    weights = bootstrap_weights(np.array(["a", "b", "c"]), 2, seed=1)
    con = duckdb.connect()
    load_weights(con, weights)  # the suite's own weights load
    skewed = weights.copy()
    skewed.loc[skewed["rep"] == 0, "w"] = 2.0
    with pytest.raises(ValueError, match="replicate 0 must weigh every user exactly 1"):
        load_weights(con, skewed)
    stray = pd.concat([weights, pd.DataFrame({"rep": [1], "user_key": ["d"], "u": [3], "w": [1.0]})])
    with pytest.raises(ValueError, match="every replicate's users must be among them"):
        load_weights(con, stray)
    with pytest.raises(ValueError, match="lack column"):
        load_weights(con, weights.drop(columns="u"))
