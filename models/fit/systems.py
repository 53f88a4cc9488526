"""LightningModules ("systems") that wrap the plain encoder and ranker modules for training."""

from __future__ import annotations

from itertools import combinations

import lightning.pytorch as L
import torch
from torch import nn
from torch.nn import functional as F

from models.nn.encoders import MultimodalItemEncoder
from models.nn.losses import info_nce
from models.nn.ranker import Ranker, RankerOutput
from models.nn.retrieval import TwoTower, sampled_softmax_loss


class _System(L.LightningModule):
    """One shared step serves training and validation; subclasses define ``_step``."""

    def _step(self, batch, stage: str) -> torch.Tensor:
        raise NotImplementedError

    def _log(self, name: str, value: torch.Tensor, size: int, prog_bar: bool = False) -> None:
        """Epoch means for training too: Lightning's default for a training step is the last batch's value,
        which the history then recorded as the epoch's train loss (an epoch ending on a batch of two
        encoder pairs showed 0.69 while every full batch sat at chance, ln 64 = 4.16)."""
        self.log(name, value, on_step=False, on_epoch=True, prog_bar=prog_bar, batch_size=size)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class MultimodalEncoderSystem(_System):
    """Cross-modal InfoNCE (each pair of present modalities) plus two behavioural terms: an InfoNCE
    pulling items co-engaged by the same users together, and one aligning each item's content
    embedding with its engagement profile (``vidrec.engagement.engagement_vectors``) through a
    learned projection, so content learns what users respond to (energy, quality), not only what
    the modalities share."""

    def __init__(
        self,
        encoder: MultimodalItemEncoder,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        temperature: float = 0.1,
        behaviour_weight: float = 1.0,
        engagement_dim: int = 0,
        engagement_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        dim = encoder.fusion.out[-1].out_features
        self.engagement_proj = (
            nn.Sequential(nn.Linear(engagement_dim, dim), nn.GELU(), nn.Linear(dim, dim)) if engagement_dim else None
        )
        self.save_hyperparameters(ignore=["encoder"])

    def _step(self, batch: dict[str, dict[str, torch.Tensor] | torch.Tensor], stage: str) -> torch.Tensor:
        anchor, neighbour = batch["anchor"], batch["neighbour"]
        parts = self.encoder.modality_vectors(anchor)
        mask = anchor["mask"].bool()
        t = self.hparams.temperature
        # Content groups (models.fit.data.EncoderDataModule): copies of an item, or items with identical
        # content, are never each other's negatives. Batches built without them mask nothing.
        mine, theirs = batch.get("anchor_group"), batch.get("neighbour_group")
        cross = torch.stack(
            [
                info_nce(parts[:, i], parts[:, j], t, valid=mask[:, i] & mask[:, j], ids_a=mine, ids_b=mine)
                for i, j in combinations(range(parts.shape[1]), 2)
            ]
        ).mean()
        fused = self.encoder.fusion(parts, mask)
        behaviour = info_nce(
            fused, self.encoder.fused(neighbour), t, valid=batch["has_neighbour"].bool(), ids_a=mine, ids_b=theirs
        )
        loss = cross + self.hparams.behaviour_weight * behaviour
        size = mask.shape[0]
        if self.engagement_proj is not None:
            target = self.engagement_proj(batch["engagement"])
            engagement = info_nce(fused, target, t, valid=batch["has_engagement"].bool(), ids_a=mine, ids_b=mine)
            loss = loss + self.hparams.engagement_weight * engagement
            self._log(f"{stage}_engagement_loss", engagement, size)
        self._log(f"{stage}_loss", loss, size, prog_bar=True)
        self._log(f"{stage}_cross_modal_loss", cross, size)
        self._log(f"{stage}_behaviour_loss", behaviour, size)
        return loss


class RankerSystem(_System):
    """Multi-task loss: click BCE (with the position tower), ESMM conversion BCE on all
    impressions, and log-watch regression on clicked impressions."""

    def __init__(
        self,
        ranker: Ranker,
        item_embeddings: torch.Tensor,
        lr: float = 3e-3,
        weight_decay: float = 1e-5,
        id_dropout: float = 0.1,
        watch_weight: float = 0.2,
        conversion_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.ranker = ranker
        # Content vectors are frozen inputs: a buffer moves with the module, is not trained.
        self.register_buffer("item_embeddings", item_embeddings.float(), persistent=False)
        self.save_hyperparameters(ignore=["ranker", "item_embeddings"])

    def forward(self, batch: dict[str, torch.Tensor], use_position: bool = True) -> RankerOutput:
        candidate_id = batch["candidate_id"]
        user_id = batch["user_id"]
        history_ids = batch["history_ids"]
        if self.training and self.hparams.id_dropout > 0:
            # Hide ids at random so the model also learns to rank id-less (cold) items and users.
            keep = torch.rand(candidate_id.shape, device=self.device) >= self.hparams.id_dropout
            candidate_id = candidate_id * keep
            keep_user = torch.rand(user_id.shape, device=self.device) >= self.hparams.id_dropout
            user_id = user_id * keep_user
        history_idx = batch["history"]
        history_mask = history_idx >= 0
        history = self.item_embeddings[history_idx.clamp(min=0)]
        return self.ranker(
            candidate=self.item_embeddings[batch["candidate"]],
            candidate_id=candidate_id,
            item_features=batch["item_features"],
            history=history,
            history_ids=history_ids * history_mask,
            history_mask=history_mask,
            position=batch["position"] if use_position else None,
            user_id=user_id,
            taste=batch.get("taste"),
            item_codes=batch.get("item_codes"),
            live_now=batch.get("live_now"),
        )

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weighted total and each head's loss; plain loops (benchmarks) call this directly.

        Rows whose source has no watch time or conversion label (``has_watch_label`` /
        ``has_conversion_label`` False; both default to True) are left out of that head's loss, so
        they add neither loss nor gradient there; the click loss uses every row."""
        out = self(batch)
        clicked, converted = batch["clicked"].float(), batch["converted"].float()
        click_loss = F.binary_cross_entropy_with_logits(out.click_logit, clicked)
        has_conversion = _label_mask(batch, "has_conversion_label", clicked)
        p_ctcvr = (torch.sigmoid(out.click_logit) * torch.sigmoid(out.cvr_logit)).clamp(1e-6, 1 - 1e-6)
        conversion_loss = _masked_mean(F.binary_cross_entropy(p_ctcvr, converted, reduction="none"), has_conversion)
        has_watch = (clicked > 0) & _label_mask(batch, "has_watch_label", clicked)
        watch_loss = _masked_mean(F.mse_loss(out.log_watch, torch.log1p(batch["watch_s"]), reduction="none"), has_watch)
        loss = click_loss + self.hparams.conversion_weight * conversion_loss + self.hparams.watch_weight * watch_loss
        return {"loss": loss, "click_loss": click_loss, "conversion_loss": conversion_loss, "watch_loss": watch_loss}

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        losses = self.losses(batch)
        size = batch["clicked"].shape[0]
        self._log(f"{stage}_loss", losses["loss"], size, prog_bar=True)
        for name in ("click_loss", "conversion_loss", "watch_loss"):
            self._log(f"{stage}_{name}", losses[name], size)
        return losses["loss"]


def _label_mask(batch: dict[str, torch.Tensor], key: str, like: torch.Tensor) -> torch.Tensor:
    mask = batch.get(key)
    return torch.ones_like(like, dtype=torch.bool) if mask is None else mask.bool()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``mask``; 0 (still attached to the graph) when nothing is selected.
    ``where`` rather than multiplying by the mask, so a non-finite value on a masked row (e.g. a
    placeholder label) cannot leak in as 0 * inf = NaN."""
    kept = torch.where(mask, values, torch.zeros_like(values))
    return kept.sum() / mask.sum().clamp(min=1)


class RetrievalSystem(_System):
    """Two-tower training on (history before a click, clicked item) pairs with in-batch sampled
    softmax and logQ correction; item ids are dropped at random so cold items retrieve well too.

    With ``every_position`` each history position also predicts the click after it (SASRec's loss): the
    causal mask keeps a position from seeing its target, and a history of H clicks gives H examples
    instead of one. ``id_buckets`` and ``log_q`` are per-item tables (row-aligned with
    ``item_embeddings``) for those history targets; without them history items use content alone and
    only the last position is trained."""

    def __init__(
        self,
        model: TwoTower,
        item_embeddings: torch.Tensor,
        lr: float = 2e-3,
        weight_decay: float = 1e-5,
        temperature: float = 0.05,
        # 0.3 cost warm items on lastfm-2k (served NDCG@10 0.149 vs 0.157 at 0.1); the content path
        # still trains on every row, since the item vector is content + id.
        id_dropout: float = 0.1,
        id_buckets: torch.Tensor | None = None,
        log_q: torch.Tensor | None = None,
        every_position: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        n = len(item_embeddings)
        self.register_buffer("item_embeddings", item_embeddings.float(), persistent=False)
        self.register_buffer(
            "id_buckets",
            torch.zeros(n, dtype=torch.long) if id_buckets is None else torch.as_tensor(id_buckets, dtype=torch.long),
            persistent=False,
        )
        self.register_buffer(
            "log_q", torch.zeros(n) if log_q is None else torch.as_tensor(log_q).float(), persistent=False
        )
        self.save_hyperparameters(ignore=["model", "item_embeddings", "id_buckets", "log_q"])
        self.every_position = every_position and log_q is not None

    def _drop_ids(self, ids: torch.Tensor) -> torch.Tensor:
        if self.training and self.hparams.id_dropout > 0:
            return ids * (torch.rand(ids.shape, device=ids.device) >= self.hparams.id_dropout)
        return ids

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        history = batch["history"]
        mask = history >= 0
        safe = history.clamp(min=0)
        user_tower = self.model.user
        states = user_tower.sequence(self.item_embeddings[safe], self._drop_ids(self.id_buckets[safe]) * mask, mask)
        last = torch.where(mask.any(dim=1, keepdim=True), states[:, -1], user_tower.empty.expand(len(mask), -1))
        user_ids = batch.get("user_id")
        if user_ids is not None:
            user_ids = self._drop_ids(user_ids)  # so the tower also serves users it never trained on
        users, targets = last, batch["item"]
        target_ids, log_q = batch["item_id"], batch["log_q"]
        if self.every_position and stage == "train":
            inner = mask[:, :-1]  # a real click at t, followed by the real click at t + 1
            inner_targets = history[:, 1:][inner]
            users = torch.cat([states[:, :-1][inner], last])
            targets = torch.cat([inner_targets, targets])
            target_ids = torch.cat([self.id_buckets[inner_targets], target_ids])
            log_q = torch.cat([self.log_q[inner_targets], log_q])
            if user_ids is not None:
                user_ids = torch.cat([user_ids.unsqueeze(1).expand_as(mask)[:, :-1][inner], user_ids])
        users = user_tower.output(users, user_ids)
        items = self.model.item(self.item_embeddings[targets], self._drop_ids(target_ids))
        loss = sampled_softmax_loss(users, items, targets, log_q, self.hparams.temperature)
        self._log(f"{stage}_loss", loss, history.shape[0], prog_bar=True)
        return loss
