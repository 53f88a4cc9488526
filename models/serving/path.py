"""The one recommendation path: retrieve N → drop seen and filtered → rank → blend → top K.

The BentoML service answers ``/recommend`` with it and offline evaluation scores the hold-out with
it, so what the gate measures is what is served (a parity test holds the two identical). No Dagster,
no BentoML: a path is built from a bundle's modules and row-aligned item arrays.

Candidates are the retrieval model's user-tower vector searched in an index of its item-tower
vectors, plus the head of the content-only prior (the ranker's score with an empty history, the same
for every user, so computed once). Users with no history rows get the prior alone: the cold-user
fallback, reported as its own slice (``retrieval = "prior"``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from models.nn.ranker import BlendWeights, Ranker
from models.nn.retrieval import RetrievalScorer, TwoTower
from models.serving.commerce import CommerceTerms, final_score
from models.serving.mmr import mmr_order
from models.serving.scoring import RankerScorer, Scores
from models.serving.user_caches import user_state_cache, user_vector_cache
from vidrec.index import ANN_THRESHOLD, ExactIndex, IvfIndex, build_index
from vidrec.items import ITEM_FEATURES


@dataclass(frozen=True)
class PathSettings:
    """Saved in the bundle's config, so the service and evaluation run the same numbers."""

    # Retrieval depth N (index hits; users with history add up to prior_share × N from the prior, so at
    # most 125 ranker inputs): the whole filtered catalogue when it is this small. The ranker pass at
    # 125 candidates costs ~1 ms (history encoded once per request): depth is a quality choice.
    n_candidates: int = 100
    prior_share: float = 0.25
    # MMR re-ranking of the top k (models.serving.mmr): 1.0 is the plain ranking; a request may override.
    mmr_lambda: float = 1.0
    # The final score's commerce terms (models.serving.commerce): + gmv_weight x normalised price x p(conversion),
    # + live_boost while the item's host is live. 0 and 0: the plain ranking.
    gmv_weight: float = 0.0
    live_boost: float = 0.0


@dataclass
class Served:
    """One request's answer: the top ``k`` rows best first, their scores, and what was ranked."""

    rows: np.ndarray
    scores: Scores
    candidates: np.ndarray
    retrieval: str  # "all" (small catalogue), "prior" (no history), or the index kind


def _take(scores: Scores, order: np.ndarray) -> Scores:
    return Scores(
        scores.p_click[order], scores.expected_watch_s[order], scores.p_conversion[order], scores.score[order]
    )


class ServedPath:
    """Retrieval index, ranker scorer and content-only prior over one row-aligned item catalogue.

    Rows are append-only (``add_item``), so a row number taken by one request stays valid while
    another appends; readers only ever take a reference to the arrays an append replaces."""

    def __init__(
        self,
        ranker: Ranker,
        blend: BlendWeights,
        retrieval: TwoTower,
        embeddings: np.ndarray,
        id_buckets: np.ndarray,
        features: np.ndarray,
        ranker_history: int,
        retrieval_history: int,
        settings: PathSettings = PathSettings(),
        ann_threshold: int = ANN_THRESHOLD,
        user_states: int = 4096,
        item_codes: np.ndarray | None = None,
        commerce: CommerceTerms | None = None,
    ) -> None:
        if not (len(embeddings) == len(id_buckets) == len(features)):
            raise ValueError(
                f"path parts disagree: {len(embeddings)} embeddings, {len(id_buckets)} id buckets, "
                f"{len(features)} feature rows"
            )
        self._ranker, self._blend, self._retrieval_model = ranker, blend, retrieval
        self.ranker_history, self.retrieval_history = ranker_history, retrieval_history
        self.settings = settings
        self._lock = threading.Lock()
        self._current: list[RankerScorer] = []  # the cache reads the scorer through this (no reference cycle)
        self.commerce = commerce
        self._retrievals: list[RetrievalScorer] = []  # likewise for the user-vector cache
        self._build(
            np.ascontiguousarray(embeddings, dtype=np.float32),
            np.asarray(id_buckets, dtype=np.int64),
            np.asarray(features, dtype=np.float32),
            None if item_codes is None else np.asarray(item_codes, dtype=np.int64),
        )
        self.index: ExactIndex | IvfIndex = build_index(self.retrieval.item_vectors(), ann_threshold)
        self.prior = self.scorer.score_user([], ranker_history)
        self.prior_order = np.argsort(-self.prior.score, kind="stable")
        self._user_state = user_state_cache(self._current, ranker_history, user_states)
        self._user_vector = user_vector_cache(self._retrievals, retrieval_history, user_states)

    def _build(
        self, embeddings: np.ndarray, id_buckets: np.ndarray, features: np.ndarray, codes: np.ndarray | None
    ) -> None:
        self.embeddings, self.id_buckets, self.features, self.codes = embeddings, id_buckets, features, codes
        self.scorer = RankerScorer(self._ranker, embeddings, id_buckets, features, self._blend, codes)
        self._current[:] = [self.scorer]
        self.retrieval = RetrievalScorer(self._retrieval_model, embeddings, id_buckets)
        self._retrievals[:] = [self.retrieval]

    def __len__(self) -> int:
        return len(self.prior_order)

    # -- the steps ---------------------------------------------------------------------------------

    def candidates(
        self, history_rows: list[int], allowed: np.ndarray | None, seen: list[int] | None = None
    ) -> tuple[np.ndarray, str]:
        """Retrieve N (the user tower over the item index) merged with the prior's head; the prior
        alone without history; every allowed row when no more than N are allowed. ``seen``: rows to leave
        out besides ``allowed``'s (exclude_seen), dropped from deeper searches rather than masked: a copy
        of a 100k-row mask per request, and the bitmap-filtered scan it forces, cost more than the few
        extra hits; the result is the same rows."""
        n = self.settings.n_candidates
        seen = sorted({r for r in seen if r < len(self)}) if seen else []
        if allowed is not None and len(allowed) != len(self):  # a mask built before or after an upload
            allowed = np.concatenate([allowed, np.zeros(max(0, len(self) - len(allowed)), bool)])[: len(self)]
        n_filtered = len(self) if allowed is None else int(np.count_nonzero(allowed))
        if seen:
            seen = seen if allowed is None else [r for r in seen if allowed[r]]
        n_allowed = n_filtered - len(seen)
        if n_allowed <= n:
            if seen:
                allowed = np.ones(len(self), dtype=bool) if allowed is None else allowed.copy()
                allowed[seen] = False
            return (np.arange(len(self)) if allowed is None else np.flatnonzero(allowed)), "all"
        prior = _without(self._allowed_prior(allowed, n_filtered, n + len(seen)), seen)
        if not history_rows:
            return prior[:n], "prior"
        vector = self._user_vector(tuple(history_rows))
        retrieved = _without(self.index.search(vector, n + len(seen), allowed)[0], seen)[:n]
        n_prior = max(1, int(n * self.settings.prior_share))
        merged = np.concatenate([retrieved, prior[:n_prior]])
        return merged[np.sort(np.unique(merged, return_index=True)[1])], self.index.kind

    def _allowed_prior(self, allowed: np.ndarray | None, n_allowed: int, n: int) -> np.ndarray:
        """The first ``n`` allowed rows of the prior order. Filters a head of the order sized to the
        filter's pass rate (twice the expected need) before falling back to the whole order: two
        passes over 100k rows per request cost more than the ranker does."""
        order = self.prior_order
        if allowed is None:
            return order[:n]

        def keep(rows: np.ndarray) -> np.ndarray:
            rows = rows[rows < len(allowed)]  # rows appended after the mask was built are not in it
            return rows[allowed[rows]]

        head = order[: 2 * n * len(order) // max(n_allowed, 1) + n]
        picked = keep(head)
        if len(picked) < n and len(head) < len(order):
            picked = keep(order)
        return picked[:n]

    def score(
        self, history_rows: list[int], user_bucket: int, candidates: np.ndarray, live_now: np.ndarray | None = None
    ) -> Scores:
        """The ranker's heads and blended score; an unknown user without history reads the prior (which was
        scored with nobody live, so not while a candidate's host is: ``live_now``)."""
        prior = self.prior
        live = live_now if live_now is not None and live_now.any() else None
        if (
            not history_rows
            and user_bucket == 0
            and live is None
            and (len(candidates) == 0 or candidates.max() < len(prior.score))
        ):
            return _take(prior, candidates)
        state = self._user_state(int(user_bucket), tuple(history_rows))
        return self.scorer.score_state(state, candidates, live_now=live)

    def recommend(
        self,
        history_rows: list[int],
        user_bucket: int,
        k: int,
        allowed: np.ndarray | None = None,
        exclude_seen: bool = True,
        exhaustive: bool = False,
        mmr_lambda: float | None = None,
        now_ns: int | None = None,
    ) -> Served:
        """Top ``k`` for one user: ``history_rows`` oldest first (only the last ranker_history count),
        ``allowed`` a boolean mask of rows the filters pass (None: all). ``exhaustive`` ranks every
        allowed row instead of retrieving: the whole-catalogue upper bound evaluation reports. ``now_ns``
        (the request's time) decides whose hosts are live, for the ranker and the live boost; None: nobody."""
        history_rows = list(history_rows)[-self.ranker_history :] if history_rows else []
        seen = history_rows if exclude_seen else []
        if exhaustive:
            if allowed is not None and len(allowed) != len(self):  # a mask built before or after an upload
                allowed = np.concatenate([allowed, np.zeros(max(0, len(self) - len(allowed)), bool)])[: len(self)]
            if seen:
                allowed = np.ones(len(self), dtype=bool) if allowed is None else allowed.copy()
                allowed[[r for r in seen if r < len(allowed)]] = False
            candidates = np.arange(len(self)) if allowed is None else np.flatnonzero(allowed)
            how = "all"
        else:
            candidates, how = self.candidates(history_rows, allowed, seen)
        live = None if self.commerce is None else self.commerce.live_now(candidates, now_ns)
        scores = self.score(history_rows, user_bucket, candidates, live)
        settings = self.settings
        ranked = final_score(scores, candidates, self.commerce, settings.gmv_weight, settings.live_boost, live)
        if ranked is not scores.score:  # the answer's scores are the ones it was ordered by
            scores = Scores(scores.p_click, scores.expected_watch_s, scores.p_conversion, ranked)
        lam = self.settings.mmr_lambda if mmr_lambda is None else mmr_lambda
        if lam < 1.0:
            order = mmr_order(scores.score, self.embeddings[candidates], k, lam)
        else:  # the plain ranking, without gathering embeddings (every row when exhaustive)
            order = np.argsort(-scores.score, kind="stable")[:k]
        return Served(rows=candidates[order], scores=_take(scores, order), candidates=candidates, retrieval=how)

    # -- uploads -----------------------------------------------------------------------------------

    def add_item(
        self, embedding: np.ndarray, features: np.ndarray, codes: np.ndarray | None = None, creator: str = ""
    ) -> int:
        """Append one item never trained on (id bucket 0: placed by its content) to the ranker's inputs,
        the retrieval index and the prior; returns its row. ``codes``: its hashed brand and category
        (None: none); ``creator``: for the live schedule (its price comes from ``features``' log price)."""
        with self._lock:
            row = len(self)
            extra = np.zeros((1, 2), np.int64) if codes is None else np.asarray(codes, np.int64).reshape(1, -1)
            self._build(
                np.concatenate([self.embeddings, np.asarray(embedding, np.float32).reshape(1, -1)]),
                np.append(self.id_buckets, 0),
                np.concatenate([self.features, features.reshape(1, -1)]),
                None if self.codes is None else np.concatenate([self.codes, extra]),
            )
            if self.commerce is not None:
                is_product, log_price = (
                    features[ITEM_FEATURES.index("is_product")],
                    features[ITEM_FEATURES.index("log_price")],
                )
                self.commerce.add(float(np.expm1(log_price)) if is_product else 0.0, creator)
            self.index.add(
                RetrievalScorer(self._retrieval_model, self.embeddings[row:], self.id_buckets[row:]).item_vectors()
            )
            new = self.scorer.score_user([], self.ranker_history, np.array([row]))
            position = int(np.searchsorted(-self.prior.score[self.prior_order], -new.score[0], side="right"))
            self.prior = Scores(
                *(
                    np.append(old, extra)
                    for old, extra in zip(
                        (self.prior.p_click, self.prior.expected_watch_s, self.prior.p_conversion, self.prior.score),
                        (new.p_click, new.expected_watch_s, new.p_conversion, new.score),
                    )
                )
            )
            self.prior_order = np.insert(self.prior_order, position, row)  # published last
            return row


def _without(rows: np.ndarray, seen: list[int]) -> np.ndarray:
    """``rows`` in order, less those in ``seen`` (a few rows)."""
    return rows[~np.isin(rows, seen)] if seen else rows
