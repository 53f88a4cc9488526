"""Scoring with a trained ranker: the one code path used by offline evaluation and serving."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.nn.ranker import BlendWeights, Ranker, UserState
from models.serving.fast_ranker import FastRanker


@dataclass
class Scores:
    p_click: np.ndarray
    expected_watch_s: np.ndarray
    p_conversion: np.ndarray
    score: np.ndarray


class RankerScorer:
    """Holds a ranker and the per-item inputs it needs, indexed by item row."""

    def __init__(
        self,
        ranker: Ranker,
        item_embeddings: np.ndarray,
        id_buckets: np.ndarray,
        item_features: np.ndarray,
        weights: BlendWeights,
        item_codes: np.ndarray | None = None,
    ) -> None:
        self.ranker = ranker.eval()
        self.embeddings = torch.as_tensor(item_embeddings, dtype=torch.float32)
        self.ids = torch.as_tensor(id_buckets, dtype=torch.long)
        self.features = torch.as_tensor(item_features, dtype=torch.float32)
        self.weights = weights
        # Hashed brand and category per row (vidrec.items.item_code_matrix); None: the ranker sees none.
        self.codes = None if item_codes is None else torch.as_tensor(item_codes, dtype=torch.long)
        self.fast = FastRanker(self.ranker, weights)  # the serving pass (same numbers, fewer ops)

    def codes_of(self, cand: torch.Tensor) -> torch.Tensor | None:
        return None if self.codes is None else self.codes[cand]

    @torch.inference_mode()
    def score(
        self,
        history: np.ndarray,
        candidates: np.ndarray,
        batch_size: int = 8192,
        user_ids: np.ndarray | None = None,
        taste: np.ndarray | None = None,
        live_now: np.ndarray | None = None,
    ) -> Scores:
        """history: (B, H) item rows (-1 = padding); candidates: (B,) item rows; user_ids: (B,)
        hashed user buckets (0 or None = unknown user, scored from history alone); taste: (B, D)
        the users' taste vectors (``vidrec.engagement``; None = no opinion); live_now: (B,) whether the
        candidate's host is live at that impression (None: nobody)."""
        if user_ids is None:
            user_ids = np.zeros(len(candidates), dtype=np.int64)
        parts: list[list[np.ndarray]] = [[], [], [], []]
        for start in range(0, len(candidates), batch_size):
            hist = torch.as_tensor(history[start : start + batch_size], dtype=torch.long)
            cand = torch.as_tensor(candidates[start : start + batch_size], dtype=torch.long)
            users = torch.as_tensor(user_ids[start : start + batch_size], dtype=torch.long)
            tastes = None if taste is None else torch.as_tensor(taste[start : start + batch_size], dtype=torch.float32)
            live = (
                None if live_now is None else torch.as_tensor(live_now[start : start + batch_size], dtype=torch.float32)
            )
            mask = hist >= 0
            safe = hist.clamp(min=0)
            out = self.ranker(
                candidate=self.embeddings[cand],
                candidate_id=self.ids[cand],
                item_features=self.features[cand],
                history=self.embeddings[safe],
                history_ids=self.ids[safe] * mask,
                history_mask=mask,
                position=None,
                user_id=users,
                taste=tastes,
                item_codes=self.codes_of(cand),
                live_now=live,
            )
            for bucket, value in zip(
                parts, (out.p_click, out.expected_watch_s, out.p_conversion, out.blend(self.weights))
            ):
                bucket.append(value.float().numpy())
        joined = [np.concatenate(p) if p else np.zeros(0, dtype=np.float32) for p in parts]
        return Scores(*joined)

    def score_user(
        self,
        history_rows: list[int],
        history_length: int,
        candidates: np.ndarray | None = None,
        user_bucket: int = 0,
        taste: np.ndarray | None = None,
        batch_size: int = 8192,
    ) -> Scores:
        """Score every candidate (default: the whole catalogue) for one user's history;
        ``user_bucket`` is the user's hashed id (``RankerInputs.user_buckets``), 0 if unknown;
        ``taste`` the user's vector from ``vidrec.engagement.latest_tastes`` (None if unknown).

        The history is encoded once (``Ranker.encode_user``) and broadcast over the candidates; the
        numbers equal ``score`` with the history repeated per candidate (to float rounding)."""
        if candidates is None:
            candidates = np.arange(len(self.embeddings))
        return self._score_state(
            self.user_state(history_rows, history_length, user_bucket, taste),
            np.asarray(candidates, dtype=np.int64),
            batch_size,
        )

    @staticmethod
    def _history_row(history_rows: list[int], history_length: int) -> np.ndarray:
        """The padded history line ``score`` takes: -1 padding in front, the most recent rows last."""
        row = np.full(history_length, -1, dtype=np.int64)
        recent = list(history_rows)[-history_length:] if history_length > 0 else []
        if recent:
            row[-len(recent) :] = recent
        return row

    @torch.inference_mode()
    def user_state(
        self, history_rows: list[int], history_length: int, user_bucket: int = 0, taste: np.ndarray | None = None
    ) -> UserState:
        """One user's candidate-independent ranker state (``Ranker.encode_user``), for ``score_state``;
        it depends only on the ranker and the history rows' items, so a caller may keep it while the
        catalogue grows (rows are append-only).

        The padding is dropped (one padded slot is kept when there is no history): padded slots get
        attention weight exactly 0, so the scores are the same, and the attention, which costs
        candidates x history slots, runs over the real items only (a median of ~8 of 20 slots in the demo world)."""
        row = self._history_row(history_rows, history_length)
        real = row >= 0
        hist = torch.as_tensor(row[real] if real.any() else row[-1:], dtype=torch.long)
        mask = hist >= 0
        safe = hist.clamp(min=0)
        return self.ranker.encode_user(
            self.embeddings[safe],
            self.ids[safe] * mask,
            mask,
            user_id=int(user_bucket),
            taste=None if taste is None else torch.as_tensor(taste, dtype=torch.float32),
        )

    def score_state(
        self, state: UserState, candidates: np.ndarray, batch_size: int = 8192, live_now: np.ndarray | None = None
    ) -> Scores:
        """``score_user`` from a state ``user_state`` made: the same numbers, without re-encoding the history;
        ``live_now`` (C,) marks candidates whose host is live now (None: none is)."""
        return self._score_state(state, np.asarray(candidates, dtype=np.int64), batch_size, live_now)

    def _score_state(
        self, state: UserState, candidates: np.ndarray, batch_size: int, live_now: np.ndarray | None = None
    ) -> Scores:
        parts: list[list[np.ndarray]] = [[], [], [], []]
        # Chunked: the attention holds a (chunk, history, hidden) tensor, ~40 MB at 8192 candidates.
        for start in range(0, len(candidates), batch_size):
            cand = torch.as_tensor(candidates[start : start + batch_size], dtype=torch.long)
            live = (
                None if live_now is None else torch.as_tensor(live_now[start : start + batch_size], dtype=torch.float32)
            )
            out = self.fast.scores(
                state, self.embeddings[cand], self.ids[cand], self.features[cand], self.codes_of(cand), live
            )
            for bucket, value in zip(parts, out):
                bucket.append(value)
        joined = [np.concatenate(p) if len(p) > 1 else p[0] if p else np.zeros(0, dtype=np.float32) for p in parts]
        return Scores(*joined)
