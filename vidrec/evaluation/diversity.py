"""Diversity of recommended lists, reported beside NDCG: intra-list diversity (mean pairwise cosine
distance of the items' content embeddings) and category coverage (share of the catalogue's categories
that appear in the lists)."""

from __future__ import annotations

import numpy as np


def intra_list_diversity(lists: np.ndarray, embeddings: np.ndarray) -> float:
    """Mean over lists of the mean pairwise (1 − cosine) of each list's items; ``lists`` (L, k) item rows,
    −1 padding ignored; lists with fewer than two items are left out. Higher is more diverse."""
    vectors = np.asarray(embeddings, dtype=np.float64)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    values = []
    for rows in np.asarray(lists):
        rows = rows[rows >= 0]
        if len(rows) < 2:
            continue
        sims = vectors[rows] @ vectors[rows].T
        m = len(rows)
        values.append(float((m * m - sims.sum()) / (m * (m - 1))))  # off-diagonal mean of 1 − cos
    return float(np.mean(values)) if values else float("nan")


def category_coverage(lists: np.ndarray, categories: np.ndarray) -> float:
    """Distinct categories among all listed items over the distinct categories in the catalogue."""
    rows = np.asarray(lists).ravel()
    rows = rows[rows >= 0]
    categories = np.asarray(categories, dtype=object)
    total = len(set(categories.tolist()))
    return len(set(categories[rows].tolist())) / total if total else float("nan")


def mean_categories_per_list(lists: np.ndarray, categories: np.ndarray) -> float:
    """Mean number of distinct categories within one list (per-user diversity, unlike coverage)."""
    categories = np.asarray(categories, dtype=object)
    counts = [len(set(categories[r[r >= 0]].tolist())) for r in np.asarray(lists) if (r >= 0).any()]
    return float(np.mean(counts)) if counts else float("nan")
