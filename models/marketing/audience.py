"""Campaign audiences from the served model: the users most likely to convert on (or click) a set of
videos, and lookalikes of seed users in the retrieval model's user-tower space; k-anonymous by size.

No Dagster, no BentoML: ``POST /audience`` (bentos/marketing.py), the ``marketing_audiences`` asset and
``benchmarks/commerce.py`` all call these functions over a ``ServedPath``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from models.serving.path import ServedPath

Objective = Literal["conversion", "click"]
MIN_AUDIENCE = 100  # k: an exported audience never names fewer users than this


class AudienceTooSmall(ValueError):
    """The audience would name fewer than the minimum number of users (k-anonymity)."""


@dataclass(frozen=True)
class AudienceUsers:
    """The users an audience can be drawn from: pseudonymised keys, click histories as item rows (oldest
    first) and the ranker's hashed user id (0 for users it did not train on)."""

    user_keys: list[str]
    histories: list[list[int]]
    buckets: np.ndarray

    @classmethod
    def from_histories(
        cls, histories: dict[str, list[str]], row_of: dict[str, int], user_buckets: dict[str, int]
    ) -> AudienceUsers:
        """Users with at least one history video still in the catalogue, in sorted key order."""
        keys, rows = [], []
        for key in sorted(histories):
            known = [row_of[v] for v in histories[key] if v in row_of]
            if known:
                keys.append(key)
                rows.append(known)
        return cls(keys, rows, np.array([int(user_buckets.get(k, 0)) for k in keys], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.user_keys)


@dataclass(frozen=True)
class Audience:
    """Users best first with their scores; ``size`` is what was asked, capped by who is eligible."""

    user_keys: list[str]
    scores: np.ndarray
    objective: str


def user_scores(path: ServedPath, users: AudienceUsers, target_rows: np.ndarray, objective: Objective) -> np.ndarray:
    """Per user, the best of the campaign's videos by the ranker's heads: p(click) x p(conversion | click)
    (conversion per impression) or p(click). One ranker pass per user over the campaign's rows."""
    if len(target_rows) == 0:
        raise ValueError("the campaign has no video in the serving catalogue")
    out = np.empty(len(users))
    for i, (rows, bucket) in enumerate(zip(users.histories, users.buckets)):
        scores = path.score(rows[-path.ranker_history :], int(bucket), target_rows)
        value = scores.p_click * scores.p_conversion if objective == "conversion" else scores.p_click
        out[i] = float(np.max(value))
    return out


def _check_size(n: int, eligible: int, min_size: int) -> int:
    if n < min_size:
        raise AudienceTooSmall(
            f"an audience of {n} users is below the minimum of {min_size} (k-anonymity): ask for n >= {min_size}"
        )
    if eligible < min_size:
        raise AudienceTooSmall(
            f"only {eligible} users are eligible (have a history in the serving model), fewer than the minimum "
            f"audience of {min_size} (k-anonymity); widen the campaign or wait for more users"
        )
    return min(n, eligible)


def top_audience(
    path: ServedPath,
    users: AudienceUsers,
    target_rows: np.ndarray,
    n: int,
    objective: Objective = "conversion",
    min_size: int = MIN_AUDIENCE,
) -> Audience:
    """The ``n`` users with the highest predicted conversion (or click) on any of ``target_rows``."""
    size = _check_size(n, len(users), min_size)
    scores = user_scores(path, users, np.asarray(target_rows, dtype=np.int64), objective)
    order = np.argsort(-scores, kind="stable")[:size]
    return Audience([users.user_keys[i] for i in order], scores[order], objective)


def user_vectors(path: ServedPath, users: AudienceUsers) -> np.ndarray:
    """(U, dim) L2-normalised user-tower vectors of every user (the retrieval model's query side)."""
    length = path.retrieval_history
    matrix = np.full((len(users), length), -1, dtype=np.int64)
    for i, rows in enumerate(users.histories):
        recent = rows[-length:]
        matrix[i, length - len(recent) :] = recent
    vectors = path.retrieval.user_vectors(matrix, users.buckets)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def lookalikes(
    path: ServedPath,
    users: AudienceUsers,
    seed_keys: list[str],
    n: int,
    min_size: int = MIN_AUDIENCE,
    vectors: np.ndarray | None = None,
) -> tuple[Audience, list[str]]:
    """The ``n`` users nearest (cosine) to the centroid of the seed users' user-tower vectors, seeds
    excluded; returns the audience and the seed keys that are not eligible users (ignored)."""
    index = {k: i for i, k in enumerate(users.user_keys)}
    seeds = [index[k] for k in seed_keys if k in index]
    ignored = [k for k in seed_keys if k not in index]
    if not seeds:
        raise ValueError(f"none of the {len(seed_keys)} seed users has a history in the serving model")
    size = _check_size(n, len(users) - len(set(seeds)), min_size)
    vectors = user_vectors(path, users) if vectors is None else vectors
    centroid = vectors[seeds].mean(axis=0)
    similarity = vectors @ (centroid / max(float(np.linalg.norm(centroid)), 1e-12))
    similarity[seeds] = -np.inf
    order = np.argsort(-similarity, kind="stable")[:size]
    return Audience([users.user_keys[i] for i in order], similarity[order], "lookalike"), ignored
