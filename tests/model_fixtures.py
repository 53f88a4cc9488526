"""Untrained encoder, ranker and retrieval weights as a pipeline hands them downstream: for tests of
promotion, bundles and evaluation plumbing, where what the models learned is not under test."""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.nn.config import EncoderConfig, RankerConfig, RetrievalConfig
from models.serving.bundle import BundleContents
from models.serving.weights import TrainedModel

BLEND = {"click": 1.0, "watch": 1.0, "conversion": 1.0, "watch_scale_s": 5.0}


def untrained_models(directory: Path, seed: int = 0) -> tuple[TrainedModel, TrainedModel, TrainedModel]:
    """(encoder, ranker, retrieval) with seeded initial weights saved under ``directory``."""
    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for kind, config, extra in (
        ("encoder", EncoderConfig(), {}),
        ("ranker", RankerConfig(), {"blend": BLEND}),
        ("retrieval", RetrievalConfig(), {}),
    ):
        path = directory / f"{kind}.pt"
        torch.save(config.build().state_dict(), path)
        out.append(TrainedModel(kind, str(path), asdict(config), extra=extra))
    return out[0], out[1], out[2]


def tiny_items(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "video_id": [f"v{i}" for i in range(n)],
            "title": "t",
            "category": "music",
            "creator_id": "c",
            "is_product": False,
            "price": np.nan,
            "duration_s": 2.0,
            "is_live_host": False,
        }
    )


def tiny_contents(
    models: tuple[TrainedModel, TrainedModel, TrainedModel],
    n: int = 4,
    histories: dict | None = None,
    evaluation: list | None = None,
) -> BundleContents:
    """A complete bundle of ``n`` items with random unit content embeddings."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, RankerConfig().content_dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return BundleContents(*models, tiny_items(n), vectors, np.arange(n), histories or {}, evaluation or [])


def tiny_world(tmp_path_factory) -> Path:
    """The generated tiny world: ``data/tiny`` when it is there, else generated into a temporary folder."""
    from vidrec.world.generate import generate_world

    directory = Path(__file__).resolve().parents[1] / "data" / "tiny"
    if not (directory / "ground_truth").is_dir():
        directory = tmp_path_factory.mktemp("tiny")
        generate_world(directory, size="tiny", progress=False)
    return directory


def holdout_inputs(world: Path, key: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A world's items (the true attributes hold-out scoring reads), its events pseudonymised under ``key``,
    and random unit item embeddings (seed 0): the inputs of hold-out scoring with untrained models."""
    from vidrec.privacy import pseudonymise_column

    truth_items = pd.read_parquet(world / "ground_truth" / "items.parquet")
    items = (
        truth_items[["video_id", "category", "is_product", "is_live_host", "price", "duration_s", "published_at"]]
        .sort_values("video_id")
        .reset_index(drop=True)
    )
    raw = pd.read_parquet(world / "events.parquet")
    events = raw.assign(user_key=pseudonymise_column(raw["user_id"], key)).drop(columns=["user_id"])
    vectors = np.random.default_rng(0).normal(size=(len(items), 64)).astype(np.float32)
    embeddings = pd.DataFrame(
        {"video_id": items["video_id"], "embedding": list(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))}
    )
    return items, events, embeddings
