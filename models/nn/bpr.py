"""BPR matrix factorisation (Rendle et al., 2009), the id-only reference every other model must beat.

Written in plain torch rather than taken from ``implicit`` because callers need an ``nn.Module`` with a
seeded, bit-for-bit repeatable fit, and ``implicit``'s multithreaded BPR is neither. Two variants:
``recbole`` (default: RecBole 1.2's BPR — xavier-normal factors, no bias, no regulariser, negatives
never the user's positives) and ``biased`` (the project's first BPR: an item bias, N(0, 0.1) factors,
any item as a negative; ``models.offline.world_quality`` keeps it so its committed numbers stay comparable).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.fit.id_models import FitSettings, ValidationSet, check_indices, fit_pairwise, unique_pairs

Variant = Literal["recbole", "biased"]


class BPRModel(nn.Module):
    """User and item factors plus an item bias (zero and frozen unless ``item_bias``);
    score(u, i) = <p_u, q_i> + b_i."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int = 64,
        generator: torch.Generator | None = None,
        init_std: float | None = None,
        item_bias: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items, self.dim, self.weight_decay = n_users, n_items, dim, weight_decay
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        for table in (self.user, self.item):
            if init_std is None:
                nn.init.xavier_normal_(table.weight, generator=generator)
            else:
                nn.init.normal_(table.weight, std=init_std, generator=generator)
        nn.init.zeros_(self.item_bias.weight)
        self.item_bias.weight.requires_grad_(item_bias)
        self.fit_info: dict[str, object] = {}

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Row-aligned scores for (users[k], items[k])."""
        return (self.user(users) * self.item(items)).sum(-1) + self.item_bias(items).squeeze(-1)

    def pair_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """-log sigmoid(score(u, i) - score(u, j)), plus L2 on the factors the batch touches."""
        p_u, q_i, q_j = self.user(users), self.item(pos), self.item(neg)
        margin = (p_u * (q_i - q_j)).sum(-1) + self.item_bias(pos).squeeze(-1) - self.item_bias(neg).squeeze(-1)
        loss = -F.logsigmoid(margin).mean()
        if self.weight_decay:
            loss = loss + self.weight_decay * (p_u.pow(2).sum() + q_i.pow(2).sum() + q_j.pow(2).sum()) / len(users)
        return loss

    @torch.no_grad()
    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of every item for each user, shape ``[len(user_idx), n_items]`` (float32)."""
        users = torch.from_numpy(check_indices("user_idx", user_idx, self.n_users))
        out = self.user(users) @ self.item.weight.T + self.item_bias.weight.T
        return out.numpy().astype(np.float32, copy=False)


def fit_bpr(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    n_users: int,
    n_items: int,
    settings: FitSettings | None = None,
    seed: int = 0,
    valid: ValidationSet | None = None,
    variant: Variant = "recbole",
    threads: int = 1,
) -> BPRModel:
    """Fit BPR on positive (user, item) pairs with one uniformly sampled negative item per pair.

    Duplicate pairs are collapsed (BPR ranks items, repeats carry no extra order information). With
    ``valid``, training stops early on its NDCG@10 (``settings.patience``) and keeps the best epoch;
    ``model.fit_info`` says what ran. The same inputs and seed give the same weights: every random draw
    comes from one seeded generator and the global RNG is untouched.
    ``threads``: torch intra-op threads while fitting (restored after). The batches are small, and on a
    busy 2-core box 2 spinning OpenMP threads made a 3-epoch fit 40x slower than 1 thread (16 s vs 0.4 s).
    """
    settings = settings or FitSettings()
    if variant not in ("recbole", "biased"):
        raise ValueError(f"unknown BPR variant {variant!r}; use 'recbole' or 'biased'")
    pairs = unique_pairs(user_idx, item_idx, n_users, n_items)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(seed)  # init, shuffling and negatives
        biased = variant == "biased"
        model = BPRModel(
            n_users,
            n_items,
            settings.dim,
            generator=gen,
            init_std=0.1 if biased else None,
            item_bias=biased,
            weight_decay=settings.weight_decay,
        )
        model.fit_info = fit_pairwise(
            model, pairs, n_items, settings, gen, valid, exclude_positives=not biased, name="bpr"
        )
    finally:
        torch.set_num_threads(previous)
    return model
