"""Catalogue recall@K (the full-ranking metric that needs no non-clicked impressions) against a
hand-written pandas reference, per bootstrap replicate."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from tests.vidrec.eval_fixtures import random_tables
from vidrec.evaluation.metrics import SuiteSettings, evaluate
from vidrec.evaluation.tables import bootstrap_weights, load_table

K, RESAMPLES, SEED, TOL = 5, 3, 5, 1e-9


@pytest.fixture(scope="module")
def result():
    tables = random_tables(seed=3, k=K)
    con = duckdb.connect()
    for name, frame in tables.items():
        load_table(con, name, frame)
    evaluate(con, SuiteSettings(k=K, resamples=RESAMPLES, slices=False, seed=SEED), catalogue_size=60, n_users=40)
    reps = con.execute("SELECT * FROM metric_reps").df()
    con.close()
    weights = bootstrap_weights(tables["impressions"]["user_key"].unique(), RESAMPLES, SEED)
    return tables, reps, weights


def _reference(tables, weights, rep: int, model: str) -> float:
    impressions, top_k = tables["impressions"], tables["top_k"]
    shown = set(zip(top_k.loc[top_k["model"] == model, "session_id"], top_k.loc[top_k["model"] == model, "video_id"]))
    uw = weights[weights["rep"] == rep].set_index("user_key")["w"]
    values, w = [], []
    for session, group in impressions[impressions["clicked"]].groupby("session_id"):
        user_w = float(uw.get(group["user_key"].iloc[0], 0.0))
        if user_w <= 0:
            continue
        clicked = set(group["video_id"])
        values.append(sum((session, v) in shown for v in clicked) / len(clicked))
        w.append(user_w)
    return float(np.average(values, weights=w))


@pytest.mark.parametrize("rep", range(RESAMPLES + 1))
@pytest.mark.parametrize("model", ["candidate", "champion"])
def test_catalogue_recall_matches_pandas(result, rep: int, model: str) -> None:
    tables, reps, weights = result
    got = reps[(reps["rep"] == rep) & (reps["model"] == model) & (reps["slice"] == "all")
               & (reps["metric"] == f"catalogue_recall_at_{K}")]["value"]
    assert len(got) == 1
    expected = _reference(tables, weights, rep, model)
    assert 0 < expected < 1  # the fixture has both hits and misses, so the check can fail
    assert float(got.iloc[0]) == pytest.approx(expected, abs=TOL)
