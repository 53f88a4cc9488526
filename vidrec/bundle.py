"""The files a served model is made of (besides the weights): items, user histories, lineage.

Writers and the service agree on these names through this module only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ENCODER_WEIGHTS = "encoder.pt"
RANKER_WEIGHTS = "ranker.pt"
MODELS_CONFIG = "models.json"
ITEMS = "items.parquet"
HISTORIES = "histories.json"
EVALUATION = "evaluation.json"
USER_BUCKETS = "user_buckets.json"  # optional: the ranker's hashed id per user it trained on
ITEM_COLUMNS = ("video_id", "title", "category", "creator_id", "is_product", "price", "duration_s",
                "is_live_host", "id_bucket", "embedding")


def write_serving_tables(directory: Path, items: pd.DataFrame, embeddings: np.ndarray, id_buckets: np.ndarray,
                         histories: dict[str, list[str]], evaluation: list[dict],
                         user_buckets: dict[str, int] | None = None) -> None:
    """``id_buckets`` is 0 for items the ranker never saw in training (they rank by content);
    ``user_buckets`` maps each user_key the ranker trained on to its hashed id (others score as 0)."""
    table = items.assign(embedding=list(embeddings.astype(np.float32)), id_bucket=id_buckets)[list(ITEM_COLUMNS)]
    table.to_parquet(directory / ITEMS, index=False)
    (directory / HISTORIES).write_text(json.dumps(histories))
    (directory / EVALUATION).write_text(json.dumps(evaluation, default=float, indent=2))
    if user_buckets is not None:
        (directory / USER_BUCKETS).write_text(json.dumps({k: int(v) for k, v in user_buckets.items()}))


@dataclass
class ServingTables:
    items: pd.DataFrame
    embeddings: np.ndarray
    histories: dict[str, list[str]]
    evaluation: list[dict]
    models: dict
    user_buckets: dict[str, int]  # empty for bundles written without it: every user scores as unknown (0)


def read_serving_tables(directory: Path) -> ServingTables:
    items = pd.read_parquet(directory / ITEMS)
    return ServingTables(
        items=items.drop(columns=["embedding"]),
        embeddings=np.stack(items["embedding"].to_numpy()).astype(np.float32),
        histories=json.loads((directory / HISTORIES).read_text()),
        evaluation=json.loads((directory / EVALUATION).read_text()),
        models=json.loads((directory / MODELS_CONFIG).read_text()),
        user_buckets=json.loads(users.read_text()) if (users := directory / USER_BUCKETS).is_file() else {},
    )
