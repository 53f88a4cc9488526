"""The project's retrieval model (two towers; the user tower encodes the user's recent items) trained on
an imported log and scored by full ranking, for the baseline table (``models.offline.baselines``).

It is trained exactly as the pipeline trains it (``models.fit.trainers.train_retrieval`` on ``click_arrays``):
one example per training interaction, the user's earlier interactions as its history; validation is
the split's validation part. Items are represented by the imported item text (frozen MiniLM features,
as ``text_content`` uses) plus a hashed id for items seen in training.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from models.fit.loop import TrainConfig
from models.fit.trainers import RetrievalTraining, click_arrays, train_retrieval
from models.nn.config import RetrievalConfig
from models.nn.retrieval import RetrievalScorer, sampling_log_q
from vidrec.engagement import histories_before
from vidrec.items import id_buckets
from vidrec.protocols import Split

log = logging.getLogger(__name__)


def _clicks(split: Split, part: pd.DataFrame) -> pd.DataFrame:
    """``click_arrays``' input shape: user_key, video_id, ts (ties in ts broken by row order)."""
    return pd.DataFrame(
        {
            "user_key": split.user_ids[part["user_idx"].to_numpy()].astype(str),
            "video_id": split.item_ids[part["item_idx"].to_numpy()].astype(str),
            "ts": part["ts"].to_numpy(),
        }
    )


class SequentialRetrievalScorer:
    """Full-ranking scores of a trained retrieval model: each user's vector from their last fitted items."""

    def __init__(self, scorer: RetrievalScorer, histories: np.ndarray) -> None:
        self.histories = histories
        self.items = scorer.item_vectors()
        self.scorer = scorer

    def __call__(self, user_idx: np.ndarray) -> np.ndarray:
        return self.scorer.user_vectors(self.histories[user_idx]) @ self.items.T


def retrieval_scorer(
    split: Split, content: np.ndarray, checkpoints: Path, seed: int = 0, epochs: int = 10, patience: int = 3
) -> SequentialRetrievalScorer:
    """Train the retrieval model on ``split.train`` (validated on ``split.val``) over ``content`` item
    vectors (row-aligned with ``split.item_ids``) and return a full-ranking score function."""
    if content.shape[0] != len(split.item_ids):
        raise ValueError(f"content has {content.shape[0]} rows for {len(split.item_ids)} items")
    config = replace(RetrievalConfig(), content_dim=int(content.shape[1]))
    params = RetrievalTraining()
    ids = [str(v) for v in split.item_ids]
    item_index = {v: i for i, v in enumerate(ids)}
    train, val, fit = _clicks(split, split.train), _clicks(split, split.val), _clicks(split, split.fit)
    buckets = id_buckets(ids, set(train["video_id"]), config.id_buckets)
    log_q = sampling_log_q(split.train["item_idx"].to_numpy(np.int64), len(ids), params.batch_size)
    arrays = {
        "train": click_arrays(train, train, item_index, buckets, config.history_length, log_q),
        "val": click_arrays(val, fit, item_index, buckets, config.history_length, log_q),
    }
    run_dir = Path(tempfile.mkdtemp(prefix="import-retrieval-", dir=checkpoints))
    content = content.astype(np.float32)
    model, result = train_retrieval(
        arrays["train"],
        arrays["val"],
        content,
        config,
        params,
        TrainConfig(checkpoint_dir=run_dir, max_epochs=epochs, patience=patience, seed=seed, resume=False),
    )
    log.info(
        "retrieval: %d train and %d validation examples, %s",
        len(train),
        len(val),
        {k: v for k, v in result.history[-1].items()} if result.history else {},
    )
    # Each user's query: their last fitted items, as serving builds it (after every fitted interaction).
    users = pd.DataFrame({"user_key": [str(u) for u in split.user_ids], "ts": fit["ts"].max()})
    users["ts"] = users["ts"] + (pd.Timedelta(days=1) if isinstance(users["ts"].iloc[0], pd.Timestamp) else 1)
    histories = histories_before(users, fit, item_index, config.history_length)
    return SequentialRetrievalScorer(RetrievalScorer(model, content, buckets), histories)
