"""Contrastive losses shared by the encoder and retrieval systems."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def info_nce(
    a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE between row-aligned batches ``a`` and ``b`` (in-batch negatives).

    ``valid`` (B,) masks rows whose pair is missing (e.g. no audio); they serve neither as
    anchors nor as negatives. Returns 0 when fewer than two valid rows remain.
    """
    if valid is not None:
        a, b = a[valid], b[valid]
    if a.shape[0] < 2:
        return a.sum() * 0.0
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
