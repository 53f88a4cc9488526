"""The saved model's layout, in one place: write a bundle, verify it, load it as a served path.

A bundle is one folder (a BentoML store entry): the encoder, ranker and retrieval weights as
state_dicts, ``models.json`` (their configs, the blend and the path settings), the item table with
content embeddings and id buckets, user histories and the evaluation it passed. Promotion
(``assets/model_store.py``), the service, offline evaluation of the champion, the serve benchmark and
the test fixtures all go through this module; nothing else names a bundle file.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from models.nn.ranker import BlendWeights
from models.serving.commerce import CommerceTerms
from models.serving.path import PathSettings, ServedPath
from models.serving.weights import TrainedModel, load_encoder, load_ranker, load_retrieval
from vidrec.index import ANN_THRESHOLD
from vidrec.items import item_code_matrix, item_feature_matrix

ENCODER_WEIGHTS = "encoder.pt"
RANKER_WEIGHTS = "ranker.pt"
RETRIEVAL_WEIGHTS = "retrieval.pt"
MODELS_CONFIG = "models.json"
ITEMS = "items.parquet"
HISTORIES = "histories.json"
EVALUATION = "evaluation.json"
USER_BUCKETS = "user_buckets.json"  # optional: the ranker's hashed id per user it trained on
LIVE_SESSIONS = "live_sessions.parquet"  # optional: the live schedule the service boosts by (vidrec.commerce_tables)
REQUIRED = (ENCODER_WEIGHTS, RANKER_WEIGHTS, RETRIEVAL_WEIGHTS, MODELS_CONFIG, ITEMS, HISTORIES, EVALUATION)
ITEM_COLUMNS = (
    "video_id",
    "title",
    "category",
    "creator_id",
    "is_product",
    "price",
    "duration_s",
    "is_live_host",
    "id_bucket",
    "embedding",
)
# Kept when the item table has them: metadata tags and recognised tags (JSON) feed /search and payloads.
# sku and brand (vidrec.items.with_products) feed the ranker's brand input.
OPTIONAL_ITEM_COLUMNS = ("tags", "recognised", "sku", "brand")


class BundleError(ValueError):
    """A bundle that cannot serve: the message names the folder and what is missing or wrong."""


@dataclass
class BundleContents:
    """What a promotion writes. ``id_buckets`` is 0 for items the models never saw in training (they
    rank by content); ``user_buckets`` maps each user_key the ranker trained on to its hashed id."""

    encoder: TrainedModel
    ranker: TrainedModel
    retrieval: TrainedModel | None
    items: pd.DataFrame
    embeddings: np.ndarray
    id_buckets: np.ndarray
    histories: dict[str, list[str]]
    evaluation: list[dict]
    user_buckets: dict[str, int] | None = None
    path: PathSettings = field(default_factory=PathSettings)
    live: pd.DataFrame | None = None  # live sessions (creator_id, start, end); None: no schedule
    data_cutoff: float | None = None  # epoch s of the newest event the histories were built from


def write_bundle(directory: Path, contents: BundleContents) -> None:
    """Write every bundle file into ``directory``; raises BundleError before writing anything when a
    part the served path needs is absent."""
    if contents.retrieval is None:
        raise BundleError(
            f"the bundle for {directory} has no retrieval model: the served path retrieves its "
            "candidates with the retrieval model's user tower, so it cannot be promoted; "
            "materialise `retrieval_model` and pass it to the promotion"
        )
    for part in (contents.encoder, contents.ranker, contents.retrieval):
        if not Path(part.weights_path).is_file():
            raise BundleError(f"{part.kind} weights {part.weights_path} do not exist; re-materialise the {part.kind}")
    directory.mkdir(parents=True, exist_ok=True)
    for part, name in (
        (contents.encoder, ENCODER_WEIGHTS),
        (contents.ranker, RANKER_WEIGHTS),
        (contents.retrieval, RETRIEVAL_WEIGHTS),
    ):
        shutil.copyfile(part.weights_path, directory / name)
    config = {
        "encoder": contents.encoder.config,
        "ranker": contents.ranker.config,
        "retrieval": contents.retrieval.config,
        "blend": contents.ranker.extra["blend"],
        "path": asdict(contents.path),
    }
    if contents.data_cutoff is not None:  # seeding the online state keeps what came after it
        config["data_cutoff"] = float(contents.data_cutoff)
    (directory / MODELS_CONFIG).write_text(json.dumps(config, indent=2))
    table = contents.items.assign(embedding=list(contents.embeddings.astype(np.float32)), id_bucket=contents.id_buckets)
    table = table[[*ITEM_COLUMNS, *(c for c in OPTIONAL_ITEM_COLUMNS if c in table)]]
    table.to_parquet(directory / ITEMS, index=False)
    (directory / HISTORIES).write_text(json.dumps(contents.histories))
    (directory / EVALUATION).write_text(json.dumps(contents.evaluation, default=float, indent=2))
    if contents.user_buckets is not None:
        (directory / USER_BUCKETS).write_text(json.dumps({k: int(v) for k, v in contents.user_buckets.items()}))
    if contents.live is not None:
        contents.live[["creator_id", "start", "end"]].to_parquet(directory / LIVE_SESSIONS, index=False)


@dataclass
class Bundle:
    """A loaded bundle: tables, rebuilt modules and settings."""

    directory: Path
    config: dict
    items: pd.DataFrame  # without the embedding column
    embeddings: np.ndarray
    histories: dict[str, list[str]]
    evaluation: list[dict]
    user_buckets: dict[str, int]  # empty for bundles written without it: every user scores as unknown (0)
    encoder: nn.Module
    ranker: nn.Module
    retrieval: nn.Module
    blend: BlendWeights
    path_settings: PathSettings
    live: pd.DataFrame | None = None  # the live schedule, when the bundle has one

    @property
    def id_buckets(self) -> np.ndarray:
        return self.items["id_bucket"].to_numpy(np.int64)

    @property
    def data_cutoff(self) -> float | None:
        """Epoch seconds of the newest event in the data the bundle was built from (None: an older bundle)."""
        found = self.config.get("data_cutoff")
        return None if found is None else float(found)

    @property
    def ranker_history(self) -> int:
        return int(self.config["ranker"]["history_length"])

    def served_path(
        self,
        embeddings: np.ndarray | None = None,
        id_buckets: np.ndarray | None = None,
        items: pd.DataFrame | None = None,
        ann_threshold: int = ANN_THRESHOLD,
        settings: PathSettings | None = None,
        user_states: int = 4096,
    ) -> ServedPath:
        """The path over the bundle's own catalogue, or over another row-aligned one (``items`` with its
        ``embeddings`` and ``id_buckets``: offline evaluation of a champion on today's items)."""
        items = self.items if items is None else items
        ranker = self.config["ranker"]
        codes = item_code_matrix(items, int(ranker["code_buckets"])) if ranker.get("commerce") else None
        return ServedPath(
            self.ranker,
            self.blend,
            self.retrieval,
            self.embeddings if embeddings is None else embeddings,
            self.id_buckets if id_buckets is None else id_buckets,
            item_feature_matrix(items),
            self.ranker_history,
            int(self.config["retrieval"]["history_length"]),
            settings or self.path_settings,
            ann_threshold,
            user_states,
            item_codes=codes,
            commerce=CommerceTerms.from_items(items, self.live),
        )


def missing_files(directory: Path) -> list[str]:
    return [name for name in REQUIRED if not (directory / name).is_file()]


def load_bundle(directory: Path) -> Bundle:
    """Rebuild every module from its state_dict and config (``torch.load(weights_only=True)``);
    raises BundleError naming the folder and the missing files."""
    missing = missing_files(directory)
    if missing:
        hint = (
            " (a model saved before the served path existed: promote a retrained model, or roll back)"
            if RETRIEVAL_WEIGHTS in missing
            else ""
        )
        raise BundleError(f"the bundle in {directory} lacks {missing}{hint}")
    config = json.loads((directory / MODELS_CONFIG).read_text())
    table = pd.read_parquet(directory / ITEMS)
    users = directory / USER_BUCKETS
    live = directory / LIVE_SESSIONS
    return Bundle(
        directory=directory,
        config=config,
        items=table.drop(columns=["embedding"]),
        embeddings=np.stack(table["embedding"].to_numpy()).astype(np.float32)
        if len(table)
        else np.zeros((0, config["ranker"]["content_dim"]), np.float32),
        histories=json.loads((directory / HISTORIES).read_text()),
        evaluation=json.loads((directory / EVALUATION).read_text()),
        user_buckets=json.loads(users.read_text()) if users.is_file() else {},
        encoder=load_encoder(directory / ENCODER_WEIGHTS, config["encoder"]),
        ranker=load_ranker(directory / RANKER_WEIGHTS, config["ranker"]),
        retrieval=load_retrieval(directory / RETRIEVAL_WEIGHTS, config["retrieval"]),
        blend=BlendWeights(**config["blend"]),
        path_settings=PathSettings(**config.get("path", {})),
        live=pd.read_parquet(live) if live.is_file() else None,
    )


def verify_bundle(directory: Path) -> Bundle:
    """Load the bundle and answer one request through its served path, so a bundle that passes can serve."""
    loaded = load_bundle(directory)
    if len(loaded.items):
        loaded.served_path().recommend([0], 0, k=1)
    return loaded
