"""Two-tower retrieval: a causal self-attention encoder (SASRec; Kang & McAuley, ICDM 2018) over the user's
recent clicks, and an item tower over the standardised content embedding plus a hashed item id
(bucket 0 = cold item, content alone).

Both towers end L2-normalised, so serving is a maximum-inner-product search over item vectors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class ItemEmbedding(nn.Module):
    """Content embedding (standardised) → ``dim``, plus a hashed id embedding for items seen in training.

    Bucket 0 contributes nothing, so a new upload is placed from its content alone. The content is
    standardised per dimension as the ranker's is (``models.nn.ranker.Ranker.fit_content_scale``): the
    embedding mixes a unit-norm learned part with measured descriptors on another scale, and with Adam
    a feature's effective learning rate follows its scale. The statistics are buffers, so a saved
    ``state_dict`` carries them."""

    def __init__(self, content_dim: int, dim: int, id_buckets: int) -> None:
        super().__init__()
        self.register_buffer("content_mean", torch.zeros(content_dim))
        self.register_buffer("content_std", torch.ones(content_dim))
        self.content = nn.Sequential(nn.Linear(content_dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))
        self.item_id = nn.Embedding(id_buckets, dim, padding_idx=0)
        nn.init.normal_(self.item_id.weight, std=0.01)
        with torch.no_grad():
            self.item_id.weight[0].zero_()

    @torch.no_grad()
    def fit_content_scale(self, embeddings: torch.Tensor) -> None:
        embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
        self.content_mean.copy_(embeddings.mean(dim=0))
        self.content_std.copy_(embeddings.std(dim=0).nan_to_num(1.0).clamp(min=1e-4))

    def forward(self, content: torch.Tensor, item_id: torch.Tensor) -> torch.Tensor:
        return self.content((content - self.content_mean) / self.content_std) + self.item_id(item_id)


class ItemTower(nn.Module):
    """Item vector: the L2-normalised item embedding."""

    def __init__(self, embedding: ItemEmbedding) -> None:
        super().__init__()
        self.embedding = embedding

    @property
    def item_id(self) -> nn.Embedding:
        return self.embedding.item_id

    def forward(self, content: torch.Tensor, item_id: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embedding(content, item_id), dim=-1)


class UserTower(nn.Module):
    """SASRec over the last clicked items (most recent last, -1 / mask False = padding on the left).

    Positions are learned and counted back from the most recent click, so left padding does not move
    them; the causal mask lets position t see only clicks up to t, so every position is a next-item
    prediction while training and the last one is the user vector. An empty history yields a learned
    "new user" vector (never NaN); an optional hashed user id is added to the output."""

    def __init__(
        self,
        embedding: ItemEmbedding,
        dim: int,
        max_history: int,
        heads: int = 2,
        layers: int = 2,
        dropout: float = 0.2,
        user_buckets: int = 0,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.heads = heads
        self.position = nn.Parameter(torch.randn(max_history, dim) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model=dim,
                nhead=heads,
                dim_feedforward=dim * 2,
                dropout=dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.empty = nn.Parameter(torch.randn(dim) * 0.02)
        self.user_id = nn.Embedding(user_buckets, dim, padding_idx=0) if user_buckets else None
        if self.user_id is not None:
            nn.init.normal_(self.user_id.weight, std=0.01)
            with torch.no_grad():
                self.user_id.weight[0].zero_()

    def sequence(self, history: torch.Tensor, history_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, H, dim) un-normalised outputs; position t has seen clicks up to t only. Padded positions
        hold finite values that nothing reads."""
        h = mask.shape[1]
        if h > self.position.shape[0]:
            raise ValueError(
                f"history of {h} items is longer than the model's max_history "
                f"{self.position.shape[0]}; pass the last {self.position.shape[0]} clicks"
            )
        x = self.dropout(self.embedding(history, history_ids * mask) + self.position[-h:])
        future = torch.ones(h, h, dtype=torch.bool, device=mask.device).triu(1)
        # Blocked: later positions and padded keys; a position always sees itself, so a padded row
        # attends to something (no NaN) while real rows never see padding.
        blocked = future | ~mask.unsqueeze(1)
        blocked &= ~torch.eye(h, dtype=torch.bool, device=mask.device)
        blocked = blocked.repeat_interleave(self.heads, dim=0)
        for block in self.blocks:
            x = block(x, src_mask=blocked)
        return self.norm(x)

    def forward(
        self, history: torch.Tensor, history_ids: torch.Tensor, mask: torch.Tensor, user_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """history: (B, H, content_dim); history_ids, mask: (B, H) → (B, dim) L2-normalised."""
        has = mask.any(dim=1, keepdim=True)
        last = self.sequence(history, history_ids, mask)[:, -1] if mask.shape[1] else self.empty.expand(len(mask), -1)
        return self.output(torch.where(has, last, self.empty.expand_as(last)), user_ids)

    def output(self, states: torch.Tensor, user_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Sequence states (..., dim) → user vectors, with the hashed user id added when the model has one."""
        if self.user_id is not None and user_ids is not None:
            user = self.user_id(user_ids)  # (B, dim)
            states = states + (user.unsqueeze(1) if states.dim() == 3 else user)
        return F.normalize(states, dim=-1)


class TwoTower(nn.Module):
    def __init__(
        self,
        content_dim: int = 64,
        dim: int = 64,
        id_buckets: int = 4096,
        max_history: int = 64,
        heads: int = 2,
        layers: int = 2,
        dropout: float = 0.2,
        user_buckets: int = 0,
        share_item_embedding: bool = True,
    ) -> None:
        super().__init__()
        item_embedding = ItemEmbedding(content_dim, dim, id_buckets)
        # SASRec shares the input and output item embeddings: a click trains both the item's place as a
        # target and its meaning as history.
        history_embedding = item_embedding if share_item_embedding else ItemEmbedding(content_dim, dim, id_buckets)
        self.user = UserTower(history_embedding, dim, max_history, heads, layers, dropout, user_buckets)
        self.item = ItemTower(item_embedding)

    def fit_content_scale(self, embeddings: torch.Tensor) -> None:
        """Set the content standardisation of both towers from the catalogue's (N, content_dim) embeddings."""
        self.item.embedding.fit_content_scale(embeddings)
        self.user.embedding.fit_content_scale(embeddings)


def sampled_softmax_loss(
    user: torch.Tensor, item: torch.Tensor, item_rows: torch.Tensor, log_q: torch.Tensor, temperature: float = 0.05
) -> torch.Tensor:
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
    """log of each item's chance to appear in a batch of ``batch_size`` positives (per item row).

    An item never clicked in ``item_rows`` is counted as clicked once: a zero count gave log q = -27.6,
    which added 27.6 to that item's logit, so validation clicks on items new since training swamped the
    validation loss (25 vs 5 on the demo world) and early stopping kept the first epoch."""
    counts = np.maximum(np.bincount(item_rows, minlength=n_items).astype(np.float64), 1.0)
    freq = counts / max(len(item_rows), 1)
    prob = 1.0 - (1.0 - np.clip(freq, 0.0, 1.0)) ** batch_size
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
        parts = [
            self.model.item(self.embeddings[s : s + batch_size], self.ids[s : s + batch_size])
            for s in range(0, len(self.ids), batch_size)
        ]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.model.item.item_id.embedding_dim), np.float32)

    @torch.inference_mode()
    def user_vectors(self, histories: np.ndarray, user_ids: np.ndarray | None = None) -> np.ndarray:
        """histories: (B, H) item rows, most recent last, -1 = padding → (B, dim) float32. ``user_ids``:
        (B,) hashed user buckets (0 = unknown), read only by a model trained with user ids."""
        hist = torch.as_tensor(histories, dtype=torch.long)
        mask = hist >= 0
        safe = hist.clamp(min=0)
        users = None if user_ids is None else torch.as_tensor(user_ids, dtype=torch.long)
        return self.model.user(self.embeddings[safe], self.ids[safe] * mask, mask, users).numpy()

    def user_vector(self, history_rows: list[int], history_length: int, user_id: int = 0) -> np.ndarray:
        """(dim,) for one user's recent history (oldest first)."""
        row = np.full(history_length, -1, dtype=np.int64)
        recent = history_rows[-history_length:] if history_length else []
        if recent:
            row[-len(recent) :] = recent
        return self.user_vectors(row[None], np.array([user_id]))[0]
