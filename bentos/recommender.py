"""The served recommender, independent of BentoML: load a stored model directory and answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bentos.schemas import HistoryVideo, RecommendedVideo, RecommendResponse
from models.scoring import RankerScorer
from models.serialization import load_ranker
from models.ranker import BlendWeights
from vidrec import bundle
from vidrec.items import item_feature_matrix
from vidrec.privacy import pseudonymise


class LoadedRecommender:
    """Everything one model version needs to answer requests, held in memory."""

    def __init__(self, directory: Path, tag: str, key: str) -> None:
        tables = bundle.read_serving_tables(directory)
        self.tag, self.key = tag, key
        self.items = tables.items.reset_index(drop=True)
        self.histories = tables.histories
        self.evaluation = tables.evaluation
        ranker_config = tables.models["ranker"]
        self.history_length = ranker_config["history_length"]
        ids = self.items["video_id"].tolist()
        self.index = {v: i for i, v in enumerate(ids)}
        self.scorer = RankerScorer(
            load_ranker(directory / bundle.RANKER_WEIGHTS, ranker_config), tables.embeddings,
            self.items["id_bucket"].to_numpy(), item_feature_matrix(self.items),
            BlendWeights(**tables.models["blend"]),
        )

    def recommend(self, user_id: str, k: int, exclude_seen: bool = True) -> RecommendResponse:
        history = self.histories.get(pseudonymise(user_id, self.key), [])
        rows = [self.index[v] for v in history if v in self.index]
        scores = self.scorer.score_user(rows, self.history_length)
        order = np.argsort(-scores.score, kind="stable")
        if exclude_seen:
            seen = set(rows)
            order = np.array([i for i in order if i not in seen], dtype=np.int64)
        top = order[:k]
        items = [
            RecommendedVideo(
                video_id=self.items.at[i, "video_id"], title=str(self.items.at[i, "title"]),
                category=str(self.items.at[i, "category"]), score=float(scores.score[i]),
                p_click=float(scores.p_click[i]), expected_watch_s=float(scores.expected_watch_s[i]),
                p_conversion=float(scores.p_conversion[i]),
            )
            for i in top
        ]
        return RecommendResponse(
            user_id=user_id, known_user=bool(history), model_tag=self.tag,
            history=[HistoryVideo(video_id=self.items.at[i, "video_id"], title=str(self.items.at[i, "title"]))
                     for i in rows],
            items=items,
        )
