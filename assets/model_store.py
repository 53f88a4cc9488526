"""The BentoML model store side of promotion: save a candidate, verify it, move the production pointer.

Promotion runs in three steps, each of which can fail without leaving a mixed state:
  1. ``save_to_store`` writes the entry in a temporary directory and BentoML commits it to the store
     only on a clean exit of ``bentoml.models.create`` (an exception leaves no entry);
  2. ``verify_stored`` re-opens the committed entry and rebuilds every module from its state_dict
     (``torch.load(weights_only=True)``), so the pointer never names an entry that cannot serve
     (an entry that fails is deleted, so the store's latest entry is always the last promoted one);
  3. ``ProductionPointer.promote`` replaces the pointer file atomically (``os.replace``).
Production is therefore the old model until step 3 completes and the new one after; previous
entries are never deleted, so ``python -m vidrec.registry rollback`` can always go back. With the gate
policy's online stage on, step 3 instead starts the entry as the challenger of a live A/B experiment
(``ProductionPointer.start_challenger``); the first model, with no production to compare with, is
promoted directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bentoml

from models.serving.bundle import BundleContents, verify_bundle, write_bundle
from vidrec.registry import Pointer, ProductionPointer

MODEL_NAME = "vidrec-recommender"


def save_to_store(contents: BundleContents, labels: dict[str, str], metadata: dict) -> str:
    """Creates a new store entry and returns its tag; the entry is complete or absent
    (``bentoml.models.create`` only commits on a clean exit of the block)."""
    with bentoml.models.create(MODEL_NAME, labels=labels, metadata=metadata) as model:
        write_bundle(Path(model.path), contents)
    return str(model.tag)


def verify_stored(tag: str) -> Path:
    """Re-open a committed entry, rebuild its modules from the stored weights and config and answer one
    request through its served path; raises naming the tag and what is wrong if it could not serve."""
    directory = Path(bentoml.models.get(tag).path)
    try:
        verify_bundle(directory)
    except Exception as error:
        raise RuntimeError(f"stored model {tag} cannot serve ({error}); it will not be promoted") from error
    return directory


@dataclass
class Promotion:
    tag: str
    previous: str | None
    pointer: Pointer
    arm: str = "production"  # or "challenger": serving a share of users in a live experiment


def promote(save: Callable[[], str], pointer: ProductionPointer, challenger_share: float | None = None) -> Promotion:
    """Run the three promotion steps (``save`` performs step 1 and returns the new tag); with
    ``challenger_share`` and a production model, step 3 starts the tag as the challenger instead."""
    previous = pointer.tag
    tag = save()
    try:
        verify_stored(tag)
    except Exception:
        # An entry that cannot serve must not become the store's latest (bentos/bentofile.yaml builds it).
        bentoml.models.delete(tag)
        raise
    if challenger_share is not None and previous is not None:
        return Promotion(tag, previous, pointer.start_challenger(tag, challenger_share), arm="challenger")
    return Promotion(tag=tag, previous=previous, pointer=pointer.promote(tag))


def champion_directory(registry_dir: Path) -> tuple[str, Path] | None:
    """The production model's tag and store directory, or None before the first promotion."""
    tag = ProductionPointer(registry_dir).tag
    if tag is None:
        return None
    try:
        return tag, Path(bentoml.models.get(tag).path)
    except bentoml.exceptions.NotFound as error:
        raise RuntimeError(
            f"the production pointer in {registry_dir} names {tag}, which is not in the BentoML "
            "store (BENTOML_HOME); restore the store or run "
            "`python -m vidrec.registry rollback`"
        ) from error
