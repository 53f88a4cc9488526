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


@dataclass
class UserState:
    """One user's candidate-independent ranker inputs (``Ranker.encode_user``)."""

    history: torch.Tensor  # (H, hidden): encoded history items
    prepared: torch.Tensor  # (H, hidden): the history's share of the attention's first layer
    mask: torch.Tensor  # (H,) bool: real history items
    user: torch.Tensor  # (1, hidden): user id (+ taste) vector
    has_history: torch.Tensor  # (1, 1)


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

    def prepare(self, history: torch.Tensor) -> torch.Tensor:
        """The history's share of the first layer, for one user: ``(H, dim)``.

        The first layer is linear in ``[h, t, h*t, h-t]``, so with its weight split as
        ``[W1 W2 W3 W4]`` it equals ``(W1+W4) h + (W2-W4) t + W3 (h*t) + b``; the ``h`` term does not
        depend on the candidate and is computed once per request instead of once per candidate.
        """
        w1, _, _, w4 = self.mlp[0].weight.chunk(4, dim=1)
        return history @ (w1 + w4).T + self.mlp[0].bias

    def attend_one(
        self, history: torch.Tensor, prepared: torch.Tensor, mask: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """``forward`` for one user's history ``(H, dim)`` (``mask``: ``(H,)``) against ``C`` targets ``(C, dim)``:
        the same numbers, without materialising the ``(C, H, 4·dim)`` concatenation."""
        _, w2, w3, w4 = self.mlp[0].weight.chunk(4, dim=1)
        per_target = target @ (w2 - w4).T  # (C, dim)
        cross = (target.unsqueeze(1) * history.unsqueeze(0)) @ w3.T  # (C, H, dim): W3 (h*t)
        hidden = self.mlp[1](prepared.unsqueeze(0) + per_target.unsqueeze(1) + cross)
        logits = self.mlp[2](hidden).squeeze(-1)  # (C, H)
        weights = torch.softmax(logits.masked_fill(~mask.unsqueeze(0), float("-inf")), dim=1).nan_to_num(0.0)
        return weights @ history


class Ranker(nn.Module):
    """Scores (user, history, candidate) triples; item and user ids are hashed into buckets
    (0 = unknown), so a cold item or a new user is scored from content and history alone."""

    def __init__(
        self,
        content_dim: int = 64,
        hidden: int = 64,
        id_buckets: int = 4096,
        max_position: int = 64,
        item_features: int = 3,
        user_buckets: int = 4096,
        use_taste: bool = False,
        commerce: bool = False,
        code_buckets: int = 256,
    ) -> None:
        super().__init__()
        # Per-dimension standardisation of content vectors, fitted on the training catalogue
        # (``fit_content_scale``) and saved with the weights. The embedding mixes a unit-norm learned
        # part (each dimension ~1/sqrt(dim)) with measured descriptors on another scale; with Adam a
        # feature's effective learning rate follows its scale, so unscaled the small dimensions barely train.
        self.register_buffer("content_mean", torch.zeros(content_dim))
        self.register_buffer("content_std", torch.ones(content_dim))
        self.content = nn.Sequential(nn.Linear(content_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.item_id = nn.Embedding(id_buckets, hidden, padding_idx=0)
        # A user's own vector learns their taste from every impression (clicks and skips), which a
        # click history alone cannot; small init so a bucket never trained stays near "no opinion".
        self.user_id = nn.Embedding(user_buckets, hidden, padding_idx=0)
        nn.init.normal_(self.item_id.weight, std=0.01)
        nn.init.normal_(self.user_id.weight, std=0.01)
        with torch.no_grad():
            self.item_id.weight[0].zero_()
            self.user_id.weight[0].zero_()
        # The user's taste vector lives in content-embedding space (vidrec.engagement); batch-normalised
        # because its scale depends on how much a user has seen.
        self.taste_in = (
            nn.Sequential(nn.BatchNorm1d(content_dim), nn.Linear(content_dim, hidden)) if use_taste else None
        )
        # Commerce inputs (hashed brand and category, 0 = none; live_now): vectors added to the candidate's, so the
        # user · item term can learn brand taste and host affinity; live_now also enters the trunk as a flag.
        self.commerce = commerce
        if commerce:
            self.brand = nn.Embedding(code_buckets, hidden, padding_idx=0)
            self.category = nn.Embedding(code_buckets, hidden, padding_idx=0)
            self.live = nn.Parameter(torch.zeros(hidden))
            for table in (self.brand, self.category):  # small init; the padding row (no brand) stays zero
                nn.init.normal_(table.weight, std=0.01).data[0].zero_()
        self.attention = TargetAttention(hidden)
        self.trunk = nn.Sequential(
            nn.Linear(hidden * 4 + item_features + 1 + int(commerce), hidden * 2),
            nn.GELU(),
            nn.Linear(hidden * 2, hidden),
            nn.GELU(),
        )
        self.click_head = nn.Linear(hidden, 1)
        # An explicit user · item term: MLPs approximate dot products poorly (Rendle et al., 2020),
        # and taste × content attributes is the shape of the signal.
        self.taste = nn.Linear(hidden, hidden)
        self.cvr_head = nn.Linear(hidden, 1)
        self.watch_head = nn.Linear(hidden, 1)
        # Shallow tower: position only shifts the click logit, so it can be fixed at serving.
        self.position_bias = nn.Embedding(max_position, 1)
        nn.init.zeros_(self.position_bias.weight)

    @torch.no_grad()
    def fit_content_scale(self, embeddings: torch.Tensor) -> None:
        """Set the content standardisation from the catalogue's (N, content_dim) embeddings."""
        embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
        self.content_mean.copy_(embeddings.mean(dim=0))
        self.content_std.copy_(embeddings.std(dim=0).nan_to_num(1.0).clamp(min=1e-4))

    def embed_content(self, vectors: torch.Tensor) -> torch.Tensor:
        """Content embeddings (..., content_dim) → (..., hidden), standardised first."""
        return self.content((vectors - self.content_mean) / self.content_std)

    def forward(
        self,
        candidate: torch.Tensor,
        candidate_id: torch.Tensor,
        item_features: torch.Tensor,
        history: torch.Tensor,
        history_ids: torch.Tensor,
        history_mask: torch.Tensor,
        position: torch.Tensor | None = None,
        user_id: torch.Tensor | None = None,
        taste: torch.Tensor | None = None,
        item_codes: torch.Tensor | None = None,
        live_now: torch.Tensor | None = None,
    ) -> RankerOutput:
        target = self.target_vector(candidate, candidate_id, item_codes, live_now)
        hist = self.embed_content(history) + self.item_id(history_ids)
        interest = self.attention(hist, history_mask, target)
        if user_id is None:
            user_id = torch.zeros_like(candidate_id)
        user = self._user_vector(user_id, taste)
        has_history = history_mask.any(dim=1, keepdim=True).float()
        return self._heads(interest, user, target, item_features, has_history, candidate_id, position, live_now)

    def target_vector(
        self,
        candidate: torch.Tensor,
        candidate_id: torch.Tensor,
        item_codes: torch.Tensor | None,
        live_now: torch.Tensor | None,
    ) -> torch.Tensor:
        """The candidate's vector: content + id, plus brand, category and the live shift when commerce is on
        (``item_codes`` None: no brand or category, the zero padding rows; ``live_now`` None: not live). The
        commerce parameters take part even then (adding zeros), so DDP finds every parameter used."""
        target = self.embed_content(candidate) + self.item_id(candidate_id)
        if not self.commerce:
            return target
        codes = candidate_id.new_zeros((*candidate_id.shape, 2)) if item_codes is None else item_codes
        live = target.new_zeros(candidate_id.shape) if live_now is None else live_now.float()
        return target + self.brand(codes[..., 0]) + self.category(codes[..., 1]) + live.unsqueeze(-1) * self.live

    def _user_vector(self, user_id: torch.Tensor, taste: torch.Tensor | None) -> torch.Tensor:
        user = self.user_id(user_id)
        if self.taste_in is not None:
            # Without a taste vector (a caller that keeps no serving state) the user is taken as
            # average: the normalised input is 0, leaving the projection's bias.
            user = user + (self.taste_in(taste.float()) if taste is not None else self.taste_in[1].bias)
        return user

    def encode_user(
        self,
        history: torch.Tensor,
        history_ids: torch.Tensor,
        history_mask: torch.Tensor,
        user_id: int = 0,
        taste: torch.Tensor | None = None,
    ) -> UserState:
        """One user's candidate-independent inputs, for ``score_candidates``: ``history`` ``(H, content_dim)``,
        ``history_ids`` and ``history_mask`` ``(H,)``, ``taste`` ``(content_dim,)`` or None."""
        hist = self.embed_content(history) + self.item_id(history_ids)
        ids = torch.tensor([user_id], dtype=torch.long, device=hist.device)
        user = self._user_vector(ids, None if taste is None else taste.reshape(1, -1))
        return UserState(
            history=hist,
            prepared=self.attention.prepare(hist),
            mask=history_mask,
            user=user,
            has_history=history_mask.any().float().reshape(1, 1),
        )

    def score_candidates(
        self,
        state: UserState,
        candidate: torch.Tensor,
        candidate_id: torch.Tensor,
        item_features: torch.Tensor,
        position: torch.Tensor | None = None,
        item_codes: torch.Tensor | None = None,
        live_now: torch.Tensor | None = None,
    ) -> RankerOutput:
        """``forward`` for one user (``encode_user``) over ``C`` candidates: the history is encoded once
        per request and broadcast, not re-encoded per candidate. Same outputs as ``forward`` (to float error)."""
        target = self.target_vector(candidate, candidate_id, item_codes, live_now)
        interest = self.attention.attend_one(state.history, state.prepared, state.mask, target)
        n = target.shape[0]
        return self._heads(
            interest,
            state.user.expand(n, -1),
            target,
            item_features,
            state.has_history.expand(n, 1),
            candidate_id,
            position,
            live_now,
        )

    def _heads(
        self,
        interest: torch.Tensor,
        user: torch.Tensor,
        target: torch.Tensor,
        item_features: torch.Tensor,
        has_history: torch.Tensor,
        candidate_id: torch.Tensor,
        position: torch.Tensor | None,
        live_now: torch.Tensor | None = None,
    ) -> RankerOutput:
        parts = [interest, user, target, (interest + user) * target, item_features, has_history]
        if self.commerce:
            parts.append(torch.zeros_like(has_history) if live_now is None else live_now.float().reshape(-1, 1))
        h = self.trunk(torch.cat(parts, dim=-1))
        if position is None:
            position = torch.full_like(candidate_id, SERVING_POSITION)
        position = position.clamp(max=self.position_bias.num_embeddings - 1)
        affinity = (self.taste(interest + user) * target).sum(-1) / target.shape[-1] ** 0.5
        click_logit = self.click_head(h).squeeze(-1) + affinity + self.position_bias(position).squeeze(-1)
        return RankerOutput(
            click_logit=click_logit,
            cvr_logit=self.cvr_head(h).squeeze(-1),
            log_watch=self.watch_head(h).squeeze(-1),
        )
