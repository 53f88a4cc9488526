"""Multi-task ranker: target attention over the user's history, click / watch / conversion heads.

Watch time is a regression on log1p(watch_s) conditional on a click: the simulator and real
logs give exact seconds bounded by duration, and E[watch] = p(click) × E[watch | click]
composes with the click head. The YouTube weighted-LR trick only approximates E[watch] when
CTR is small and folds click probability into the watch estimate.
Conversion is ESMM-style: p(convert) = p(click) × p(convert | click), trained on all impressions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

SERVING_POSITION = 0


@dataclass(frozen=True)
class BlendWeights:
    """How the serving score mixes the heads; watch time is divided by ``watch_scale_s``."""

    click: float = 1.0
    watch: float = 1.0
    conversion: float = 1.0
    watch_scale_s: float = 5.0


@dataclass
class RankerOutput:
    click_logit: torch.Tensor
    cvr_logit: torch.Tensor
    log_watch: torch.Tensor

    @property
    def p_click(self) -> torch.Tensor:
        return torch.sigmoid(self.click_logit)

    @property
    def p_conversion(self) -> torch.Tensor:
        return self.p_click * torch.sigmoid(self.cvr_logit)

    @property
    def expected_watch_s(self) -> torch.Tensor:
        return self.p_click * torch.expm1(self.log_watch).clamp(min=0.0)

    def blend(self, weights: BlendWeights) -> torch.Tensor:
        return (
            weights.click * self.p_click
            + weights.watch * self.expected_watch_s / weights.watch_scale_s
            + weights.conversion * self.p_conversion
        )


class TargetAttention(nn.Module):
    """Deep-Interest-Network attention: how much each history item matters for this candidate."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim * 4, dim), nn.GELU(), nn.Linear(dim, 1))

    def forward(self, history: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t = target.unsqueeze(1).expand_as(history)
        logits = self.mlp(torch.cat([history, t, history * t, history - t], dim=-1)).squeeze(-1)
        weights = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1).nan_to_num(0.0)
        return (weights.unsqueeze(-1) * history).sum(dim=1)


class Ranker(nn.Module):
    """Scores (user history, candidate) pairs; ids are hashed into ``id_buckets`` (0 = unknown)."""

    def __init__(
        self,
        content_dim: int = 64,
        hidden: int = 64,
        id_buckets: int = 4096,
        max_position: int = 64,
        item_features: int = 3,
    ) -> None:
        super().__init__()
        self.content = nn.Linear(content_dim, hidden)
        self.item_id = nn.Embedding(id_buckets, hidden, padding_idx=0)
        self.attention = TargetAttention(hidden)
        self.trunk = nn.Sequential(
            nn.Linear(hidden * 3 + item_features + 1, hidden * 2), nn.GELU(),
            nn.Linear(hidden * 2, hidden), nn.GELU(),
        )
        self.click_head = nn.Linear(hidden, 1)
        self.cvr_head = nn.Linear(hidden, 1)
        self.watch_head = nn.Linear(hidden, 1)
        # Shallow tower: position only shifts the click logit, so it can be fixed at serving.
        self.position_bias = nn.Embedding(max_position, 1)
        nn.init.zeros_(self.position_bias.weight)

    def forward(
        self,
        candidate: torch.Tensor,
        candidate_id: torch.Tensor,
        item_features: torch.Tensor,
        history: torch.Tensor,
        history_ids: torch.Tensor,
        history_mask: torch.Tensor,
        position: torch.Tensor | None = None,
    ) -> RankerOutput:
        target = self.content(candidate) + self.item_id(candidate_id)
        hist = self.content(history) + self.item_id(history_ids)
        user = self.attention(hist, history_mask, target)
        has_history = history_mask.any(dim=1, keepdim=True).float()
        h = self.trunk(torch.cat([user, target, user * target, item_features, has_history], dim=-1))
        if position is None:
            position = torch.full_like(candidate_id, SERVING_POSITION)
        position = position.clamp(max=self.position_bias.num_embeddings - 1)
        click_logit = self.click_head(h).squeeze(-1) + self.position_bias(position).squeeze(-1)
        return RankerOutput(
            click_logit=click_logit,
            cvr_logit=self.cvr_head(h).squeeze(-1),
            log_watch=self.watch_head(h).squeeze(-1),
        )
