"""Contrastive losses shared by the encoder and retrieval systems."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def info_nce(
    a: torch.Tensor,
    b: torch.Tensor,
    temperature: float = 0.1,
    valid: torch.Tensor | None = None,
    ids_a: torch.Tensor | None = None,
    ids_b: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE between row-aligned batches ``a`` and ``b`` (in-batch negatives).

    ``valid`` (B,) masks rows whose pair is missing (e.g. no audio); they serve neither as
    anchors nor as negatives. Returns 0 when fewer than two valid rows remain.

    ``ids_a`` / ``ids_b`` (B,) name what each row of ``a`` / ``b`` is (an item, or a group of items
    with identical content). A column that holds the row's own positive again, or the row's own
    anchor, is not a negative and is left out of the softmax: with co-engaged pairs a popular item is
    the neighbour of many rows in one batch, and counting its copies as negatives asked the model to
    score an item above itself, which it cannot; the loss then sat at a floor and the gradient
    pushed every embedding toward the same point (validation loss flat on text-only items).
    """
    if valid is not None:
        a, b = a[valid], b[valid]
        ids_a = None if ids_a is None else ids_a[valid]
        ids_b = None if ids_b is None else ids_b[valid]
    if a.shape[0] < 2:
        return a.sum() * 0.0
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    forward, backward = logits, logits.T
    if ids_a is not None or ids_b is not None:
        ids_a = ids_b if ids_a is None else ids_a
        ids_b = ids_a if ids_b is None else ids_b
        eye = torch.eye(a.shape[0], dtype=torch.bool, device=a.device)
        # Row i of a against column j of b: b_j is not a negative if it is b_i's item or a_i's item.
        not_negative = (ids_b.unsqueeze(0) == ids_b.unsqueeze(1)) | (ids_b.unsqueeze(0) == ids_a.unsqueeze(1))
        forward = logits.masked_fill(not_negative & ~eye, float("-inf"))
        # Row i of b against column j of a: a_j is not a negative if it is a_i's item or b_i's item.
        not_negative = (ids_a.unsqueeze(0) == ids_a.unsqueeze(1)) | (ids_a.unsqueeze(0) == ids_b.unsqueeze(1))
        backward = logits.T.masked_fill(not_negative & ~eye, float("-inf"))
    return 0.5 * (F.cross_entropy(forward, target) + F.cross_entropy(backward, target))
