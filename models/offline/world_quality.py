"""Hold-out quality against the simulator's oracle and the id-only baselines, on the same impressions.

Every ordering is written as rows of the evaluation ``scores`` table and measured by the project's
DuckDB metric suite (vidrec.evaluation), so click AUC and NDCG@10 here mean exactly what offline
evaluation reports.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from models.fit.id_models import FitSettings
from models.offline.baselines import fit_bpr, most_popular_scores
from vidrec.evaluation.metrics import SuiteSettings, evaluate, headline
from vidrec.evaluation.tables import load_table
from vidrec.world.oracle import Oracle


def impressions_table(
    holdout: pd.DataFrame, items: pd.DataFrame, cold_videos: set[str], known_users: set[str]
) -> pd.DataFrame:
    """The evaluation ``impressions`` table for hold-out events (slice columns from the item table)."""
    meta = items.set_index("video_id")
    return holdout.assign(
        cold_item=holdout["video_id"].isin(cold_videos),
        new_user=~holdout["user_key"].isin(known_users),
        category=holdout["video_id"].map(meta["category"]).astype(str),
        is_product=holdout["video_id"].map(meta["is_product"]).astype(bool),
        is_live_host=holdout["video_id"].map(meta["is_live_host"]).astype(bool),
    )


def scored(holdout: pd.DataFrame, model: str, score: np.ndarray, p_click: np.ndarray | None = None) -> pd.DataFrame:
    """One model's rows of the ``scores`` table; ``p_click`` defaults to ``score`` (ranking-only
    models have no calibrated heads, so their watch and conversion predictions are left empty)."""
    if len(score) != len(holdout):
        raise ValueError(f"{model}: {len(score)} scores for {len(holdout)} hold-out impressions")
    p = score if p_click is None else p_click
    return pd.DataFrame(
        {
            "model": model,
            "event_id": holdout["event_id"].to_numpy(),
            "p_click": np.asarray(p, float),
            "p_watch_s": np.nan,
            "p_conversion": np.nan,
            "score": np.asarray(score, float),
        }
    )


def oracle_scores(holdout: pd.DataFrame, oracle: Oracle) -> np.ndarray:
    """True position-free click probability: the best any serving-time ranker can estimate.

    Needs the raw ``user_id`` column (only a simulated world has one)."""
    if "user_id" not in holdout:
        raise KeyError("the hold-out frame lacks user_id; the oracle needs the simulator's raw user ids")
    return oracle.click_prob(holdout["user_id"].to_numpy(), holdout["video_id"].to_numpy(), position=None)


def attribute_ceiling_scores(
    fit: pd.DataFrame, holdout: pd.DataFrame, oracle: Oracle, l2: float = 0.3, max_iter: int = 300
) -> np.ndarray:
    """What a model with perfect item features could learn from this log: a per-user logistic
    regression on the world's TRUE item attributes (category, style, energy, energy², quality),
    with a shared global part, a user bias and a position bias, fitted on ``fit`` (L2 ``l2`` on the
    per-user parts) and scored position-free on ``holdout``.

    The oracle knows each user's hidden parameters; a learner only sees a few hundred impressions per
    user, so this bounds from above what any content model can reach on this log. Needs the
    simulator's raw ``user_id``."""
    items = oracle.items
    index = pd.Index(items["video_id"])
    n_categories = int(items["category_idx"].max()) + 1

    def features(frame: pd.DataFrame) -> torch.Tensor:
        rows = index.get_indexer(frame["video_id"])
        energy = items["energy"].to_numpy()[rows, None]
        x = np.concatenate(
            [
                np.eye(n_categories)[items["category_idx"].to_numpy()[rows]],
                np.eye(3)[items["style"].to_numpy()[rows]],
                energy,
                energy**2,
                items["quality"].to_numpy()[rows, None],
            ],
            axis=1,
        )
        return torch.tensor(x, dtype=torch.float32)

    users = {u: i for i, u in enumerate(sorted(fit["user_id"].unique()))}
    x, y = features(fit), torch.tensor(fit["clicked"].to_numpy(), dtype=torch.float32)
    u = torch.tensor(fit["user_id"].map(users).to_numpy(np.int64))
    position = torch.tensor(fit["position"].clip(0, 63).to_numpy(np.int64))
    torch.manual_seed(0)
    shared, per_user = (
        torch.zeros(x.shape[1], requires_grad=True),
        torch.zeros(len(users), x.shape[1], requires_grad=True),
    )
    user_bias, position_bias = torch.zeros(len(users), requires_grad=True), torch.zeros(64, requires_grad=True)
    params = [shared, per_user, user_bias, position_bias]
    optimiser = torch.optim.LBFGS(params, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logit = (x * (shared + per_user[u])).sum(1) + user_bias[u] + position_bias[position]
        loss = F.binary_cross_entropy_with_logits(logit, y) + l2 * (
            per_user.pow(2).sum() + user_bias.pow(2).sum()
        ) / len(y)
        loss.backward()
        return loss

    optimiser.step(closure)
    known = holdout["user_id"].map(users)
    rows = torch.tensor(known.fillna(-1).to_numpy(np.int64))
    with torch.no_grad():
        weights = shared + torch.where(rows[:, None] >= 0, per_user[rows.clamp(min=0)], 0.0)
        bias = torch.where(rows >= 0, user_bias[rows.clamp(min=0)], 0.0)
        return ((features(holdout) * weights).sum(1) + bias).numpy().astype(np.float64)


def baseline_scores(
    train: pd.DataFrame, holdout: pd.DataFrame, item_index: dict[str, int], seed: int = 0, bpr_epochs: int = 20
) -> dict[str, np.ndarray]:
    """Most-popular and BPR matrix factorisation fitted on the training window's clicks.

    Items and users the baselines never saw keep what an id-only model can know: popularity 0, and
    for BPR the untrained item vector (near random) and, for a new user, the item bias alone."""
    clicks = train[train["clicked"]]
    users = {u: i for i, u in enumerate(sorted(clicks["user_key"].unique()))}
    u_idx = clicks["user_key"].map(users).to_numpy(np.int64)
    i_idx = clicks["video_id"].map(item_index).to_numpy(np.int64)
    items = holdout["video_id"].map(item_index).to_numpy(np.int64)
    popular = most_popular_scores(u_idx, i_idx, len(item_index))[items]
    # The project's first BPR and its settings, so quality.json's bpr_mf numbers stay comparable.
    settings = FitSettings(dim=32, lr=0.05, epochs=bpr_epochs, batch_size=4096, patience=0, weight_decay=1e-4)
    bpr = fit_bpr(u_idx, i_idx, len(users), len(item_index), settings, seed=seed, variant="biased")
    known = holdout["user_key"].map(users)
    out = np.empty(len(holdout), dtype=np.float64)
    seen = known.notna().to_numpy()
    if seen.any():
        rows = known[seen].to_numpy(np.int64)
        table = bpr.score(np.unique(rows))
        lookup = {u: k for k, u in enumerate(np.unique(rows))}
        out[seen] = table[[lookup[r] for r in rows], items[seen]]
    bias = bpr.item_bias.weight.detach().numpy()[:, 0]
    out[~seen] = bias[items[~seen]]
    return {"most_popular": popular, "bpr_mf": out}


def cold_only(impressions: pd.DataFrame, scores: pd.DataFrame, min_items: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Impressions and scores restricted to cold items, in sessions that showed at least
    ``min_items`` of them (re-ranking a single impression says nothing)."""
    cold = impressions[impressions["cold_item"]]
    cold = cold[cold.groupby("session_id")["event_id"].transform("size") >= min_items]
    return cold, scores[scores["event_id"].isin(cold["event_id"])]


def measure(impressions: pd.DataFrame, scores: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """One row per model: the suite's point estimates (click_auc, ndcg_at_k, ...), no bootstrap."""
    con = duckdb.connect()
    try:
        load_table(con, "impressions", impressions)
        load_table(con, "scores", scores)
        result = evaluate(con, SuiteSettings(k=k, resamples=0, slices=False), baselines=())
        return headline(result.table, k).set_index("model")
    finally:
        con.close()


def over(table: pd.DataFrame, model: str, reference: str, metric: str) -> float:
    """``model``'s metric as a fraction of ``reference``'s."""
    return float(table.at[model, metric] / table.at[reference, metric])
