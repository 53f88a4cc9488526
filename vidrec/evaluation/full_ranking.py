"""Top-K metrics over a user x item score matrix, as in published recommender tables (RecBole's
definitions): full ranking over every item by default, sampled ranking only when asked for.

Per user: Recall@K = hits in top K / |relevant|; NDCG@K = DCG@K / ideal DCG@K with binary gains and
log2(rank + 2) discounts, ideal over min(|relevant|, K) hits; Hit@K = 1 if any hit; MRR@K = 1 / rank of
the first hit. All are means over users with at least one relevant item; larger is better.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import sparse

ScoreFn = Callable[[np.ndarray], np.ndarray]


def top_k(scores: np.ndarray, k: int, exclude: sparse.csr_matrix | None = None) -> np.ndarray:
    """Indices of the ``k`` best items per row, best first; ``exclude`` (rows x items, nonzero = seen)
    items are never returned unless a row has fewer than ``k`` others."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None:
        rows, cols = exclude.nonzero()
        scores[rows, cols] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(k) + 2.0)


def metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-user metrics from ``hits`` (users x K_max bool, hit at each rank) and ``n_relevant`` (users,)."""
    out: dict[str, np.ndarray] = {}
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    if (n_relevant <= 0).any():
        raise ValueError("every evaluated user needs at least one relevant item; drop users with none first")
    for k in ks:
        h = hits[:, :k].astype(np.float64)
        disc = _discounts(h.shape[1])
        ideal = np.cumsum(_discounts(k))[np.minimum(n_relevant, k).astype(int) - 1]
        first = np.where(h.any(axis=1), h.argmax(axis=1), -1)
        out[f"recall@{k}"] = h.sum(axis=1) / n_relevant
        out[f"ndcg@{k}"] = (h * disc).sum(axis=1) / ideal
        out[f"hit@{k}"] = h.any(axis=1).astype(np.float64)
        out[f"mrr@{k}"] = np.where(first >= 0, 1.0 / (np.maximum(first, 0) + 1.0), 0.0)
    return out


def full_ranking(
    score_fn: ScoreFn,
    users: np.ndarray,
    relevant: sparse.csr_matrix,
    exclude: sparse.csr_matrix | None,
    ks: Sequence[int] = (10, 20),
    batch_size: int = 1024,
) -> dict[str, float]:
    """Mean metrics over ``users``, ranking all items for each: ``relevant`` and ``exclude`` are
    (all users x items) matrices; ``score_fn(user_batch)`` returns (batch x items) scores."""
    users = np.asarray(users, dtype=np.int64)
    k_max = max(ks)
    sums: dict[str, float] = {}
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = score_fn(batch)
        if scores.shape != (len(batch), relevant.shape[1]):
            raise ValueError(f"score_fn returned shape {scores.shape}; expected ({len(batch)}, {relevant.shape[1]})")
        top = top_k(scores, k_max, None if exclude is None else exclude[batch])
        rel = relevant[batch]
        hits = np.take_along_axis(rel.toarray() > 0, top, axis=1)
        for name, values in metrics_from_hits(hits, np.diff(rel.indptr), ks).items():
            sums[name] = sums.get(name, 0.0) + float(values.sum())
    return {name: total / max(len(users), 1) for name, total in sums.items()}


def sampled_ranking(
    score_fn: ScoreFn,
    users: np.ndarray,
    relevant: sparse.csr_matrix,
    exclude: sparse.csr_matrix | None,
    n_negatives: int = 100,
    ks: Sequence[int] = (10, 20),
    seed: int = 0,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Each relevant item ranked against ``n_negatives`` items sampled uniformly (seeded) from those the
    user neither saw nor holds out; ties count against the positive. Per-user means of Hit@K, NDCG@K.

    Sampled numbers are not comparable with full-ranking ones (they are much higher); label them so.
    """
    rng = np.random.default_rng(seed)
    n_items = relevant.shape[1]
    users = np.asarray(users, dtype=np.int64)
    sums: dict[str, float] = {}
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = score_fn(batch)
        seen = relevant[batch] if exclude is None else (relevant[batch] + exclude[batch])
        for row, user_seen, user_rel in zip(scores, seen, relevant[batch]):
            forbidden = set(user_seen.indices.tolist())
            if n_items - len(forbidden) < n_negatives:
                raise ValueError(
                    f"only {n_items - len(forbidden)} unseen items for a user; "
                    f"n_negatives={n_negatives} is too many for this catalogue"
                )
            negatives: list[int] = []
            while len(negatives) < n_negatives:  # rejection sampling: catalogues are much larger than histories
                draw = rng.integers(0, n_items, n_negatives * 2)
                negatives += [int(i) for i in draw if int(i) not in forbidden][: n_negatives - len(negatives)]
            neg_scores = row[np.asarray(negatives)]
            ranks = (neg_scores[None, :] >= row[user_rel.indices][:, None]).sum(axis=1)
            for k in ks:
                inside = ranks < k
                sums[f"hit@{k}"] = sums.get(f"hit@{k}", 0.0) + float(inside.mean())
                ndcg = np.where(inside, 1.0 / np.log2(ranks + 2.0), 0.0)
                sums[f"ndcg@{k}"] = sums.get(f"ndcg@{k}", 0.0) + float(ndcg.mean())
    return {name: total / max(len(users), 1) for name, total in sums.items()}
