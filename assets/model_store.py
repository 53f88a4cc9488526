"""The BentoML model store side of promotion: save a candidate, verify it, move the production pointer.

Promotion runs in three steps, each of which can fail without leaving a mixed state:
  1. ``save_to_store`` writes the entry in a temporary directory and BentoML commits it to the store
     only on a clean exit of ``bentoml.models.create`` (an exception leaves no entry);
  2. ``verify_stored`` re-opens the committed entry and rebuilds both modules from their state_dicts
     (``torch.load(weights_only=True)``), so the pointer never names an entry that cannot serve
     (an entry that fails is deleted, so the store's latest entry is always the last promoted one);
  3. ``ProductionPointer.promote`` replaces the pointer file atomically (``os.replace``).
Production is therefore the old model until step 3 completes and the new one after; previous
entries are never deleted, so ``python -m vidrec.registry rollback`` can always go back.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bentoml
import numpy as np
import pandas as pd

from models.config import EncoderConfig, RankerConfig
from models.serialization import TrainedModel, load_encoder, load_ranker, write_model_config
from vidrec import bundle
from vidrec.registry import Pointer, ProductionPointer

MODEL_NAME = "vidrec-recommender"
BUNDLE_FILES = (bundle.ENCODER_WEIGHTS, bundle.RANKER_WEIGHTS, bundle.MODELS_CONFIG, bundle.ITEMS,
                bundle.HISTORIES, bundle.EVALUATION)


def save_to_store(encoder: TrainedModel, ranker: TrainedModel, items: pd.DataFrame, embeddings: np.ndarray,
                  id_buckets: np.ndarray, histories: dict[str, list[str]], evaluation: list[dict],
                  labels: dict[str, str], metadata: dict, user_buckets: dict[str, int] | None = None) -> str:
    """Creates a new store entry and returns its tag; the entry is complete or absent
    (``bentoml.models.create`` only commits on a clean exit of the block)."""
    with bentoml.models.create(MODEL_NAME, labels=labels, metadata=metadata) as model:
        directory = Path(model.path)
        shutil.copyfile(encoder.weights_path, directory / bundle.ENCODER_WEIGHTS)
        shutil.copyfile(ranker.weights_path, directory / bundle.RANKER_WEIGHTS)
        write_model_config(directory, EncoderConfig(**encoder.config), RankerConfig(**ranker.config),
                           {"blend": ranker.extra["blend"]})
        bundle.write_serving_tables(directory, items, embeddings, id_buckets, histories, evaluation, user_buckets)
    return str(model.tag)


def verify_stored(tag: str) -> Path:
    """Re-open a committed entry and rebuild its modules from the stored weights and config;
    raises naming the tag and what is wrong if it could not serve."""
    directory = Path(bentoml.models.get(tag).path)
    missing = [name for name in BUNDLE_FILES if not (directory / name).is_file()]
    if missing:
        raise RuntimeError(f"stored model {tag} lacks {missing}; it will not be promoted")
    config = json.loads((directory / bundle.MODELS_CONFIG).read_text())
    load_encoder(directory / bundle.ENCODER_WEIGHTS, config["encoder"])
    load_ranker(directory / bundle.RANKER_WEIGHTS, config["ranker"])
    return directory


@dataclass
class Promotion:
    tag: str
    previous: str | None
    pointer: Pointer


def promote(save: Callable[[], str], pointer: ProductionPointer) -> Promotion:
    """Run the three promotion steps (``save`` performs step 1 and returns the new tag)."""
    previous = pointer.tag
    tag = save()
    try:
        verify_stored(tag)
    except Exception:
        # An entry that cannot serve must not become the store's latest (bentos/bentofile.yaml builds it).
        bentoml.models.delete(tag)
        raise
    return Promotion(tag=tag, previous=previous, pointer=pointer.promote(tag))


def champion_directory(registry_dir: Path) -> tuple[str, Path] | None:
    """The production model's tag and store directory, or None before the first promotion."""
    tag = ProductionPointer(registry_dir).tag
    if tag is None:
        return None
    try:
        return tag, Path(bentoml.models.get(tag).path)
    except bentoml.exceptions.NotFound as error:
        raise RuntimeError(f"the production pointer in {registry_dir} names {tag}, which is not in the BentoML "
                           "store (BENTOML_HOME); restore the store or run "
                           "`python -m vidrec.registry rollback`") from error
