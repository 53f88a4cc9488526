"""Scoring with a trained ranker: the one code path used by offline evaluation and serving."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.ranker import BlendWeights, Ranker


@dataclass
class Scores:
    p_click: np.ndarray
    expected_watch_s: np.ndarray
    p_conversion: np.ndarray
    score: np.ndarray


class RankerScorer:
    """Holds a ranker and the per-item inputs it needs, indexed by item row."""

    def __init__(self, ranker: Ranker, item_embeddings: np.ndarray, id_buckets: np.ndarray,
                 item_features: np.ndarray, weights: BlendWeights) -> None:
        self.ranker = ranker.eval()
        self.embeddings = torch.as_tensor(item_embeddings, dtype=torch.float32)
        self.ids = torch.as_tensor(id_buckets, dtype=torch.long)
        self.features = torch.as_tensor(item_features, dtype=torch.float32)
        self.weights = weights

    @torch.inference_mode()
    def score(self, history: np.ndarray, candidates: np.ndarray, batch_size: int = 8192) -> Scores:
        """history: (B, H) item rows (-1 = padding); candidates: (B,) item rows."""
        parts: list[list[np.ndarray]] = [[], [], [], []]
        for start in range(0, len(candidates), batch_size):
            hist = torch.as_tensor(history[start:start + batch_size], dtype=torch.long)
            cand = torch.as_tensor(candidates[start:start + batch_size], dtype=torch.long)
            mask = hist >= 0
            safe = hist.clamp(min=0)
            out = self.ranker(
                candidate=self.embeddings[cand], candidate_id=self.ids[cand],
                item_features=self.features[cand], history=self.embeddings[safe],
                history_ids=self.ids[safe] * mask, history_mask=mask, position=None,
            )
            for bucket, value in zip(parts, (out.p_click, out.expected_watch_s, out.p_conversion,
                                             out.blend(self.weights))):
                bucket.append(value.float().numpy())
        joined = [np.concatenate(p) if p else np.zeros(0, dtype=np.float32) for p in parts]
        return Scores(*joined)

    def score_user(self, history_rows: list[int], history_length: int,
                   candidates: np.ndarray | None = None) -> Scores:
        """Score every candidate (default: the whole catalog) for one user's history."""
        if candidates is None:
            candidates = np.arange(len(self.embeddings))
        row = np.full(history_length, -1, dtype=np.int64)
        recent = history_rows[-history_length:]
        if recent:
            row[-len(recent):] = recent
        return self.score(np.broadcast_to(row, (len(candidates), history_length)), candidates)
