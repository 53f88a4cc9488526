"""The DuckDB metric suite against independent references (scikit-learn, NumPy, hand-worked), to 1e-9.

Each metric is checked at the point estimate (replicate 0) and at bootstrap replicates, where the
reference applies the same per-user Poisson weights as ``sample_weight``.
"""

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, ndcg_score, roc_auc_score

from tests.vidrec.eval_fixtures import random_tables
from vidrec.evaluation.metrics import SuiteSettings, evaluate, headline
from vidrec.evaluation.tables import bootstrap_weights, load_table

K, RESAMPLES, TOL = 5, 20, 1e-9
CHECKED_REPS = (0, 1, 7, 20)


def _loaded(tables: dict[str, pd.DataFrame]) -> duckdb.DuckDBPyConnection:
    """A fresh connection holding ``tables`` (name -> frame) as the suite's input tables."""
    con = duckdb.connect()
    for name, frame in tables.items():
        load_table(con, name, frame)
    return con


@pytest.fixture(scope="module")
def suite():
    tables = random_tables(seed=3, k=K)
    con = _loaded(tables)
    result = evaluate(con, SuiteSettings(k=K, resamples=RESAMPLES, seed=11), catalogue_size=60, n_users=40)
    reps = con.execute("SELECT * FROM metric_reps").df()
    weights = bootstrap_weights(tables["impressions"]["user_key"].unique(), RESAMPLES, 11)
    return tables, result, reps, weights


def _rep(reps: pd.DataFrame, rep: int, model: str, metric: str, slice_: str = "all") -> float:
    row = reps[(reps["rep"] == rep) & (reps["model"] == model) & (reps["metric"] == metric) & (reps["slice"] == slice_)]
    assert len(row) == 1, (rep, model, metric, slice_)
    return float(row["value"].iloc[0])


def _user_w(weights: pd.DataFrame, rep: int) -> dict[str, float]:
    rows = weights[weights["rep"] == rep]
    return dict(zip(rows["user_key"], rows["w"]))


def _joined(tables: dict, model: str) -> pd.DataFrame:
    scores = tables["scores"][tables["scores"]["model"] == model]
    return scores.merge(tables["impressions"], on="event_id")


@pytest.mark.parametrize("model", ["candidate", "champion"])
@pytest.mark.parametrize("rep", CHECKED_REPS)
def test_prediction_metrics_match_sklearn(suite, model: str, rep: int) -> None:
    tables, _, reps, weights = suite
    rows = _joined(tables, model)
    w = rows["user_key"].map(_user_w(weights, rep)).to_numpy()
    for head, label, pred in (("click", "clicked", "p_click"), ("conversion", "converted", "p_conversion")):
        y, p = rows[label].to_numpy(int), rows[pred].to_numpy(float)
        keep = w > 0
        assert _rep(reps, rep, model, f"{head}_auc") == pytest.approx(
            roc_auc_score(y[keep], p[keep], sample_weight=w[keep]), abs=TOL)
        assert _rep(reps, rep, model, f"{head}_logloss") == pytest.approx(
            log_loss(y[keep], p[keep], sample_weight=w[keep]), abs=TOL)
        # ECE by hand: equal-width bins, |sum(label) - sum(pred)| per bin over all weighted rows.
        bins = np.minimum((p * 10).astype(int), 9)
        ece = sum(abs(np.sum(w[bins == b] * (y[bins == b] - p[bins == b]))) for b in range(10)) / w.sum()
        assert _rep(reps, rep, model, f"{head}_ece") == pytest.approx(ece, abs=TOL)
        # GAUC: per-user AUC (users with both classes), weighted by impressions x replicate weight.
        num = den = 0.0
        for user, group in rows.groupby("user_key"):
            uw = _user_w(weights, rep)[user]
            if uw > 0 and group[label].nunique() == 2:
                num += uw * len(group) * roc_auc_score(group[label].astype(int), group[pred])
                den += uw * len(group)
        assert _rep(reps, rep, model, f"{head}_gauc") == pytest.approx(num / den, abs=TOL)


def _hit_metrics(top: np.ndarray, clicks: int) -> dict[str, float]:
    """Precision, recall, hit rate and MRR @K of one session from the gains of its top K in rank order."""
    return {"precision": top.sum() / K, "recall": top.sum() / clicks, "hitrate": float(top.sum() > 0),
            "mrr": 1.0 / (np.argmax(top) + 1) if top.sum() else 0.0}


@pytest.mark.parametrize("rep", CHECKED_REPS)
def test_ranking_metrics_match_sklearn_and_numpy(suite, rep: int) -> None:
    tables, _, reps, weights = suite
    rows = _joined(tables, "candidate")
    uw = _user_w(weights, rep)
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
        assert _rep(reps, rep, "candidate", f"{metric}_at_{K}") == pytest.approx(expected, abs=TOL), metric


def _hand_tables(videos: list, clicked: list, score: list, p_click=0.5, session="s", **columns) -> dict:
    """Impressions and model ``m``'s scores for a hand-worked case: user ``u``, propensity 0.1, no watch
    time or conversions, every slice flag off; ``session`` is one id (None allowed) or one per row, and
    ``columns`` override impression columns."""
    n = len(videos)
    impressions = pd.DataFrame({
        "event_id": [f"e{i}" for i in range(n)],
        "session_id": pd.Series(session if isinstance(session, list) else [session] * n, dtype=object),
        "user_key": "u", "video_id": videos, "position": range(n), "propensity": 0.1,
        "clicked": pd.Series(clicked, dtype=object if None in clicked else bool), "watch_s": 0.0,
        "converted": False, "cold_item": False, "new_user": False, "category": "music", "is_product": False,
        "is_live_host": False, **columns})
    scores = pd.DataFrame({"model": "m", "event_id": impressions["event_id"], "p_click": p_click, "p_watch_s": 1.0,
                           "p_conversion": 0.01, "score": score})
    return {"impressions": impressions, "scores": scores}


def test_ranking_metrics_by_hand() -> None:
    # One session of three, the only click at rank 2: NDCG@2 = 1/log2(3), P@2 = 1/2, R@2 = 1, MRR@2 = 1/2.
    con = _loaded(_hand_tables(["v1", "v2", "v3"], [False, True, False], [0.9, 0.5, 0.1], p_click=[0.9, 0.5, 0.1],
                               watch_s=[0.0, 3.0, 0.0]))
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
    con = _loaded(_hand_tables(["v3", "v1", "v4", "v2", "v9", "v8"], [False, False, True, True, True, False],
                               [0.5, 0.5, 0.5, 0.5, 0.9, 0.2], session=["s1"] * 4 + ["s2"] * 2,
                               position=[0, 1, 2, 3, 0, 1]))
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
    rows = _joined(tables, "m").sort_values(["session_id", "score", "video_id"], ascending=[True, False, True])
    best = rows.groupby("session_id")["score"].apply(lambda s: s.to_numpy()[:K + 1])
    tied = best.apply(lambda s: bool((s[1:] == s[:-1]).any()))
    assert 0 < tied.sum() < len(tied)  # both paths are exercised
    values = {m: [] for m in ("ndcg", "precision", "recall", "hitrate", "mrr")}
    for _, group in rows.groupby("session_id"):
        clicks = group["clicked"].to_numpy(int)
        if clicks.sum() == 0:
            continue
        top = clicks[:K]
        values["ndcg"].append(np.sum(top / np.log2(np.arange(2, len(top) + 2)))
                              / np.sum(1 / np.log2(np.arange(2, min(clicks.sum(), K) + 2))))
        for metric, value in _hit_metrics(top, clicks.sum()).items():
            values[metric].append(value)
    con = _loaded({"impressions": tables["impressions"], "scores": scores})
    table = evaluate(con, SuiteSettings(k=K, resamples=0, slices=False)).table.set_index("metric")["value"]
    for metric, per_session in values.items():
        assert table[f"{metric}_at_{K}"] == pytest.approx(np.mean(per_session), abs=TOL), metric


@pytest.mark.parametrize("session, videos, clicks, score, expected", [
    # a NULL session id is still one session: the tie at 0.5 goes to v1, the click -> every metric 1
    (None, ["v2", "v1", "v3"], [False, True, False], [0.5, 0.5, 0.1], 1.0),
    # a row whose click is NULL is not ranked (arg_min skips NULL values); the tie at 0.5 still goes to
    # v1, which was not clicked -> every metric 0
    ("s", ["v0", "v2", "v1", "v3"], [None, True, False, True], [0.9, 0.5, 0.5, 0.1], 0.0),
])
def test_ties_break_on_video_id_next_to_null_sessions_and_clicks(session, videos, clicks, score, expected) -> None:
    # v2 is listed before v1, so breaking the tie by arrival order would pick the wrong item.
    con = _loaded(_hand_tables(videos, clicks, score, session=session))
    table = evaluate(con, SuiteSettings(k=1, resamples=0, slices=False)).table.set_index("metric")["value"]
    for metric in ("ndcg", "precision", "recall", "hitrate", "mrr"):
        assert table[f"{metric}_at_1"] == pytest.approx(expected, abs=1e-12), metric


def test_an_item_logged_twice_in_a_session_is_one_relevant_item_and_two_weighted_impressions() -> None:
    # Session s logs v1 twice (clicked both times), v2 (clicked) and v3; the top 2 is [v1, v3].
    # Catalogue recall: distinct clicked items {v1, v2}, of which the top 2 holds v1 -> 1/2.
    # Off-policy: every logged impression of a chosen item weighs min(1 / (2 * 0.1), 100) = 5, so
    # sum(w) = 15 over v1, v1, v3 and the clicks weigh 10: SNIPS CTR = 10/15, IPS CTR = 10 / 4 slots.
    tables = _hand_tables(["v1", "v1", "v2", "v3"], [True, True, True, False], [0.4, 0.3, 0.2, 0.1])
    top_k = pd.DataFrame({"model": "m", "session_id": "s", "user_key": "u", "video_id": ["v1", "v3"], "rank": [1, 2],
                          "oracle_click": np.nan, "oracle_watch_s": np.nan, "oracle_conversion": np.nan})
    catalogue = pd.DataFrame({"video_id": ["v1", "v2", "v3"], "engaged_users": 1})
    con = _loaded({**tables, "top_k": top_k, "catalogue": catalogue})
    table = evaluate(con, SuiteSettings(k=2, resamples=0, slices=False), catalogue_size=3, n_users=1).table
    values = table[table["model"] == "m"].set_index("metric")["value"]
    assert values["catalogue_recall_at_2"] == pytest.approx(0.5, abs=1e-12)
    assert values["ctr_at_2_snips"] == pytest.approx(10 / 15, abs=1e-12)
    assert values["ctr_at_2_ips"] == pytest.approx(10 / 4, abs=1e-12)


@pytest.mark.parametrize("rep", CHECKED_REPS)
def test_off_policy_estimates_match_numpy(suite, rep: int) -> None:
    tables, _, reps, weights = suite
    impressions, top_k, uw = tables["impressions"], tables["top_k"], _user_w(weights, rep)
    for model in ("candidate", "champion"):
        chosen = set(zip(*top_k[top_k["model"] == model][["session_id", "video_id"]].to_numpy().T))
        ips = {"click": [], "watch": [], "conv": []}
        num = {"click": 0.0, "watch": 0.0, "conv": 0.0}
        den, session_w = 0.0, []
        for session, group in impressions.groupby("session_id"):
            u = uw[group["user_key"].iloc[0]]
            if u == 0:
                continue
            hit = np.array([(session, v) in chosen for v in group["video_id"]])
            w = np.where(hit, np.minimum(1.0 / (K * group["propensity"].to_numpy()), 100.0), 0.0)
            for key, col in (("click", "clicked"), ("watch", "watch_s"), ("conv", "converted")):
                r = group[col].to_numpy(float)
                ips[key].append(np.sum(w * r) / len(group))
                num[key] += u * np.sum(w * r)
            den += u * w.sum()
            session_w.append(u)
        for key, metric in (("click", f"ctr_at_{K}"), ("watch", f"watch_s_per_impression_at_{K}"),
                            ("conv", f"conversion_at_{K}")):
            assert _rep(reps, rep, model, f"{metric}_ips") == pytest.approx(
                np.average(ips[key], weights=session_w), abs=TOL), metric
            assert _rep(reps, rep, model, f"{metric}_snips") == pytest.approx(num[key] / den, abs=TOL), metric
        assert _rep(reps, rep, model, f"watch_s_per_session_at_{K}_ips") == pytest.approx(
            K * np.average(ips["watch"], weights=session_w), abs=TOL)
        assert _rep(reps, rep, model, f"watch_s_per_session_at_{K}_snips") == pytest.approx(K * num["watch"] / den, abs=TOL)
    # The logging policy's own value is the on-policy mean of the logged rewards.
    w = impressions["user_key"].map(uw).to_numpy()
    assert _rep(reps, rep, "logging_policy", f"ctr_at_{K}_snips") == pytest.approx(
        np.average(impressions["clicked"], weights=w), abs=TOL)


@pytest.mark.parametrize("rep", CHECKED_REPS)
def test_catalogue_and_online_ab_match_numpy(suite, rep: int) -> None:
    tables, _, reps, weights = suite
    uw = _user_w(weights, rep)
    top_k = tables["top_k"][tables["top_k"]["model"] == "candidate"].copy()
    top_k["w"] = top_k["user_key"].map(uw)
    top_k = top_k[top_k["w"] > 0]
    assert _rep(reps, rep, "candidate", f"coverage_at_{K}") == pytest.approx(top_k["video_id"].nunique() / 60, abs=TOL)
    engaged = tables["catalogue"].set_index("video_id")["engaged_users"]
    info = -np.log2((top_k["video_id"].map(engaged) + 1) / 41)
    assert _rep(reps, rep, "candidate", f"novelty_at_{K}") == pytest.approx(np.average(info, weights=top_k["w"]), abs=TOL)
    per_session = top_k.groupby("session_id").agg(w=("w", "first"), watch=("oracle_watch_s", "sum"),
                                                  clicks=("oracle_click", "sum"), conv=("oracle_conversion", "sum"))
    slots = np.sum(per_session["w"] * K)
    assert _rep(reps, rep, "candidate", f"ab_watch_s_per_session_at_{K}") == pytest.approx(
        np.average(per_session["watch"], weights=per_session["w"]), abs=TOL)
    assert _rep(reps, rep, "candidate", f"ab_watch_s_per_impression_at_{K}") == pytest.approx(
        np.sum(per_session["w"] * per_session["watch"]) / slots, abs=TOL)
    assert _rep(reps, rep, "candidate", f"ab_ctr_at_{K}") == pytest.approx(
        np.sum(per_session["w"] * per_session["clicks"]) / slots, abs=TOL)
    assert _rep(reps, rep, "candidate", f"ab_conversion_at_{K}") == pytest.approx(
        np.sum(per_session["w"] * per_session["conv"]) / slots, abs=TOL)


def _catalogue_recall_loop(tables: dict, model: str, uw: dict[str, float]) -> float:
    """Per session with a click that the model's top K covers: the share of its distinct clicked items
    in that top K; the mean over those sessions, weighted by the user's replicate weight."""
    top_k = tables["top_k"][tables["top_k"]["model"] == model]
    shown, covered = set(zip(top_k["session_id"], top_k["video_id"])), set(top_k["session_id"])
    values, w = [], []
    for session, group in tables["impressions"][tables["impressions"]["clicked"]].groupby("session_id"):
        if uw[group["user_key"].iloc[0]] == 0 or session not in covered:
            continue
        clicked = set(group["video_id"])
        values.append(sum((session, v) in shown for v in clicked) / len(clicked))
        w.append(uw[group["user_key"].iloc[0]])
    return float(np.average(values, weights=w))


@pytest.mark.parametrize("rep", CHECKED_REPS)
@pytest.mark.parametrize("model", ["candidate", "champion"])
def test_catalogue_recall_matches_a_per_session_loop(suite, rep: int, model: str) -> None:
    tables, _, reps, weights = suite
    expected = _catalogue_recall_loop(tables, model, _user_w(weights, rep))
    assert 0 < expected < 1  # the fixture has both hits and misses, so this can fail
    assert _rep(reps, rep, model, f"catalogue_recall_at_{K}") == pytest.approx(expected, abs=TOL)


def _catalogue_ndcg_loop(tables: dict, model: str, uw: dict[str, float]) -> float:
    """Per covered session with a click: DCG of the model's top K with binary gains on the session's
    clicked items (1 / log2(rank + 1)) over the ideal DCG of min(clicked, K) hits; user-weighted mean."""
    top_k = tables["top_k"][tables["top_k"]["model"] == model]
    rank = {(s, v): r for s, v, r in zip(top_k["session_id"], top_k["video_id"], top_k["rank"])}
    covered = set(top_k["session_id"])
    values, w = [], []
    for session, group in tables["impressions"][tables["impressions"]["clicked"]].groupby("session_id"):
        if uw[group["user_key"].iloc[0]] == 0 or session not in covered:
            continue
        clicked = set(group["video_id"])
        dcg = sum(1 / np.log2(rank[(session, v)] + 1) for v in clicked if (session, v) in rank)
        ideal = sum(1 / np.log2(i + 1) for i in range(1, min(len(clicked), K) + 1))
        values.append(dcg / ideal)
        w.append(uw[group["user_key"].iloc[0]])
    return float(np.average(values, weights=w))


@pytest.mark.parametrize("rep", CHECKED_REPS)
@pytest.mark.parametrize("model", ["candidate", "champion"])
def test_catalogue_ndcg_matches_a_per_session_loop(suite, rep: int, model: str) -> None:
    tables, _, reps, weights = suite
    expected = _catalogue_ndcg_loop(tables, model, _user_w(weights, rep))
    assert 0 < expected < 1
    assert _rep(reps, rep, model, f"catalogue_ndcg_at_{K}") == pytest.approx(expected, abs=TOL)


def test_catalogue_recall_counts_only_the_sessions_the_top_k_covers() -> None:
    """A top K computed for a sample of sessions (models.holdout.MAX_TOP_K_SESSIONS) measures those
    sessions; the unsampled ones are not misses, so recall must not fall with the sample."""
    tables = random_tables(seed=3, k=K)
    sessions = np.sort(tables["top_k"]["session_id"].unique())
    tables["top_k"] = tables["top_k"][tables["top_k"]["session_id"].isin(sessions[::2])]
    con = _loaded(tables)
    result = evaluate(con, SuiteSettings(k=K, resamples=0, slices=False), catalogue_size=60, n_users=40)
    values = result.table[result.table["slice"] == "all"].set_index(["model", "metric"])["value"]
    everyone = {u: 1.0 for u in tables["impressions"]["user_key"]}
    for model in ("candidate", "champion"):
        expected = _catalogue_recall_loop(tables, model, everyone)
        assert values[(model, f"catalogue_recall_at_{K}")] == pytest.approx(expected, abs=TOL)


def test_intervals_are_numpy_percentiles_of_the_replicates(suite) -> None:
    _, result, reps, _ = suite
    table = result.table
    for metric in ("click_auc", f"ndcg_at_{K}", f"ctr_at_{K}_snips"):
        row = table[(table["model"] == "candidate") & (table["metric"] == metric) & (table["slice"] == "all")].iloc[0]
        boot = [_rep(reps, r, "candidate", metric) for r in range(1, RESAMPLES + 1)]
        assert row["value"] == pytest.approx(_rep(reps, 0, "candidate", metric), abs=TOL)
        assert row["ci_low"] == pytest.approx(np.percentile(boot, 2.5), abs=TOL)
        assert row["ci_high"] == pytest.approx(np.percentile(boot, 97.5), abs=TOL)
        assert row["resamples"] == RESAMPLES
        paired = table[(table["model"] == "candidate_vs_champion") & (table["metric"] == metric)].iloc[0]
        rel = [(_rep(reps, r, "candidate", metric) - _rep(reps, r, "champion", metric))
               / abs(_rep(reps, r, "champion", metric)) for r in range(RESAMPLES + 1)]
        assert paired["value"] == pytest.approx(rel[0], abs=TOL)
        assert paired["ci_low"] == pytest.approx(np.percentile(rel[1:], 2.5), abs=TOL)


def test_slices_are_the_metric_restricted_to_their_rows(suite) -> None:
    tables, _, reps, _ = suite
    rows = _joined(tables, "candidate")
    for slice_, mask in (("cold_item=true", rows["cold_item"]), ("new_user=true", rows["new_user"]),
                         ("category=music", rows["category"] == "music"), ("is_product=false", ~rows["is_product"]),
                         ("is_live_host=true", rows["is_live_host"])):
        part = rows[mask]
        assert _rep(reps, 0, "candidate", "click_auc", slice_) == pytest.approx(
            roc_auc_score(part["clicked"], part["p_click"]), abs=TOL), slice_


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
    rows = _joined(tables, "candidate")
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
    con = _loaded(tables)
    lean = evaluate(con, SuiteSettings(k=K, resamples=RESAMPLES, seed=11, reliability=False, logging_policy=False),
                    catalogue_size=60, n_users=40)
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
    con = _loaded(tables)
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
    impressions = pd.DataFrame({
        "event_id": np.arange(n), "session_id": np.arange(n) // 8, "user_key": users,
        "video_id": rng.integers(0, 50, n),
        "position": np.arange(n) % 8, "propensity": 0.1, "clicked": rng.random(n) < 0.3, "watch_s": 0.0,
        "converted": rng.random(n) < 0.1, "cold_item": False, "new_user": False, "category": "c", "is_product": False,
        "is_live_host": False})
    impressions["user_key"] = impressions.groupby("session_id")["user_key"].transform("first")
    scores = pd.concat([pd.DataFrame({"model": model, "event_id": impressions["event_id"],
                                      "p_click": np.round(rng.random(n), 1), "p_watch_s": 1.0,
                                      "p_conversion": np.round(rng.random(n), 1), "score": rng.random(n)})
                        for model in ("a", "b")], ignore_index=True)
    con = _loaded({"impressions": impressions, "scores": scores})
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
