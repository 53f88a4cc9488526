"""The final score the served path orders by: the ranker's blended relevance plus two optional commerce terms.

    final = relevance + gmv_weight · gmv / max(gmv over the request's candidates) + live_boost · live_now

``gmv`` is each candidate's expected order value, price × p(conversion) (the ranker's ESMM head, which already
includes p(click)); it is divided by the request's largest so the term lies in [0, gmv_weight] whatever the
catalogue's prices. ``live_now`` is 1 while the item's creator is inside one of the schedule's live sessions at
the request's time, 0 otherwise and always 0 without a time. Both weights 0 (the default, PathSettings) leave the
relevance score untouched: the plain ranking.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from models.serving.scoring import Scores


class CommerceTerms:
    """Per-row price and creator of a served catalogue, and the live schedule the service was given.

    Rows are append-only like the served path's (``add``); a request reads the arrays it found."""

    def __init__(self, prices: np.ndarray, creators: np.ndarray, sessions: pd.DataFrame | None = None) -> None:
        if len(prices) != len(creators):
            raise ValueError(f"commerce terms disagree: {len(prices)} prices, {len(creators)} creators")
        self.prices = np.nan_to_num(np.asarray(prices, dtype=np.float64), nan=0.0)
        self.creators = np.asarray(creators, dtype=object)
        self.sessions = sessions if sessions is not None else pd.DataFrame(columns=["creator_id", "start", "end"])
        # Per request the work is one pass over the sessions (which hosts are live now) and one gather over
        # the candidates, not a string lookup per candidate: this runs inside /recommend.
        hosts = sorted(set(self.sessions["creator_id"].astype(str)))
        self._host_index = {h: i for i, h in enumerate(hosts)}
        self._session_host = np.array([self._host_index[str(c)] for c in self.sessions["creator_id"]], dtype=np.int64)
        self._starts = _ns(self.sessions["start"])
        self._ends = _ns(self.sessions["end"])
        self._host_of_row = np.array([self._host_index.get(str(c), -1) for c in self.creators], dtype=np.int64)
        self._lock = threading.Lock()

    @property
    def has_schedule(self) -> bool:
        return len(self._starts) > 0

    @classmethod
    def from_items(cls, items: pd.DataFrame, sessions: pd.DataFrame | None = None) -> CommerceTerms:
        """From an item table with ``price`` (NULL for non-products: 0) and ``creator_id``."""
        prices = items["price"].astype(float).fillna(0.0).to_numpy() if "price" in items else np.zeros(len(items))
        creators = items["creator_id"] if "creator_id" in items else pd.Series("", index=items.index)
        return cls(prices, creators.astype(str).to_numpy(object), sessions)

    def add(self, price: float, creator: str) -> None:
        with self._lock:
            self.prices = np.append(self.prices, 0.0 if not np.isfinite(price) else float(price))
            self.creators = np.append(self.creators, np.array([creator], dtype=object))
            self._host_of_row = np.append(self._host_of_row, self._host_index.get(str(creator), -1))

    def live_now(self, rows: np.ndarray, now_ns: int | None) -> np.ndarray:
        """(len(rows),) bool: the row's creator has a session with start <= now < end (all False when None)."""
        rows = np.asarray(rows, dtype=np.int64)
        if now_ns is None or not self.has_schedule:
            return np.zeros(len(rows), dtype=bool)
        live_hosts = np.zeros(len(self._host_index) + 1, dtype=bool)  # the extra slot: "not a host" (-1)
        on = (self._starts <= now_ns) & (now_ns < self._ends)
        live_hosts[self._session_host[on]] = True
        return live_hosts[self._host_of_row[rows]]

    def expected_gmv(self, rows: np.ndarray, scores: Scores) -> np.ndarray:
        """price × p(conversion) per candidate: the expected order value of showing it."""
        return self.prices[np.asarray(rows, dtype=np.int64)] * scores.p_conversion


def _ns(values: pd.Series) -> np.ndarray:
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    return pd.to_datetime(values, utc=True).to_numpy("datetime64[ns]").astype(np.int64)


def final_score(
    scores: Scores,
    rows: np.ndarray,
    terms: CommerceTerms | None,
    gmv_weight: float,
    live_boost: float,
    live_now: np.ndarray | None = None,
) -> np.ndarray:
    """The score to order ``rows`` by (module docstring); returns ``scores.score`` itself when both weights are
    0 or there are no terms, so the default ranking is bit-for-bit the plain one."""
    if terms is None or (gmv_weight == 0.0 and live_boost == 0.0):
        return scores.score
    final = scores.score.astype(np.float64)
    if gmv_weight != 0.0 and len(rows):
        gmv = terms.expected_gmv(rows, scores)
        top = float(gmv.max())
        if top > 0:
            final = final + gmv_weight * gmv / top
    if live_boost != 0.0 and live_now is not None:
        final = final + live_boost * live_now.astype(np.float64)
    return final.astype(np.float32)
