"""One served model version, independent of BentoML: candidates from the index, ordering from the ranker.

Candidate generation is a user vector searched in the content index (exact or HNSW) plus the best
items of the content-only prior (the ranker's score with an empty history, which is the same for
every user and so computed once per model). ``user_vector`` is the hook a user-tower retrieval model
plugs into; the default is the normalised mean of the history's content embeddings.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bentos import schemas as s
from bentos.catalog import Catalog, NewItem
from bentos.content import ContentEmbedder, SentenceEncoder
from models.ranker import BlendWeights, UserState
from models.scoring import RankerScorer, Scores
from models.serialization import load_encoder, load_ranker
from vidrec import bundle
from vidrec.index import ANN_THRESHOLD
from vidrec.media.shards import read_shard
from vidrec.privacy import pseudonymise
from vidrec.text import item_text

log = logging.getLogger(__name__)

UserVector = Callable[[list[int], np.ndarray], "np.ndarray | None"]
"""``(history rows, catalog embeddings) -> query vector in the item space`` (None: no personal vector)."""


def mean_history_vector(history_rows: list[int], embeddings: np.ndarray) -> np.ndarray | None:
    """Normalised mean of the history's content embeddings (recent items are the history's tail)."""
    if not history_rows:
        return None
    vector = embeddings[history_rows].mean(axis=0)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else None


@dataclass(frozen=True)
class ServingSettings:
    # Ranker inputs per request (index hits; known users add up to prior_share × this from the prior, so
    # at most 125): the whole filtered catalog when it is this small. The ranker pass at 125 candidates
    # costs ~1 ms (history encoded once per request), so depth is a quality choice, not a latency one.
    n_candidates: int = 100
    prior_share: float = 0.25  # part of the candidates taken from the content-only prior for known users
    ann_threshold: int = ANN_THRESHOLD
    # Encoded histories kept per model version (~12 KB each at history 20): a returning user's history
    # is encoded once, not per request. Keyed on (user bucket, history rows), so a request that adds
    # history gets its own entry, and a new model version starts empty.
    user_states: int = 4096


@dataclass
class _User:
    known: bool
    rows: list[int]
    ignored: list[str] = field(default_factory=list)
    bucket: int = 0  # the ranker's hashed id for users it trained on, else 0 (history-only scoring)


def _user_state_cache(catalog: Catalog, history_length: int, size: int) -> Callable[[int, tuple[int, ...]], UserState]:
    """``(user bucket, history rows) -> UserState``, remembered for the ``size`` most recent keys. Any scorer
    of the version gives the same state (it reads only the history's rows, which never change), so the
    entries stay valid when uploads replace the catalog's scorer. (A closure over the catalog, not a
    method: the cache must not keep the recommender alive in a reference cycle.)"""

    @functools.lru_cache(maxsize=size)
    def state(bucket: int, rows: tuple[int, ...]) -> UserState:
        return catalog.scorer.user_state(list(rows), history_length, user_bucket=bucket)
    return state


class LoadedRecommender:
    """Everything one model version needs to answer requests, held in memory."""

    def __init__(self, directory: Path, tag: str, key: str, sentences: SentenceEncoder,
                 settings: ServingSettings = ServingSettings(), user_vector: UserVector = mean_history_vector) -> None:
        started = time.perf_counter()
        tables = bundle.read_serving_tables(directory)
        self.tag, self.key, self.settings, self.user_vector = tag, key, settings, user_vector
        self.histories = tables.histories
        self.user_buckets = tables.user_buckets
        self.evaluation = tables.evaluation
        config = tables.models
        self.history_length = config["ranker"]["history_length"]
        ranker = load_ranker(directory / bundle.RANKER_WEIGHTS, config["ranker"])
        blend = BlendWeights(**config["blend"])
        self.content = ContentEmbedder(load_encoder(directory / bundle.ENCODER_WEIGHTS, config["encoder"]), sentences)
        items = tables.items.reset_index(drop=True)
        self.catalog = Catalog(items, tables.embeddings, items["id_bucket"].to_numpy(),
                               lambda e, b, f: RankerScorer(ranker, e, b, f, blend), settings.ann_threshold)
        self._upload_lock = threading.Lock()
        self._user_state = _user_state_cache(self.catalog, self.history_length, settings.user_states)
        self._refresh_prior()
        self.uploads = 0
        self.labels: dict[str, str] = {}  # lineage labels of the store entry, set by whoever loaded it
        self.loaded_at = datetime.now(timezone.utc).isoformat()
        log.info("model %s loaded: %d items, %s index, %.1f s", tag, len(self.catalog), self.catalog.index.kind,
                 time.perf_counter() - started)

    # -- shared steps -------------------------------------------------------------------------

    def _refresh_prior(self) -> None:
        """Every head's content-only score (empty history, unknown user) per row, and rows ordered by it:
        what a user without history gets, so their requests need no ranker pass at all."""
        self.prior = self.catalog.scorer.score_user([], self.history_length)
        self.prior_order = np.argsort(-self.prior.score, kind="stable")

    def _insert_prior(self, row: int) -> None:
        """Place one new row in the prior order by its own score (re-scoring 100k rows per upload would not do)."""
        new = self.catalog.scorer.score_user([], self.history_length, np.array([row]))
        position = int(np.searchsorted(-self.prior.score[self.prior_order], -new.score[0], side="right"))
        self.prior = Scores(*(np.append(old, extra) for old, extra in
                              zip((self.prior.p_click, self.prior.expected_watch_s, self.prior.p_conversion,
                                   self.prior.score),
                                  (new.p_click, new.expected_watch_s, new.p_conversion, new.score))))
        self.prior_order = np.insert(self.prior_order, position, row)  # readers only take this reference

    def _user(self, user_id: str, extra: list[str]) -> _User:
        user_key = pseudonymise(user_id, self.key)
        stored = self.histories.get(user_key, [])
        rows, ignored = self.catalog.rows(list(stored) + list(extra))
        return _User(known=bool(stored), rows=rows[-self.history_length:] if rows else [], ignored=ignored,
                     bucket=int(self.user_buckets.get(user_key, 0)))

    def _candidates(self, user: _User, allowed: np.ndarray | None) -> tuple[np.ndarray, str]:
        n_allowed = len(self.catalog) if allowed is None else int(np.count_nonzero(allowed))
        n = self.settings.n_candidates
        if n_allowed <= n:
            rows = np.arange(len(self.catalog)) if allowed is None else np.flatnonzero(allowed)
            return rows, "all"
        prior = self._allowed_prior(allowed, n_allowed, n)
        vector = self.user_vector(user.rows, self.catalog.embeddings) if user.rows else None
        if vector is None:
            return prior[:n], "prior"
        retrieved, _ = self.catalog.index.search(vector, n, allowed)
        n_prior = max(1, int(n * self.settings.prior_share))
        merged = np.concatenate([retrieved, prior[:n_prior]])
        return merged[np.sort(np.unique(merged, return_index=True)[1])], self.catalog.index.kind

    def _allowed_prior(self, allowed: np.ndarray | None, n_allowed: int, n: int) -> np.ndarray:
        """The first ``n`` allowed rows of the prior order. Filters a head of the order sized to the
        filter's pass rate (twice the expected need) before falling back to the whole order: two
        passes over 100k rows per request cost more than the ranker does."""
        order = self.prior_order  # readers only take this reference (uploads replace it)
        if allowed is None:
            return order[:n]
        def keep(rows: np.ndarray) -> np.ndarray:
            rows = rows[rows < len(allowed)]  # rows uploaded after the mask was built are not in it
            return rows[allowed[rows]]

        head = order[: 2 * n * len(order) // max(n_allowed, 1) + n]
        picked = keep(head)
        if len(picked) < n and len(head) < len(order):
            picked = keep(order)
        return picked[:n]

    def _score(self, user: _User, candidates: np.ndarray) -> Scores:
        prior = self.prior  # same numbers the ranker would give for an empty history and an unknown user
        if not user.rows and user.bucket == 0 and (len(candidates) == 0 or candidates.max() < len(prior.score)):
            return Scores(prior.p_click[candidates], prior.expected_watch_s[candidates],
                          prior.p_conversion[candidates], prior.score[candidates])
        return self.catalog.scorer.score_state(self._user_state(user.bucket, tuple(user.rows)), candidates)

    # -- endpoints ------------------------------------------------------------------------------

    def recommend(self, request: s.RecommendRequest) -> s.RecommendResponse:
        user = self._user(request.user_id, request.history)
        allowed = self.catalog.allowed(request.filters, user.rows)
        candidates, how = self._candidates(user, allowed)
        scores = self._score(user, candidates)
        order = np.argsort(-scores.score, kind="stable")[: request.k]
        items = [s.RecommendedVideo(**described, score=float(scores.score[i]), p_click=float(scores.p_click[i]),
                                    expected_watch_s=float(scores.expected_watch_s[i]),
                                    p_conversion=float(scores.p_conversion[i]))
                 for i, described in zip(order.tolist(), self.catalog.describe_many(candidates[order]))]
        ids, titles = self.catalog.video_ids, self.catalog.titles
        history = [s.HistoryVideo(video_id=ids[r], title=titles[r]) for r in user.rows]
        return s.RecommendResponse(user_id=request.user_id, known_user=user.known, model_tag=self.tag,
                                   retrieval=how, candidates=len(candidates), history=history,
                                   ignored_history=user.ignored, items=items)

    def _neighbours(self, vector: np.ndarray, k: int, allowed: np.ndarray | None) -> list[s.SimilarVideo]:
        rows, sims = self.catalog.index.search(vector, k, allowed)
        return [s.SimilarVideo(**self.catalog.describe(int(r)), similarity=float(v)) for r, v in zip(rows, sims)]

    def similar(self, request: s.SimilarRequest) -> s.SimilarResponse:
        """Raises KeyError naming the video when it is not in the catalog."""
        row = self.catalog.row_of.get(request.video_id)
        if row is None:
            raise KeyError(request.video_id)
        allowed = self.catalog.allowed(request.filters, [row] if request.filters.exclude_seen else None)
        if allowed is None:
            allowed = np.ones(len(self.catalog), dtype=bool)
        allowed[row] = False  # never "similar to itself"
        items = self._neighbours(self.catalog.embeddings[row], request.k, allowed)
        return s.SimilarResponse(video_id=request.video_id, model_tag=self.tag, items=items)

    def search(self, request: s.SearchRequest) -> s.SearchResponse:
        allowed = self.catalog.allowed(request.filters)
        items = self._neighbours(self.content.query(request.query), request.k, allowed)
        return s.SearchResponse(query=request.query, model_tag=self.tag, items=items)

    def creators(self, request: s.CreatorsRequest) -> s.CreatorsResponse:
        """Creators ranked by the mean blended score of their three best candidate videos for the user."""
        user = self._user(request.user_id, request.history)
        allowed = self.catalog.allowed(s.Filters(exclude_seen=False), live_only=request.live_only)
        candidates, _ = self._candidates(user, allowed)
        scores = self._score(user, candidates).score
        best: dict[str, list[tuple[float, str]]] = {}
        for row, score in zip(candidates.tolist(), scores.tolist()):
            best.setdefault(self.catalog.creator[row], []).append((score, self.catalog.video_ids[row]))
        live = {c for c, flag in zip(self.catalog.creator, self.catalog.is_live_host) if flag}
        ranked = []
        for creator, pairs in best.items():
            top = sorted(pairs, reverse=True)[:3]
            ranked.append(s.RecommendedCreator(creator_id=creator, is_live_host=creator in live,
                                               score=sum(p[0] for p in top) / 3.0, videos=[p[1] for p in top]))
        ranked.sort(key=lambda c: (-c.score, c.creator_id))
        return s.CreatorsResponse(user_id=request.user_id, known_user=user.known, model_tag=self.tag,
                                  creators=ranked[: request.k])

    def rank(self, requests: list[s.RankRequest]) -> list[s.RankResponse]:
        """Each request's candidates ordered by the ranker. A batch is grouped by user (bucket + history):
        each user's history is encoded once (and remembered) and all their candidates scored in one pass."""
        users = [self._user(r.user_id, r.history) for r in requests]
        parts = [self.catalog.rows(r.video_ids) for r in requests]
        groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
        for i, user in enumerate(users):
            groups.setdefault((user.bucket, tuple(user.rows)), []).append(i)
        scored: list[Scores | None] = [None] * len(requests)
        for (bucket, rows), members in groups.items():
            candidates = np.concatenate([np.asarray(parts[i][0], dtype=np.int64) for i in members])
            scores = self.catalog.scorer.score_state(self._user_state(bucket, rows), candidates)
            start = 0
            for i in members:
                span = slice(start, start + len(parts[i][0]))
                start = span.stop
                scored[i] = Scores(scores.p_click[span], scores.expected_watch_s[span], scores.p_conversion[span],
                                   scores.score[span])
        ids = self.catalog.video_ids
        out = []
        for request, user, (rows, unknown), scores in zip(requests, users, parts, scored):
            block = [s.RankedVideo(video_id=ids[r], score=sc, p_click=pc, expected_watch_s=w, p_conversion=pv)
                     for r, sc, pc, w, pv in zip(rows, scores.score.tolist(), scores.p_click.tolist(),
                                                 scores.expected_watch_s.tolist(), scores.p_conversion.tolist())]
            block.sort(key=lambda v: -v.score)
            out.append(s.RankResponse(user_id=request.user_id, known_user=user.known, model_tag=self.tag,
                                      items=block, unknown_video_ids=unknown))
        return out

    # -- cold start -----------------------------------------------------------------------------

    def add_upload(self, record: dict) -> int:
        """Embed a landed upload (its feature shard + metadata) with this version's encoder and make it
        recommendable: in the index, in the ranker's inputs and in the content-only prior."""
        if record["video_id"] in self.catalog.row_of:
            return self.catalog.row_of[record["video_id"]]
        text = item_text(record.get("title"), record.get("tags") or [], record.get("description"))
        embedding = self.content.video(read_shard(Path(record["shard"])), text)
        row = {"video_id": record["video_id"], "title": record.get("title") or "", "category": record["category"],
               "creator_id": record["creator_id"], "is_product": bool(record.get("is_product")),
               "price": float(record.get("price") or 0.0), "duration_s": float(record["duration_s"]),
               "is_live_host": bool(record.get("is_live_host"))}
        with self._upload_lock:  # rows and prior scores stay aligned when two uploads race
            before = len(self.catalog)
            added = self.catalog.add(NewItem(row, embedding))
            if added == before:
                self._insert_prior(added)
                self.uploads += 1
        return added

    def model_info(self, last_error: str | None) -> s.ModelInfo:
        return s.ModelInfo(tag=self.tag, labels=self.labels, evaluation=self.evaluation, items=len(self.catalog),
                           uploads=self.uploads, index=self.catalog.index.kind, loaded_at=self.loaded_at,
                           last_load_error=last_error)
