"""Maximal marginal relevance (Carbonell & Goldstein 1998): re-rank a scored candidate list so each next
item trades its relevance against its similarity to what is already chosen.

    next = argmax_i  λ · rel(i) − (1 − λ) · max_{j chosen} cos(e_i, e_j)

λ = 1 is the plain ranking (exactly: ties keep the input order); smaller λ diversifies. Relevance is
min-max scaled over the candidates so λ means the same for any score scale.
"""

from __future__ import annotations

import numpy as np


def mmr_order(relevance: np.ndarray, embeddings: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Indices into the candidates, best first, ``min(k, len)`` long. ``embeddings`` (C, d) are the
    candidates' content vectors (L2-normalised here, so similarity is cosine)."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"MMR lambda must be in [0, 1], got {lam}")
    relevance = np.asarray(relevance, dtype=np.float64)
    n = min(int(k), len(relevance))
    plain = np.argsort(-relevance, kind="stable")
    if lam == 1.0 or n <= 1:
        return plain[:n]
    span = relevance.max() - relevance.min()
    rel = (relevance - relevance.min()) / span if span > 0 else np.zeros_like(relevance)
    vectors = np.asarray(embeddings, dtype=np.float64)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    chosen = [int(plain[0])]
    max_sim = vectors @ vectors[chosen[0]]
    available = np.ones(len(rel), dtype=bool)
    available[chosen[0]] = False
    for _ in range(n - 1):
        gain = np.where(available, lam * rel - (1.0 - lam) * max_sim, -np.inf)
        pick = int(np.argmax(gain))  # first maximum: ties keep the input order
        chosen.append(pick)
        available[pick] = False
        max_sim = np.maximum(max_sim, vectors @ vectors[pick])
    return np.asarray(chosen, dtype=np.int64)
