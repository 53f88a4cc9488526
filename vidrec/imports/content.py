"""The project's text path on imported items: frozen MiniLM item-text embeddings (the same features the
multimodal encoder reads), a user as the mean of the items they had, scored by cosine similarity.

Needs no training and works for items nobody has interacted with, so it is the content baseline for
catalogues without media.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import sparse

from vidrec.text_embedding import TextEmbedder


def item_text_embeddings(texts: list[str], cache_dir: Path) -> np.ndarray:
    """(N, 384) L2-normalised embeddings of each item's normalised text; zero rows for empty texts."""
    return TextEmbedder(cache_dir).embed(texts)


class ProfileScorer:
    """score(u, i) = cos(mean of u's fitted item embeddings, item i's embedding), for any item embeddings
    (frozen text vectors, or the multimodal encoder's content vectors)."""

    def __init__(self, item_embeddings: np.ndarray, fit: sparse.csr_matrix) -> None:
        if item_embeddings.shape[0] != fit.shape[1]:
            raise ValueError(f"{item_embeddings.shape[0]} item embeddings for a {fit.shape[1]}-item catalogue")
        if not np.abs(item_embeddings).sum(axis=1).any():
            raise ValueError("every item embedding is zero (no item has content): nothing to score with")
        self.items = item_embeddings.astype(np.float32)
        profiles = np.asarray(fit @ self.items)
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        self.users = np.divide(profiles, norms, out=np.zeros_like(profiles), where=norms > 0)

    def __call__(self, user_idx: np.ndarray) -> np.ndarray:
        return self.users[np.asarray(user_idx)] @ self.items.T
