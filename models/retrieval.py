"""Two-tower retrieval: a sequence model over the user's recent history, and an item tower over the
fused content embedding plus an optional hashed item id (bucket 0 = cold item, content alone).

Both towers end L2-normalised, so serving is a maximum-inner-product search over item vectors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class ItemTower(nn.Module):
    """Content embedding → item vector; a hashed id embedding is added only for items seen in
    training (id 0 contributes nothing), so a new upload is placed from its content."""

    def __init__(self, content_dim: int = 64, dim: int = 64, id_buckets: int = 4096) -> None:
        super().__init__()
        self.content = nn.Sequential(nn.Linear(content_dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))
        self.item_id = nn.Embedding(id_buckets, dim, padding_idx=0)
        nn.init.normal_(self.item_id.weight, std=0.01)
        with torch.no_grad():
            self.item_id.weight[0].zero_()

    def forward(self, content: torch.Tensor, item_id: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.content(content) + self.item_id(item_id), dim=-1)


class UserTower(nn.Module):
    """A small transformer over the last clicked items (most recent last), pooled by attention.

    Order matters (recent taste drifts), so positions are learned; an empty history yields a
    learned "new user" vector instead of NaNs."""

    def __init__(self, content_dim: int = 64, dim: int = 64, max_history: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.inp = nn.Linear(content_dim, dim)
        self.position = nn.Parameter(torch.zeros(max_history, dim))
        self.encoder = nn.TransformerEncoderLayer(d_model=dim, nhead=heads, dim_feedforward=dim * 2,
                                                  dropout=0.0, batch_first=True)
        self.pool_query = nn.Parameter(torch.randn(dim) / dim**0.5)
        self.empty = nn.Parameter(torch.zeros(dim))
        self.out = nn.Linear(dim, dim)

    def forward(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """history: (B, H, content_dim) item embeddings; mask: (B, H) True where present → (B, dim)."""
        h = history.shape[1]
        x = self.inp(history) + self.position[-h:]
        has = mask.any(dim=1)
        # Rows without history attend to a dummy key so attention stays finite; they are replaced below.
        safe_mask = mask.clone()
        safe_mask[~has, -1] = True
        x = self.encoder(x, src_key_padding_mask=~safe_mask)
        logits = (x @ self.pool_query).masked_fill(~safe_mask, float("-inf"))
        pooled = (torch.softmax(logits, dim=1).unsqueeze(-1) * x).sum(dim=1)
        pooled = torch.where(has.unsqueeze(-1), pooled, self.empty.expand_as(pooled))
        return F.normalize(self.out(pooled), dim=-1)


class TwoTower(nn.Module):
    def __init__(self, content_dim: int = 64, dim: int = 64, id_buckets: int = 4096, max_history: int = 64) -> None:
        super().__init__()
        self.user = UserTower(content_dim, dim, max_history)
        self.item = ItemTower(content_dim, dim, id_buckets)


def sampled_softmax_loss(user: torch.Tensor, item: torch.Tensor, item_rows: torch.Tensor, log_q: torch.Tensor,
                         temperature: float = 0.05) -> torch.Tensor:
    """In-batch sampled softmax with the logQ correction (Yi et al., RecSys 2019).

    Popular items appear as in-batch negatives more often than uniform sampling would show them;
    subtracting log q(item) from each logit removes that bias. Other rows holding the same item
    are not negatives for this row, so they are masked out."""
    logits = user @ item.T / temperature - log_q.unsqueeze(0)
    same = item_rows.unsqueeze(0) == item_rows.unsqueeze(1)
    eye = torch.eye(len(item_rows), dtype=torch.bool, device=user.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(item_rows), device=user.device))


def sampling_log_q(item_rows: np.ndarray, n_items: int, batch_size: int) -> np.ndarray:
    """log of each item's chance to appear in a batch of ``batch_size`` positives (per item row)."""
    freq = np.bincount(item_rows, minlength=n_items).astype(np.float64) / max(len(item_rows), 1)
    prob = 1.0 - (1.0 - freq) ** batch_size
    return np.log(np.clip(prob, 1e-12, 1.0)).astype(np.float32)


class RetrievalScorer:
    """User and item vectors for serving, from a trained two-tower model and the item table.

    ``item_vectors()`` goes into the (exact or ANN) index; ``user_vectors(histories)`` is the query."""

    def __init__(self, model: TwoTower, item_embeddings: np.ndarray, id_buckets: np.ndarray) -> None:
        self.model = model.eval()
        self.embeddings = torch.as_tensor(item_embeddings, dtype=torch.float32)
        self.ids = torch.as_tensor(id_buckets, dtype=torch.long)

    @torch.inference_mode()
    def item_vectors(self, batch_size: int = 8192) -> np.ndarray:
        """(N, dim) float32, row-aligned with the item table."""
        parts = [self.model.item(self.embeddings[s:s + batch_size], self.ids[s:s + batch_size])
                 for s in range(0, len(self.ids), batch_size)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.model.item.item_id.embedding_dim), np.float32)

    @torch.inference_mode()
    def user_vectors(self, histories: np.ndarray) -> np.ndarray:
        """histories: (B, H) item rows, most recent last, -1 = padding → (B, dim) float32."""
        hist = torch.as_tensor(histories, dtype=torch.long)
        mask = hist >= 0
        return self.model.user(self.embeddings[hist.clamp(min=0)], mask).numpy()

    def user_vector(self, history_rows: list[int], history_length: int) -> np.ndarray:
        """(dim,) for one user's recent history (oldest first)."""
        row = np.full(history_length, -1, dtype=np.int64)
        recent = history_rows[-history_length:]
        if recent:
            row[-len(recent):] = recent
        return self.user_vectors(row[None])[0]
