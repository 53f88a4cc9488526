"""The served path's per-user caches: the retrieval user vector and the ranker's encoded history, each
remembered for the most recent histories of a model version (see ``ServedPath``)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from models.nn.ranker import UserState
from models.nn.retrieval import RetrievalScorer
from models.serving.scoring import RankerScorer


def user_vector_cache(
    current: list[RetrievalScorer], history_length: int, size: int
) -> Callable[[tuple[int, ...]], np.ndarray]:
    """``history rows -> user vector`` (the retrieval user tower, ~0.7 ms a call on one core), remembered for
    the ``size`` most recent histories. Like the ranker's user state it reads only the history's rows, so
    entries stay valid when uploads replace the scorer; the vectors are read-only."""

    @functools.lru_cache(maxsize=size)
    def vector(rows: tuple[int, ...]) -> np.ndarray:
        out = current[0].user_vector(list(rows), history_length)
        out.setflags(write=False)
        return out

    return vector


def user_state_cache(
    current: list[RankerScorer], history_length: int, size: int
) -> Callable[[int, tuple[int, ...]], UserState]:
    """``(user bucket, history rows) -> UserState``, remembered for the ``size`` most recent keys. Any scorer
    of the path gives the same state (it reads only the history's rows, which never change), so entries
    stay valid when uploads replace the scorer. (A closure, not a method: the cache must not keep the
    path alive in a reference cycle.)"""

    @functools.lru_cache(maxsize=size)
    def state(bucket: int, rows: tuple[int, ...]) -> UserState:
        return current[0].user_state(list(rows), history_length, user_bucket=bucket)

    return state
