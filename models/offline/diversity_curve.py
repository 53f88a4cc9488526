"""The MMR trade-off for the evaluation report: the candidate's served top k at several λ (models.serving.mmr),
with NDCG@k against the session's hold-out clicks, intra-list diversity and category coverage per λ.

λ = 1 is the plain ranking (the served rows the suite measures); lower λ trades relevance for items unlike the
ones already picked. The curve is what the bundle's default λ (PathSettings.mmr_lambda) is chosen from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.serving.path import ServedPath
from vidrec.evaluation.diversity import category_coverage, intra_list_diversity, mean_categories_per_list

LAMBDAS = (1.0, 0.9, 0.7, 0.5, 0.3)
MAX_SESSIONS = 300  # each λ answers every sampled session once more; 300 keep the curve's cost under a minute


def _ndcg(rows: np.ndarray, clicked: set[int], k: int) -> float:
    gains = np.array([1.0 if r in clicked else 0.0 for r in rows[:k]])
    dcg = float((gains / np.log2(np.arange(2, len(gains) + 2))).sum())
    ideal = float((1.0 / np.log2(np.arange(2, min(len(clicked), k) + 2))).sum())
    return dcg / ideal if ideal > 0 else float("nan")


def curve_sessions(session_ids: np.ndarray, clicks: dict[str, set[int]], seed: int = 0) -> np.ndarray:
    """The sorted positions in ``session_ids`` the curve answers: the sessions with a hold-out click, a seeded
    sample of MAX_SESSIONS of them when there are more. Given only those sessions it picks them all, so a
    caller that answers sessions in batches can keep just their rows (models.offline.sessions)."""
    with_clicks = np.flatnonzero([bool(clicks.get(s)) for s in session_ids])
    if len(with_clicks) > MAX_SESSIONS:
        with_clicks = np.sort(np.random.default_rng(seed).choice(with_clicks, MAX_SESSIONS, replace=False))
    return with_clicks


def lambda_curve(
    path: ServedPath,
    session_ids: np.ndarray,
    histories: np.ndarray,
    buckets: np.ndarray,
    available: np.ndarray,
    clicks: dict[str, set[int]],
    categories: np.ndarray,
    k: int = 10,
    lambdas: tuple[float, ...] = LAMBDAS,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per λ: ``ndcg_at_k`` (mean over sampled sessions with a hold-out click), ``intra_list_diversity``,
    ``category_coverage``, ``categories_per_list``. ``histories`` (S, H) item rows with -1 padding,
    ``available`` (S, items) what each session's request may show, ``clicks`` session_id -> clicked item rows."""
    with_clicks = curve_sessions(session_ids, clicks, seed)
    rows = []
    for lam in lambdas:
        lists = np.full((len(with_clicks), k), -1, dtype=np.int64)
        ndcg = []
        for j, i in enumerate(with_clicks):
            line = histories[i]
            served = path.recommend(line[line >= 0].tolist(), int(buckets[i]), k, available[i], mmr_lambda=lam)
            lists[j, : len(served.rows)] = served.rows
            ndcg.append(_ndcg(served.rows, clicks[session_ids[i]], k))
        rows.append(
            {
                "lambda": lam,
                "sessions": len(with_clicks),
                f"ndcg_at_{k}": float(np.nanmean(ndcg)) if ndcg else float("nan"),
                "intra_list_diversity": intra_list_diversity(lists, path.embeddings),
                "category_coverage": category_coverage(lists, categories),
                "categories_per_list": mean_categories_per_list(lists, categories),
            }
        )
    return pd.DataFrame(rows)
