"""One served model version, independent of BentoML: the bundle's served path plus the catalogue.

``models.serving.path.ServedPath`` does retrieve → drop seen and filtered → rank → blend → top K, the
same object offline evaluation scores the hold-out with; this class adds what only the service does:
user ids to pseudonymised histories, request filters, response payloads, uploads, /similar and /search
over content embeddings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bentos import schemas as s
from bentos.catalogue import Catalogue, NewItem
from bentos.content import ContentEmbedder, SentenceEncoder
from bentos.rank_batch import grouped_scores
from bentos.serving_settings import ServingSettings
from bentos.uploads import landed_frame_features, landed_tag_columns
from bentos.user_state import UserState
from models.serving.bundle import load_bundle
from models.serving.explain import explain
from models.serving.exploration import explore
from vidrec.impressions import issue_request_id, new_nonce
from vidrec.items import item_feature_matrix
from vidrec.media.shards import read_shard
from vidrec.privacy import pseudonymise
from vidrec.text import item_text

log = logging.getLogger(__name__)


@dataclass
class _User:
    key: str  # pseudonymised
    known: bool
    rows: list[int]
    ignored: list[str] = field(default_factory=list)
    bucket: int = 0  # the ranker's hashed id for users it trained on, else 0 (history-only scoring)


class LoadedRecommender:
    """Everything one model version needs to answer requests, held in memory."""

    def __init__(
        self,
        directory: Path,
        tag: str,
        key: str,
        sentences: SentenceEncoder,
        settings: ServingSettings = ServingSettings(),
    ) -> None:
        started = time.perf_counter()
        bundle = load_bundle(directory)
        self.tag, self.key, self.settings = tag, key, settings
        self.histories = bundle.histories
        self.data_cutoff = bundle.data_cutoff
        self.user_buckets = bundle.user_buckets
        self.evaluation = bundle.evaluation
        self.history_length = bundle.ranker_history
        self.content = ContentEmbedder(bundle.encoder, sentences)
        items = bundle.items.reset_index(drop=True)
        self.catalogue = Catalogue(items, bundle.embeddings, settings.ann_threshold)
        self.path = bundle.served_path(
            ann_threshold=settings.ann_threshold, settings=settings.path, user_states=settings.user_states
        )
        self._upload_lock = threading.Lock()
        self.uploads = 0
        self.labels: dict[str, str] = {}  # lineage labels of the store entry, set by whoever loaded it
        self.state: UserState | None = None  # the online user-state store, set by the service (None: bundle only)
        # The request's time for the live schedule (models.serving.commerce); tests pass a fixed clock.
        self.clock: Callable[[], int] = time.time_ns
        self.loaded_at = datetime.now(UTC).isoformat()
        log.info(
            "model %s loaded: %d items, %s index, %.1f s",
            tag,
            len(self.catalogue),
            self.path.index.kind,
            time.perf_counter() - started,
        )

    # -- shared steps -------------------------------------------------------------------------

    def _user(self, user_id: str, extra: list[str]) -> _User:
        user_key = pseudonymise(user_id, self.key)
        stored = self.histories.get(user_key, [])
        if self.state is not None:  # the online store's freshest history (a new user is known after one click)
            stored = self.state.history(user_key, self.histories, self.history_length)
        rows, ignored = self.catalogue.rows(list(stored) + list(extra))
        return _User(
            key=user_key,
            known=bool(stored),
            rows=rows[-self.history_length :] if rows else [],
            ignored=ignored,
            bucket=int(self.user_buckets.get(user_key, 0)),
        )

    # -- endpoints ------------------------------------------------------------------------------

    def recommend(self, request: s.RecommendRequest) -> s.RecommendResponse:
        """The top k, with the exploration policy's swaps and their exact propensities, named by a signed
        request id (the nonce of which seeds the draw)."""
        user = self._user(request.user_id, request.history)
        exploring = self.settings.exploration
        served = self.path.recommend(
            user.rows,
            user.bucket,
            request.k + exploring.tail if exploring.epsilon > 0 else request.k,
            self.catalogue.allowed(request.filters),
            exclude_seen=request.filters.exclude_seen,
            mmr_lambda=request.mmr_lambda,
            now_ns=self.clock(),
        )
        nonce = new_nonce()
        slate = explore(np.arange(len(served.rows)), request.k, exploring, np.random.default_rng(nonce))
        rows = served.rows[slate.rows]
        sc = served.scores
        reasons = [None] * len(rows)  # per shown position
        if request.explain:
            cat = self.catalogue
            found = explain(self.path.scorer, user.rows, self.history_length, rows, cat.titles, cat.category)
            reasons = [e.text for e in found]
        items = [
            s.RecommendedVideo(
                **described,
                score=float(sc.score[i]),
                p_click=float(sc.p_click[i]),
                expected_watch_s=float(sc.expected_watch_s[i]),
                p_conversion=float(sc.p_conversion[i]),
                position=position,
                propensity=float(p),
                reason=reasons[position],
            )
            for position, (i, p, described) in enumerate(
                zip(slate.rows.tolist(), slate.propensity, self.catalogue.describe_many(rows))
            )
        ]
        ids, titles = self.catalogue.video_ids, self.catalogue.titles
        history = [s.HistoryVideo(video_id=ids[r], title=titles[r]) for r in user.rows]
        return s.RecommendResponse(
            user_id=request.user_id,
            request_id=issue_request_id(self.key, user.key, [v.video_id for v in items], nonce),
            policy=exploring.policy,
            known_user=user.known,
            model_tag=self.tag,
            retrieval=served.retrieval,
            candidates=len(served.candidates),
            history=history,
            ignored_history=user.ignored,
            items=items,
        )

    def _neighbours(self, vector: np.ndarray, k: int, allowed: np.ndarray | None) -> list[s.SimilarVideo]:
        rows, sims = self.catalogue.index.search(vector, k, allowed)
        return [s.SimilarVideo(**self.catalogue.describe(int(r)), similarity=float(v)) for r, v in zip(rows, sims)]

    def similar(self, request: s.SimilarRequest) -> s.SimilarResponse:
        """Raises KeyError naming the video when it is not in the catalogue."""
        row = self.catalogue.row_of.get(request.video_id)
        if row is None:
            raise KeyError(request.video_id)
        allowed = self.catalogue.allowed(request.filters, [row] if request.filters.exclude_seen else None)
        if allowed is None:
            allowed = np.ones(len(self.catalogue), dtype=bool)
        allowed[row] = False  # never "similar to itself"
        items = self._neighbours(self.catalogue.embeddings[row], request.k, allowed)
        return s.SimilarResponse(video_id=request.video_id, model_tag=self.tag, items=items)

    def search(self, request: s.SearchRequest) -> s.SearchResponse:
        """Videos ranked by relevance to the query's words (``bentos.search``); none, with the reason, for a
        query without words."""
        from bentos.search import NO_WORDS, query_words

        words = query_words(request.query)
        if not words:
            return s.SearchResponse(query=request.query, model_tag=self.tag, items=[], reason=NO_WORDS)
        allowed = self.catalogue.allowed(request.filters)
        content, text = self.content.query_vectors(request.query)
        rows, scores, cosines = self.catalogue.search(content, text, words, request.k, allowed, self.content.sentences)
        items = [
            s.SearchHit(**described, relevance=float(score), similarity=float(cosine))
            for described, score, cosine in zip(self.catalogue.describe_many(rows), scores, cosines)
        ]
        return s.SearchResponse(query=request.query, model_tag=self.tag, items=items)

    def creators(self, request: s.CreatorsRequest) -> s.CreatorsResponse:
        """Creators ranked by the mean blended score of their three best candidate videos for the user."""
        user = self._user(request.user_id, request.history)
        allowed = self.catalogue.allowed(s.Filters(exclude_seen=False), live_only=request.live_only)
        candidates, _ = self.path.candidates(user.rows, allowed)
        scores = self.path.score(user.rows, user.bucket, candidates).score
        best: dict[str, list[tuple[float, str]]] = {}
        for row, score in zip(candidates.tolist(), scores.tolist()):
            best.setdefault(self.catalogue.creator[row], []).append((score, self.catalogue.video_ids[row]))
        live = {c for c, flag in zip(self.catalogue.creator, self.catalogue.is_live_host) if flag}
        ranked = []
        for creator, pairs in best.items():
            top = sorted(pairs, reverse=True)[:3]
            ranked.append(
                s.RecommendedCreator(
                    creator_id=creator,
                    is_live_host=creator in live,
                    score=sum(p[0] for p in top) / 3.0,
                    videos=[p[1] for p in top],
                )
            )
        ranked.sort(key=lambda c: (-c.score, c.creator_id))
        return s.CreatorsResponse(
            user_id=request.user_id, known_user=user.known, model_tag=self.tag, creators=ranked[: request.k]
        )

    def rank(self, requests: list[s.RankRequest]) -> list[s.RankResponse]:
        """Each request's candidates ordered by the ranker. A batch is grouped by user (bucket + history):
        each user's history is encoded once (and remembered) and all their candidates scored in one pass."""
        users = [self._user(r.user_id, r.history) for r in requests]
        parts = [self.catalogue.rows(r.video_ids) for r in requests]
        scored = grouped_scores(self.path, [(u.bucket, tuple(u.rows)) for u in users], [rows for rows, _ in parts])
        ids = self.catalogue.video_ids
        out = []
        for request, user, (rows, unknown), scores in zip(requests, users, parts, scored):
            block = [
                s.RankedVideo(video_id=ids[r], score=sc, p_click=pc, expected_watch_s=w, p_conversion=pv)
                for r, sc, pc, w, pv in zip(
                    rows,
                    scores.score.tolist(),
                    scores.p_click.tolist(),
                    scores.expected_watch_s.tolist(),
                    scores.p_conversion.tolist(),
                )
            ]
            block.sort(key=lambda v: -v.score)
            out.append(
                s.RankResponse(
                    user_id=request.user_id,
                    request_id=issue_request_id(self.key, user.key, [v.video_id for v in block]),
                    known_user=user.known,
                    model_tag=self.tag,
                    items=block,
                    unknown_video_ids=unknown,
                )
            )
        return out

    # -- cold start -----------------------------------------------------------------------------

    def add_upload(self, record: dict) -> int:
        """Embed a landed upload (its feature shard + metadata) with this version's encoder and make it
        recommendable: in the content index, the retrieval index, the ranker's inputs and the prior."""
        if record["video_id"] in self.catalogue.row_of:
            return self.catalogue.row_of[record["video_id"]]
        text = item_text(record.get("title"), record.get("tags") or [], record.get("description"))
        embedding = self.content.video(read_shard(Path(record["shard"])), text, landed_frame_features(record))
        row = {
            **landed_tag_columns(record),
            "video_id": record["video_id"],
            "title": record.get("title") or "",
            "category": record["category"],
            "creator_id": record["creator_id"],
            "is_product": bool(record.get("is_product")),
            "price": float(record.get("price") or 0.0),
            "duration_s": float(record["duration_s"]),
            "is_live_host": bool(record.get("is_live_host")),
        }
        with self._upload_lock:  # catalogue and path rows stay aligned when two uploads race
            if record["video_id"] in self.catalogue.row_of:
                return self.catalogue.row_of[record["video_id"]]
            # The path first, the catalogue (whose row_of publishes the id) last: whoever can find the
            # row can also rank it.
            self.path.add_item(embedding, item_feature_matrix(pd.DataFrame([row]))[0], creator=row["creator_id"])
            added = self.catalogue.add(NewItem(row, embedding))
            self.uploads += 1
        return added

    def model_info(self, last_error: str | None) -> s.ModelInfo:
        return s.ModelInfo(
            tag=self.tag,
            labels=self.labels,
            evaluation=self.evaluation,
            items=len(self.catalogue),
            uploads=self.uploads,
            index=self.path.index.kind,
            loaded_at=self.loaded_at,
            last_load_error=last_error,
        )
