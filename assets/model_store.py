"""Saving a trained model to the BentoML model store (weights as state_dicts + rebuild config)."""

from __future__ import annotations

import shutil
from pathlib import Path

import bentoml
import numpy as np
import pandas as pd

from models.config import EncoderConfig, RankerConfig
from models.serialization import TrainedModel, write_model_config
from vidrec import bundle

MODEL_NAME = "vidrec-recommender"


def save_to_store(encoder: TrainedModel, ranker: TrainedModel, items: pd.DataFrame, embeddings: np.ndarray, id_buckets: np.ndarray,
                  histories: dict[str, list[str]], evaluation: list[dict], labels: dict[str, str],
                  metadata: dict) -> str:
    """Creates a new store entry and returns its tag; the entry is complete or absent
    (``bentoml.models.create`` only commits on a clean exit of the block)."""
    with bentoml.models.create(MODEL_NAME, labels=labels, metadata=metadata) as model:
        directory = Path(model.path)
        shutil.copyfile(encoder.weights_path, directory / bundle.ENCODER_WEIGHTS)
        shutil.copyfile(ranker.weights_path, directory / bundle.RANKER_WEIGHTS)
        write_model_config(directory, EncoderConfig(**encoder.config), RankerConfig(**ranker.config),
                           {"blend": ranker.extra["blend"]})
        bundle.write_serving_tables(directory, items, embeddings, id_buckets, histories, evaluation)
    return str(model.tag)
