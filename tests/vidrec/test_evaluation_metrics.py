"""The DuckDB metric suite against independent references (scikit-learn, NumPy, hand-worked), to 1e-9:
prediction and ranking metrics. Each metric is checked at the point estimate (replicate 0) and at
bootstrap replicates, where the reference applies the same per-user Poisson weights as ``sample_weight``.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, ndcg_score, roc_auc_score

from tests.vidrec.eval_fixtures import CHECKED_REPS, TOL, K, joined, loaded, random_tables, rep_value, user_weights
from vidrec.evaluation.metrics import SuiteSettings, evaluate


@pytest.mark.parametrize("model", ["candidate", "champion"])
@pytest.mark.parametrize("rep", CHECKED_REPS)
def test_prediction_metrics_match_sklearn(suite, model: str, rep: int) -> None:
    tables, _, reps, weights = suite
    rows = joined(tables, model)
    w = rows["user_key"].map(user_weights(weights, rep)).to_numpy()
    for head, label, pred in (("click", "clicked", "p_click"), ("conversion", "converted", "p_conversion")):
        y, p = rows[label].to_numpy(int), rows[pred].to_numpy(float)
        keep = w > 0
        assert rep_value(reps, rep, model, f"{head}_auc") == pytest.approx(
            roc_auc_score(y[keep], p[keep], sample_weight=w[keep]), abs=TOL
        )
        assert rep_value(reps, rep, model, f"{head}_logloss") == pytest.approx(
            log_loss(y[keep], p[keep], sample_weight=w[keep]), abs=TOL
        )
        # ECE by hand: equal-width bins, |sum(label) - sum(pred)| per bin over all weighted rows.
        bins = np.minimum((p * 10).astype(int), 9)
        ece = sum(abs(np.sum(w[bins == b] * (y[bins == b] - p[bins == b]))) for b in range(10)) / w.sum()
        assert rep_value(reps, rep, model, f"{head}_ece") == pytest.approx(ece, abs=TOL)
        # GAUC: per-user AUC (users with both classes), weighted by impressions x replicate weight.
        num = den = 0.0
        for user, group in rows.groupby("user_key"):
            uw = user_weights(weights, rep)[user]
            if uw > 0 and group[label].nunique() == 2:
                num += uw * len(group) * roc_auc_score(group[label].astype(int), group[pred])
                den += uw * len(group)
        assert rep_value(reps, rep, model, f"{head}_gauc") == pytest.approx(num / den, abs=TOL)


def _hit_metrics(top: np.ndarray, clicks: int) -> dict[str, float]:
    """Precision, recall, hit rate and MRR @K of one session from the gains of its top K in rank order."""
    return {
        "precision": top.sum() / K,
        "recall": top.sum() / clicks,
        "hitrate": float(top.sum() > 0),
        "mrr": 1.0 / (np.argmax(top) + 1) if top.sum() else 0.0,
    }


@pytest.mark.parametrize("rep", CHECKED_REPS)
def test_ranking_metrics_match_sklearn_and_numpy(suite, rep: int) -> None:
    tables, _, reps, weights = suite
    rows = joined(tables, "candidate")
    uw = user_weights(weights, rep)
    values = {m: [] for m in ("ndcg", "precision", "recall", "hitrate", "mrr")}
    session_w = []
    for _, group in rows.groupby("session_id"):
        clicks = group["clicked"].to_numpy(int)
        if clicks.sum() == 0 or uw[group["user_key"].iloc[0]] == 0:
            continue
        order = np.argsort(-group["score"].to_numpy(), kind="stable")
        top = clicks[order][:K]
        values["ndcg"].append(ndcg_score([clicks], [group["score"].to_numpy()], k=K))
        for metric, value in _hit_metrics(top, clicks.sum()).items():
            values[metric].append(value)
        session_w.append(uw[group["user_key"].iloc[0]])
    for metric, per_session in values.items():
        expected = np.average(per_session, weights=session_w)
        assert rep_value(reps, rep, "candidate", f"{metric}_at_{K}") == pytest.approx(expected, abs=TOL), metric


def _hand_tables(videos: list, clicked: list, score: list, p_click=0.5, session="s", **columns) -> dict:
    """Impressions and model ``m``'s scores for a hand-worked case: user ``u``, propensity 0.1, no watch
    time or conversions, every slice flag off; ``session`` is one id (None allowed) or one per row, and
    ``columns`` override impression columns."""
    n = len(videos)
    impressions = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "session_id": pd.Series(session if isinstance(session, list) else [session] * n, dtype=object),
            "user_key": "u",
            "video_id": videos,
            "position": range(n),
            "propensity": 0.1,
            "clicked": pd.Series(clicked, dtype=object if None in clicked else bool),
            "watch_s": 0.0,
            "converted": False,
            "cold_item": False,
            "new_user": False,
            "category": "music",
            "is_product": False,
            "is_live_host": False,
            **columns,
        }
    )
    scores = pd.DataFrame(
        {
            "model": "m",
            "event_id": impressions["event_id"],
            "p_click": p_click,
            "p_watch_s": 1.0,
            "p_conversion": 0.01,
            "score": score,
        }
    )
    return {"impressions": impressions, "scores": scores}


def test_ranking_metrics_by_hand() -> None:
    # One session of three, the only click at rank 2: NDCG@2 = 1/log2(3), P@2 = 1/2, R@2 = 1, MRR@2 = 1/2.
    con = loaded(
        _hand_tables(
            ["v1", "v2", "v3"], [False, True, False], [0.9, 0.5, 0.1], p_click=[0.9, 0.5, 0.1], watch_s=[0.0, 3.0, 0.0]
        )
    )
    table = evaluate(con, SuiteSettings(k=2, resamples=0, slices=False)).table.set_index("metric")["value"]
    assert table["ndcg_at_2"] == pytest.approx(1 / np.log2(3), abs=1e-12)
    assert table["precision_at_2"] == pytest.approx(0.5, abs=1e-12)
    assert table["recall_at_2"] == table["hitrate_at_2"] == 1.0
    assert table["mrr_at_2"] == pytest.approx(0.5, abs=1e-12)
    assert table["click_auc"] == 0.5  # the click sits between the two non-clicks


def test_tied_scores_rank_by_video_id_and_short_sessions_have_fewer_slots() -> None:
    # Session s1: four items all scored 0.5, clicks on v2 and v4 -> by video_id the ranks are 2 and 4, so
    # with K = 3 only v2 is in the top: DCG = 1/log2(3), ideal (2 clicks) = 1 + 1/log2(3), MRR = 1/2.
    # Session s2 has two items (fewer than K), the click ranked 1st: every metric is 1 but P@3 = 1/3.
    con = loaded(
        _hand_tables(
            ["v3", "v1", "v4", "v2", "v9", "v8"],
            [False, False, True, True, True, False],
            [0.5, 0.5, 0.5, 0.5, 0.9, 0.2],
            session=["s1"] * 4 + ["s2"] * 2,
            position=[0, 1, 2, 3, 0, 1],
        )
    )
    table = evaluate(con, SuiteSettings(k=3, resamples=0, slices=False)).table.set_index("metric")["value"]
    s1_ndcg = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert table["ndcg_at_3"] == pytest.approx((s1_ndcg + 1.0) / 2, abs=1e-12)
    assert table["precision_at_3"] == pytest.approx((1 / 3 + 1 / 3) / 2, abs=1e-12)
    assert table["recall_at_3"] == pytest.approx((1 / 2 + 1.0) / 2, abs=1e-12)
    assert table["mrr_at_3"] == pytest.approx((1 / 2 + 1.0) / 2, abs=1e-12)
    assert table["hitrate_at_3"] == 1.0


def test_many_tied_scores_rank_exactly_like_a_full_sort() -> None:
    """Scores on a coarse grid tie inside sessions' top K and across its boundary: sessions with such ties
    take ranking.sql's exact path, the others its score-only heap; both must equal a full sort by
    (score descending, video_id)."""
    tables = random_tables(seed=5, k=K, models=("m",))
    scores = tables["scores"]
    even = tables["impressions"]["session_id"].str[-1].astype(int).to_numpy() % 2 == 0
    scores.loc[even, "score"] = np.round(scores.loc[even, "score"] * 10) / 10  # even sessions get ties
    rows = joined(tables, "m").sort_values(["session_id", "score", "video_id"], ascending=[True, False, True])
    best = rows.groupby("session_id")["score"].apply(lambda s: s.to_numpy()[: K + 1])
    tied = best.apply(lambda s: bool((s[1:] == s[:-1]).any()))
    assert 0 < tied.sum() < len(tied)  # both paths are exercised
    values = {m: [] for m in ("ndcg", "precision", "recall", "hitrate", "mrr")}
    for _, group in rows.groupby("session_id"):
        clicks = group["clicked"].to_numpy(int)
        if clicks.sum() == 0:
            continue
        top = clicks[:K]
        values["ndcg"].append(
            np.sum(top / np.log2(np.arange(2, len(top) + 2)))
            / np.sum(1 / np.log2(np.arange(2, min(clicks.sum(), K) + 2)))
        )
        for metric, value in _hit_metrics(top, clicks.sum()).items():
            values[metric].append(value)
    con = loaded({"impressions": tables["impressions"], "scores": scores})
    table = evaluate(con, SuiteSettings(k=K, resamples=0, slices=False)).table.set_index("metric")["value"]
    for metric, per_session in values.items():
        assert table[f"{metric}_at_{K}"] == pytest.approx(np.mean(per_session), abs=TOL), metric


@pytest.mark.parametrize(
    "session, videos, clicks, score, expected",
    [
        # a NULL session id is still one session: the tie at 0.5 goes to v1, the click -> every metric 1
        (None, ["v2", "v1", "v3"], [False, True, False], [0.5, 0.5, 0.1], 1.0),
        # a row whose click is NULL is not ranked (arg_min skips NULL values); the tie at 0.5 still goes to
        # v1, which was not clicked -> every metric 0
        ("s", ["v0", "v2", "v1", "v3"], [None, True, False, True], [0.9, 0.5, 0.5, 0.1], 0.0),
    ],
)
def test_ties_break_on_video_id_next_to_null_sessions_and_clicks(session, videos, clicks, score, expected) -> None:
    # v2 is listed before v1, so breaking the tie by arrival order would pick the wrong item.
    con = loaded(_hand_tables(videos, clicks, score, session=session))
    table = evaluate(con, SuiteSettings(k=1, resamples=0, slices=False)).table.set_index("metric")["value"]
    for metric in ("ndcg", "precision", "recall", "hitrate", "mrr"):
        assert table[f"{metric}_at_1"] == pytest.approx(expected, abs=1e-12), metric


def test_an_item_logged_twice_in_a_session_is_one_relevant_item_and_two_weighted_impressions() -> None:
    # Session s logs v1 twice (clicked both times), v2 (clicked) and v3; the top 2 is [v1, v3].
    # Catalogue recall: distinct clicked items {v1, v2}, of which the top 2 holds v1 -> 1/2.
    # Off-policy: every logged impression of a chosen item weighs min(1 / (2 * 0.1), 100) = 5, so
    # sum(w) = 15 over v1, v1, v3 and the clicks weigh 10: SNIPS CTR = 10/15, IPS CTR = 10 / 4 slots.
    tables = _hand_tables(["v1", "v1", "v2", "v3"], [True, True, True, False], [0.4, 0.3, 0.2, 0.1])
    top_k = pd.DataFrame(
        {
            "model": "m",
            "session_id": "s",
            "user_key": "u",
            "video_id": ["v1", "v3"],
            "rank": [1, 2],
            "oracle_click": np.nan,
            "oracle_watch_s": np.nan,
            "oracle_conversion": np.nan,
        }
    )
    catalogue = pd.DataFrame({"video_id": ["v1", "v2", "v3"], "engaged_users": 1})
    con = loaded({**tables, "top_k": top_k, "catalogue": catalogue})
    table = evaluate(con, SuiteSettings(k=2, resamples=0, slices=False), catalogue_size=3, n_users=1).table
    values = table[table["model"] == "m"].set_index("metric")["value"]
    assert values["catalogue_recall_at_2"] == pytest.approx(0.5, abs=1e-12)
    assert values["ctr_at_2_snips"] == pytest.approx(10 / 15, abs=1e-12)
    assert values["ctr_at_2_ips"] == pytest.approx(10 / 4, abs=1e-12)
