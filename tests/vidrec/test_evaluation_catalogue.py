"""The DuckDB metric suite's off-policy, catalogue and simulated A/B metrics against independent references, to 1e-9."""

import numpy as np
import pytest

from tests.vidrec.eval_fixtures import (
    CHECKED_REPS,
    TOL,
    K,
    loaded,
    random_tables,
    rep_value,
    user_weights,
)
from vidrec.evaluation.metrics import SuiteSettings, evaluate


@pytest.mark.parametrize("rep", CHECKED_REPS)
def test_off_policy_estimates_match_numpy(suite, rep: int) -> None:
    tables, _, reps, weights = suite
    impressions, top_k, uw = tables["impressions"], tables["top_k"], user_weights(weights, rep)
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
        for key, metric in (
            ("click", f"ctr_at_{K}"),
            ("watch", f"watch_s_per_impression_at_{K}"),
            ("conv", f"conversion_at_{K}"),
        ):
            assert rep_value(reps, rep, model, f"{metric}_ips") == pytest.approx(
                np.average(ips[key], weights=session_w), abs=TOL
            ), metric
            assert rep_value(reps, rep, model, f"{metric}_snips") == pytest.approx(num[key] / den, abs=TOL), metric
        assert rep_value(reps, rep, model, f"watch_s_per_session_at_{K}_ips") == pytest.approx(
            K * np.average(ips["watch"], weights=session_w), abs=TOL
        )
        assert rep_value(reps, rep, model, f"watch_s_per_session_at_{K}_snips") == pytest.approx(
            K * num["watch"] / den, abs=TOL
        )
    # The logging policy's own value is the on-policy mean of the logged rewards.
    w = impressions["user_key"].map(uw).to_numpy()
    assert rep_value(reps, rep, "logging_policy", f"ctr_at_{K}_snips") == pytest.approx(
        np.average(impressions["clicked"], weights=w), abs=TOL
    )


@pytest.mark.parametrize("rep", CHECKED_REPS)
def test_catalogue_and_online_ab_match_numpy(suite, rep: int) -> None:
    tables, _, reps, weights = suite
    uw = user_weights(weights, rep)
    top_k = tables["top_k"][tables["top_k"]["model"] == "candidate"].copy()
    top_k["w"] = top_k["user_key"].map(uw)
    top_k = top_k[top_k["w"] > 0]
    assert rep_value(reps, rep, "candidate", f"coverage_at_{K}") == pytest.approx(
        top_k["video_id"].nunique() / 60, abs=TOL
    )
    engaged = tables["catalogue"].set_index("video_id")["engaged_users"]
    info = -np.log2((top_k["video_id"].map(engaged) + 1) / 41)
    assert rep_value(reps, rep, "candidate", f"novelty_at_{K}") == pytest.approx(
        np.average(info, weights=top_k["w"]), abs=TOL
    )
    per_session = top_k.groupby("session_id").agg(
        w=("w", "first"),
        watch=("oracle_watch_s", "sum"),
        clicks=("oracle_click", "sum"),
        conv=("oracle_conversion", "sum"),
    )
    slots = np.sum(per_session["w"] * K)
    assert rep_value(reps, rep, "candidate", f"ab_watch_s_per_session_at_{K}") == pytest.approx(
        np.average(per_session["watch"], weights=per_session["w"]), abs=TOL
    )
    assert rep_value(reps, rep, "candidate", f"ab_watch_s_per_impression_at_{K}") == pytest.approx(
        np.sum(per_session["w"] * per_session["watch"]) / slots, abs=TOL
    )
    assert rep_value(reps, rep, "candidate", f"ab_ctr_at_{K}") == pytest.approx(
        np.sum(per_session["w"] * per_session["clicks"]) / slots, abs=TOL
    )
    assert rep_value(reps, rep, "candidate", f"ab_conversion_at_{K}") == pytest.approx(
        np.sum(per_session["w"] * per_session["conv"]) / slots, abs=TOL
    )


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
    expected = _catalogue_recall_loop(tables, model, user_weights(weights, rep))
    assert 0 < expected < 1  # the fixture has both hits and misses, so this can fail
    assert rep_value(reps, rep, model, f"catalogue_recall_at_{K}") == pytest.approx(expected, abs=TOL)


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
    expected = _catalogue_ndcg_loop(tables, model, user_weights(weights, rep))
    assert 0 < expected < 1
    assert rep_value(reps, rep, model, f"catalogue_ndcg_at_{K}") == pytest.approx(expected, abs=TOL)


def test_catalogue_recall_counts_only_the_sessions_the_top_k_covers() -> None:
    """A top K computed for a sample of sessions (models.offline.holdout.MAX_TOP_K_SESSIONS) measures those
    sessions; the unsampled ones are not misses, so recall must not fall with the sample."""
    tables = random_tables(seed=3, k=K)
    sessions = np.sort(tables["top_k"]["session_id"].unique())
    tables["top_k"] = tables["top_k"][tables["top_k"]["session_id"].isin(sessions[::2])]
    con = loaded(tables)
    result = evaluate(con, SuiteSettings(k=K, resamples=0, slices=False), catalogue_size=60, n_users=40)
    values = result.table[result.table["slice"] == "all"].set_index(["model", "metric"])["value"]
    everyone = {u: 1.0 for u in tables["impressions"]["user_key"]}
    for model in ("candidate", "champion"):
        expected = _catalogue_recall_loop(tables, model, everyone)
        assert values[(model, f"catalogue_recall_at_{K}")] == pytest.approx(expected, abs=TOL)
