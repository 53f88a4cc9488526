"""The vidrec HTTP service: loads the production model from the BentoML store and recommends."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import bentoml
import torch
from pydantic import Field

from bentos.recommender import LoadedRecommender
from bentos.schemas import ModelInfo, RecommendResponse
from vidrec.config import DEMO_PSEUDONYM_KEY, PSEUDONYM_KEY_ENV_VAR, Paths, resolve_root
from vidrec.registry import ProductionPointer


def load_production(root: Path, key: str) -> tuple[LoadedRecommender, bentoml.Model]:
    tag = ProductionPointer(Paths(root).registry).tag
    if tag is None:
        raise RuntimeError(
            f"no production model recorded under {root}; materialise the pipeline "
            "(`make demo` or `dagster job execute -m assets.definitions -j main`) first"
        )
    model = bentoml.models.get(tag)
    return LoadedRecommender(Path(model.path), str(model.tag), key), model


@bentoml.service(workers=1, traffic={"timeout": 30})
class Recommender:
    """Recommends videos for a user from the production model."""

    def __init__(self) -> None:
        # One worker with all its threads would oversubscribe a 2-core machine under load.
        torch.set_num_threads(1)
        key = os.environ.get(PSEUDONYM_KEY_ENV_VAR) or DEMO_PSEUDONYM_KEY
        self.recommender, self.model = load_production(resolve_root(), key)

    @bentoml.api
    def recommend(
        self,
        user_id: Annotated[str, Field(min_length=1, max_length=256)],
        k: Annotated[int, Field(ge=1, le=100)] = 10,
    ) -> RecommendResponse:
        """Top-k videos for the user, ranked by the blended click / watch / conversion score."""
        return self.recommender.recommend(user_id, k)

    @bentoml.api(route="/model")
    def model_info(self) -> ModelInfo:
        """The production model's tag, lineage labels and evaluation table."""
        return ModelInfo(tag=self.recommender.tag, labels=dict(self.model.info.labels),
                         evaluation=self.recommender.evaluation)
