"""How the id-only recommenders (BPR, LightGCN) are fitted: their settings, uniform negative sampling,
and early stopping on validation NDCG@10 — one loop, so both follow RecBole's training protocol.

The defaults are RecBole 1.2's for BPR and LightGCN (dim 64, Adam lr 1e-3, batch 2048, one uniform
negative that is not one of the user's positives, at most 300 epochs, evaluated every epoch on the
validation part by full-ranking NDCG@10, stopped after 10 epochs without improvement, best epoch kept).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

import numpy as np
import torch
from scipy import sparse
from torch import nn

from vidrec.evaluation.full_ranking import metrics_from_hits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    """Settings shared by the id-only models (command line: ``--dim --lr --epochs --batch-size --patience
    --weight-decay --layers``). ``patience`` 0 turns early stopping off: then all ``epochs`` run.
    ``weight_decay``: L2 on the factors a batch touches (BPR; RecBole's BPR has none);
    ``layers``: LightGCN propagation layers; ``reg_weight``: LightGCN's embedding-norm penalty (RecBole's)."""

    dim: int = 64
    lr: float = 1e-3
    epochs: int = 300
    batch_size: int = 2048
    patience: int = 10
    weight_decay: float = 0.0
    layers: int = 2
    reg_weight: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("dim", "epochs", "batch_size", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.patience < 0 or self.weight_decay < 0 or self.reg_weight < 0:
            raise ValueError("patience, weight_decay and reg_weight must be >= 0")


class PairwiseModel(TypingProtocol):
    """What the loop needs from a model: a loss on (user, positive, negative) rows and full scores."""

    def pair_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor: ...

    def score(self, user_idx: np.ndarray) -> np.ndarray: ...


@dataclass
class ValidationSet:
    """Users with validation items, their items (``relevant``) and what is masked (``exclude``: the
    training items), as sparse users x items matrices."""

    users: np.ndarray
    relevant: sparse.csr_matrix
    exclude: sparse.csr_matrix
    k: int = 10

    @classmethod
    def from_pairs(
        cls,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        n_users: int,
        n_items: int,
        k: int = 10,
    ) -> ValidationSet:
        def matrix(users: np.ndarray, items: np.ndarray) -> sparse.csr_matrix:
            m = sparse.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
            m.sum_duplicates()
            return m

        exclude, relevant = matrix(*train), matrix(*val)
        relevant = (relevant - relevant.multiply(exclude)).tocsr()  # a training item cannot be ranked
        relevant.eliminate_zeros()
        return cls(np.flatnonzero(np.diff(relevant.indptr) > 0), relevant, exclude.tocsr(), k)

    def ndcg(self, model: PairwiseModel, batch_size: int = 1024) -> float:
        """Mean NDCG@k over ``users`` by full ranking (torch top-k, the metric of
        ``vidrec.evaluation.full_ranking``): called every epoch, so it avoids float64 copies of the scores."""
        total = 0.0
        for start in range(0, len(self.users), batch_size):
            batch = self.users[start : start + batch_size]
            scores = torch.from_numpy(np.array(model.score(batch), dtype=np.float32))
            rows, cols = self.exclude[batch].nonzero()
            scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
            top = torch.topk(scores, min(self.k, scores.shape[1]), dim=1).indices.numpy()
            rel = self.relevant[batch]
            hits = np.take_along_axis(rel.toarray() > 0, top, axis=1)
            total += float(metrics_from_hits(hits, np.diff(rel.indptr), (self.k,))[f"ndcg@{self.k}"].sum())
        return total / max(len(self.users), 1)


def check_indices(name: str, idx: np.ndarray, size: int) -> np.ndarray:
    """``idx`` as int64 after checking it is 1-D, integer and inside ``[0, size)``."""
    idx = np.asarray(idx)
    if idx.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer indices, got shape {idx.shape}")
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ValueError(f"{name} holds indices outside [0, {size}): min {idx.min()}, max {idx.max()}")
    return idx.astype(np.int64, copy=False)


def unique_pairs(user_idx: np.ndarray, item_idx: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """(n, 2) distinct (user, item) rows sorted by user then item, after the checks every id model's fit needs:
    1-D integer indices in range, row-aligned, at least one interaction and two items."""
    user_idx = check_indices("user_idx", user_idx, n_users)
    item_idx = check_indices("item_idx", item_idx, n_items)
    if user_idx.shape != item_idx.shape:
        raise ValueError(f"user_idx {user_idx.shape} and item_idx {item_idx.shape} must be row-aligned")
    if user_idx.size == 0:
        raise ValueError("fitting needs at least one (user, item) interaction; the training set is empty")
    if n_items < 2:
        raise ValueError(f"fitting needs at least 2 items to sample negatives, got n_items={n_items}")
    return np.unique(np.stack([user_idx, item_idx], axis=1), axis=0)


def sample_negatives(
    pos_u: torch.Tensor, n_items: int, known: torch.Tensor | None, gen: torch.Generator
) -> torch.Tensor:
    """One uniform item per row; with ``known`` (sorted ``user * n_items + item`` keys of the positives)
    an item the user already has is drawn again, as RecBole's sampler does. Users who have every item
    keep their last draw (nothing else to sample)."""
    negatives = torch.randint(0, n_items, (len(pos_u),), generator=gen)
    if known is None:
        return negatives
    todo = torch.arange(len(pos_u))
    for _ in range(100):  # a user holding a share s of the catalogue needs ~1/(1-s) draws
        keys = pos_u[todo] * n_items + negatives[todo]
        where = torch.searchsorted(known, keys).clamp(max=len(known) - 1)
        todo = todo[known[where] == keys]
        if len(todo) == 0:
            break
        negatives[todo] = torch.randint(0, n_items, (len(todo),), generator=gen)
    return negatives


def fit_pairwise(
    model: nn.Module,
    pairs: np.ndarray,
    n_items: int,
    settings: FitSettings,
    gen: torch.Generator,
    valid: ValidationSet | None = None,
    exclude_positives: bool = True,
    name: str = "model",
) -> dict[str, object]:
    """Adam on the model's ``pair_loss`` over shuffled positive ``pairs`` with one negative each; with
    ``valid`` (and ``patience`` > 0), NDCG@k after every epoch, stop after ``patience`` epochs without
    a better one and restore the best epoch's weights. Returns what happened (epochs, best, history)."""
    pos_u, pos_i = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])
    known = torch.from_numpy(pairs[:, 0] * n_items + pairs[:, 1]) if exclude_positives else None
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=settings.lr)
    n, started = len(pairs), time.perf_counter()
    stopping = valid is not None and settings.patience > 0 and len(valid.users) > 0
    best, best_epoch, best_state, history = -1.0, 0, None, []
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        negatives = sample_negatives(pos_u, n_items, known, gen)
        total = 0.0
        for start in range(0, n, settings.batch_size):
            batch = order[start : start + settings.batch_size]
            loss = model.pair_loss(pos_u[batch], pos_i[batch], negatives[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.detach().item() * len(batch)
        model.eval()
        entry = {"epoch": epoch + 1, "loss": total / n}
        if stopping:
            entry["val_ndcg"] = valid.ndcg(model)
            if entry["val_ndcg"] > best:
                best, best_epoch, best_state = entry["val_ndcg"], epoch + 1, copy.deepcopy(model.state_dict())
        history.append(entry)
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == settings.epochs:
            log.info(
                "%s epoch %d/%d: %s, %.0f pairs/s",
                name,
                epoch + 1,
                settings.epochs,
                {k: round(v, 4) for k, v in entry.items() if k != "epoch"},
                n * (epoch + 1) / max(time.perf_counter() - started, 1e-9),
            )
        if stopping and epoch + 1 - best_epoch >= settings.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {
        "epochs_run": len(history),
        "best_epoch": best_epoch if stopping else len(history),
        "best_val_ndcg": round(best, 6) if stopping else None,
        "history": history,
    }
