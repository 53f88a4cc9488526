"""In-memory tensors for items and impressions, and the DataModules that batch them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import lightning.pytorch as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Sampler

from vidrec.media.backbone import FEATURE_DIM
from vidrec.media.shards import read_shard

MODALITY_COLUMNS = ("has_visual", "has_audio", "has_text")


@dataclass
class ItemTensors:
    """Content features of a catalogue, row-aligned with ``video_ids``."""

    video_ids: list[str]
    frames: torch.Tensor  # (N, T, 3, H, W) uint8
    mel: torch.Tensor  # (N, F, M) float16
    text: torch.Tensor  # (N, D) float32, frozen sentence embeddings
    mask: torch.Tensor  # (N, 3) bool: visual, audio, text present
    # (N, T, 1280) float16 frozen backbone features (vidrec.media.recognition), when the catalogue has them
    frame_features: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.video_ids)

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"frames": self.frames[idx], "mel": self.mel[idx], "text": self.text[idx], "mask": self.mask[idx]}
        if self.frame_features is not None:
            out["frame_features"] = self.frame_features[idx]
        return out

    def content_groups(self) -> torch.Tensor:
        """(N,) int64: items whose content (frames, mel, text and presence mask) is byte-identical share a
        number. Two such items embed identically whatever the encoder learns, so neither may serve as
        the other's in-batch negative (``models.nn.losses.info_nce``)."""
        seen: dict[bytes, int] = {}
        groups = np.empty(len(self), dtype=np.int64)
        for i in range(len(self)):
            digest = hashlib.blake2b(digest_size=16)
            for part in (self.frames[i], self.mel[i], self.text[i], self.mask[i]):
                digest.update(part.numpy().tobytes())
            groups[i] = seen.setdefault(digest.digest(), len(seen))
        return torch.from_numpy(groups)

    def batches(self, size: int = 256) -> Iterator[dict[str, torch.Tensor]]:
        """Consecutive batches of at most ``size`` items, in row order."""
        for start in range(0, len(self), size):
            yield self.batch(torch.arange(start, min(start + size, len(self))))

    @classmethod
    def from_catalogue(cls, catalogue: pd.DataFrame, text_embeddings: np.ndarray) -> ItemTensors:
        """``catalogue``: one row per item with video_id, shard_path, has_visual, has_audio, has_text;
        ``text_embeddings`` row-aligned with it."""
        shards = [read_shard(path) for path in catalogue["shard_path"]]
        return cls(
            video_ids=catalogue["video_id"].tolist(),
            frames=torch.from_numpy(np.stack([s.frames for s in shards])),
            mel=torch.from_numpy(np.stack([s.mel for s in shards])),
            text=torch.from_numpy(np.asarray(text_embeddings, dtype=np.float32)),
            mask=torch.from_numpy(catalogue[list(MODALITY_COLUMNS)].to_numpy(dtype=bool)),
            frame_features=backbone_features(catalogue, n_frames=shards[0].frames.shape[0] if shards else 0),
        )


def backbone_features(catalogue: pd.DataFrame, n_frames: int) -> torch.Tensor | None:
    """(N, T, 1280) cached backbone features from ``frame_features_path``; None when the catalogue was
    built without recognition (no such column).

    Items without (no video file, or frames that would not decode for recognition) get zeros; for
    text-only items the visual modality is masked anyway. A catalogue with the column but no recognised
    item (all text) gets all zeros of ``n_frames`` frames, so the backbone encoder trains on it too."""
    if "frame_features_path" not in catalogue:
        return None
    arrays = {p: np.load(p) for p in catalogue["frame_features_path"].dropna().unique()}
    shape = next(iter(arrays.values())).shape if arrays else (n_frames, FEATURE_DIM)
    zeros = np.zeros(shape, np.float16)
    paths = catalogue["frame_features_path"]
    stacked = np.stack([arrays.get(p, zeros) if isinstance(p, str) else zeros for p in paths])
    return torch.from_numpy(stacked.astype(np.float16))


class EpochShuffle(Sampler[int]):
    """A permutation drawn from ``(seed, epoch)``: Lightning calls ``set_epoch`` before each epoch,
    so a run resumed from a checkpoint sees exactly the batches an uninterrupted run would have."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def _loader(size: int, batch_size: int, shuffle: bool, seed: int, collate) -> DataLoader:
    sampler = EpochShuffle(size, seed) if shuffle else None
    return DataLoader(
        range(size), batch_size=batch_size, sampler=sampler, collate_fn=lambda idx: collate(torch.as_tensor(idx))
    )


class EncoderDataModule(L.LightningDataModule):
    """(item, co-engaged neighbour) pairs; items are split into train/validation by a seeded draw.

    Each batch also carries the anchors' engagement vectors (zeros and ``has_engagement`` False
    where an item has none, or when none are given), and ``anchor_group`` / ``neighbour_group``: the
    content group of each side (``ItemTensors.content_groups``), so the loss can keep an item, or an
    item with identical content, out of its own negatives."""

    def __init__(
        self,
        items: ItemTensors,
        neighbours: np.ndarray,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        seed: int = 0,
        engagement: np.ndarray | None = None,
        has_engagement: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.items, self.neighbours = items, neighbours
        n = len(neighbours)
        self.engagement = torch.as_tensor(
            engagement if engagement is not None else np.zeros((n, 1)), dtype=torch.float32
        )
        self.has_engagement = torch.as_tensor(has_engagement if has_engagement is not None else np.zeros(n, bool))
        self.batch_size, self.val_fraction, self.seed = batch_size, val_fraction, seed

    def setup(self, stage: str | None = None) -> None:
        n, k = self.neighbours.shape
        self._groups = self.items.content_groups()
        order = np.random.default_rng(self.seed).permutation(n)
        n_val = int(round(n * self.val_fraction)) if n >= 20 else 0
        self._val_items, self._train_items = order[:n_val], order[n_val:]
        self._train_pairs = self._pairs(self._train_items)
        self._val_pairs = self._pairs(self._val_items)

    def _pairs(self, items: np.ndarray) -> torch.Tensor:
        anchors = np.repeat(items, self.neighbours.shape[1])
        others = self.neighbours[items].reshape(-1)
        return torch.from_numpy(np.stack([anchors, others], axis=1))

    def _collate(self, pairs: torch.Tensor):
        def collate(idx: torch.Tensor) -> dict:
            anchor, other = pairs[idx, 0], pairs[idx, 1]
            has = other >= 0
            other = torch.where(has, other, anchor)
            return {
                "anchor": self.items.batch(anchor),
                "neighbour": self.items.batch(other),
                "anchor_group": self._groups[anchor],
                "neighbour_group": self._groups[other],
                "has_neighbour": has,
                "engagement": self.engagement[anchor],
                "has_engagement": self.has_engagement[anchor],
            }

        return collate

    def train_dataloader(self) -> DataLoader:
        return _loader(len(self._train_pairs), self.batch_size, True, self.seed, self._collate(self._train_pairs))

    def val_dataloader(self) -> DataLoader:
        pairs = self._val_pairs if len(self._val_pairs) else self._train_pairs[: self.batch_size]
        return _loader(len(pairs), self.batch_size, False, self.seed, self._collate(pairs))


IMPRESSION_KEYS = (
    "candidate",
    "candidate_id",
    "user_id",
    "item_features",
    "history",
    "history_ids",
    "position",
    "clicked",
    "watch_s",
    "converted",
)


# has_*_label: per-row masks for labels a source may lack (models.fit.trainers.impression_arrays).
OPTIONAL_KEYS = ("taste", "has_watch_label", "has_conversion_label", "user_id", "item_codes", "live_now")


def impression_tensors(
    arrays: dict[str, np.ndarray], keys: tuple[str, ...] = IMPRESSION_KEYS
) -> dict[str, torch.Tensor]:
    """Checks that every key is present and converts NumPy arrays to tensors (optional keys too)."""
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise KeyError(f"training arrays lack {missing}")
    return {k: torch.as_tensor(arrays[k]) for k in (*keys, *OPTIONAL_KEYS) if k in arrays}


class ImpressionDataModule(L.LightningDataModule):
    """Training and validation examples, already gathered into aligned arrays (``keys`` each)."""

    keys: tuple[str, ...] = IMPRESSION_KEYS

    def __init__(
        self, train: dict[str, np.ndarray], val: dict[str, np.ndarray], batch_size: int = 512, seed: int = 0
    ) -> None:
        super().__init__()
        self.train_arrays, self.val_arrays = train, val
        self.batch_size, self.seed = batch_size, seed

    def setup(self, stage: str | None = None) -> None:
        self._train = impression_tensors(self.train_arrays, self.keys)
        self._val = impression_tensors(self.val_arrays, self.keys)

    @staticmethod
    def _collate(tensors: dict[str, torch.Tensor]):
        return lambda idx: {k: v[idx] for k, v in tensors.items()}

    def train_dataloader(self) -> DataLoader:
        n = len(next(iter(self._train.values())))
        return _loader(n, self.batch_size, True, self.seed, self._collate(self._train))

    def val_dataloader(self) -> DataLoader:
        n = len(next(iter(self._val.values())))
        return _loader(n, self.batch_size * 4, False, self.seed, self._collate(self._val))


CLICK_KEYS = ("history", "item", "item_id", "log_q")


class ClickDataModule(ImpressionDataModule):
    """(history before a click, clicked item) pairs for the two-tower retrieval model."""

    keys = CLICK_KEYS
