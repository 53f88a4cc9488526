"""LightGCN (He et al., SIGIR 2020): id embeddings smoothed over the user-item graph, trained with BPR.

Written in plain torch (one sparse matrix product per layer) as RecBole 1.2's LightGCN is: xavier-uniform
embeddings, symmetric normalisation D^-1/2 A D^-1/2 of the bipartite training graph, the final vector
is the mean of layers 0..L, BPR loss plus ``reg_weight`` times the norms of the batch's layer-0 vectors.
torch-geometric 2.8 has a ``LightGCN`` too, but it would be the project's only use of that package and
its dependencies, for a model that is these few lines.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.fit.id_models import FitSettings, ValidationSet, check_indices, fit_pairwise, unique_pairs


def normalised_adjacency(pairs: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    """Sparse (U+I) x (U+I) matrix D^-1/2 A D^-1/2 of the bipartite graph of ``pairs`` (user, item)."""
    rows = np.concatenate([pairs[:, 0], pairs[:, 1] + n_users])
    cols = np.concatenate([pairs[:, 1] + n_users, pairs[:, 0]])
    degree = np.bincount(rows, minlength=n_users + n_items).astype(np.float32)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1.0)), 0.0).astype(np.float32)
    values = inv_sqrt[rows] * inv_sqrt[cols]
    size = n_users + n_items
    with warnings.catch_warnings():  # "sparse CSR support is in beta": products with it are what is used
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_coo_tensor(np.stack([rows, cols]), values, (size, size)).coalesce().to_sparse_csr()


class _SymmetricSpMM(torch.autograd.Function):
    """``adjacency @ x`` whose backward reuses ``adjacency`` (it is symmetric): autograd's own backward
    transposes the sparse matrix on every call, which made a training step 4x slower than its forward."""

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        return torch.sparse.mm(adjacency, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, torch.sparse.mm(ctx.adjacency, grad)


class LightGCN(nn.Module):
    """Layer-0 user and item embeddings, propagated ``layers`` times over the normalised graph."""

    def __init__(
        self,
        adjacency: torch.Tensor,
        n_users: int,
        n_items: int,
        dim: int = 64,
        layers: int = 2,
        reg_weight: float = 1e-5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items, self.layers, self.reg_weight = n_users, n_items, layers, reg_weight
        self.adjacency = adjacency
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.xavier_uniform_(self.user.weight, generator=generator)
        nn.init.xavier_uniform_(self.item.weight, generator=generator)
        self._cached: tuple[torch.Tensor, torch.Tensor] | None = None
        self.fit_info: dict[str, object] = {}

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (users, items) vectors: the mean of the layer-0..L embeddings."""
        x = torch.cat([self.user.weight, self.item.weight])
        total = x
        for _ in range(self.layers):
            x = _SymmetricSpMM.apply(self.adjacency, x)
            total = total + x
        final = total / (self.layers + 1)
        return final[: self.n_users], final[self.n_users :]

    def train(self, mode: bool = True) -> LightGCN:
        self._cached = None  # weights change while training; scores must be propagated again after
        return super().train(mode)

    def pair_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_vec, item_vec = self.propagate()
        u, i, j = user_vec[users], item_vec[pos], item_vec[neg]
        loss = -F.logsigmoid((u * i).sum(-1) - (u * j).sum(-1)).mean()
        # RecBole's EmbLoss with require_pow False: plain L2 norms of the layer-0 vectors, per row.
        reg = self.user(users).norm() + self.item(pos).norm() + self.item(neg).norm()
        return loss + self.reg_weight * reg / len(users)

    @torch.no_grad()
    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of every item for each user, shape ``[len(user_idx), n_items]`` (float32)."""
        users = torch.from_numpy(check_indices("user_idx", user_idx, self.n_users))
        if self._cached is None or self.training:
            self._cached = self.propagate()
        user_vec, item_vec = self._cached
        return (user_vec[users] @ item_vec.T).numpy()


def fit_lightgcn(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    n_users: int,
    n_items: int,
    settings: FitSettings | None = None,
    seed: int = 0,
    valid: ValidationSet | None = None,
    threads: int = 1,
) -> LightGCN:
    """Fit LightGCN on positive (user, item) pairs (repeats collapsed; the graph is built from them),
    with early stopping on ``valid``'s NDCG@10 as ``models.nn.bpr.fit_bpr``; seeded and repeatable.
    ``settings`` default: ``FitSettings()``, RecBole's."""
    settings = settings or FitSettings()
    pairs = unique_pairs(user_idx, item_idx, n_users, n_items)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(seed)
        model = LightGCN(
            normalised_adjacency(pairs, n_users, n_items),
            n_users,
            n_items,
            settings.dim,
            settings.layers,
            settings.reg_weight,
            generator=gen,
        )
        model.fit_info = fit_pairwise(model, pairs, n_items, settings, gen, valid, name="lightgcn")
    finally:
        torch.set_num_threads(previous)
    return model
