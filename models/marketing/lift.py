"""Offline lift of a targeting policy: realised hold-out conversions among the top N users it picks,
against random targeting (the base rate) and against popularity targeting (the most active buyers),
pooled over campaigns, with bootstrap 95% intervals over users and campaigns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Lift:
    """Pooled over campaigns at the top ``n`` users (``share`` of the population)."""

    share: float
    n: int
    campaigns: int
    hits: float  # realised conversions among the model's top n, summed over campaigns
    hits_random: float  # expected under random targeting: n x the campaign's base rate
    hits_popular: float
    over_random: float
    over_random_ci: tuple[float, float]
    over_popular: float
    over_popular_ci: tuple[float, float]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """(C, n) column indices of each row's n highest scores (ties: lowest index)."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :n]


def _pooled(scores: np.ndarray, outcomes: np.ndarray, popularity: np.ndarray, n: int) -> tuple[float, float, float]:
    model = np.take_along_axis(outcomes, _top(scores, n), axis=1).sum()
    popular = outcomes[:, np.argsort(-popularity, kind="stable")[:n]].sum()
    random = (n * outcomes.mean(axis=1)).sum()
    return float(model), float(random), float(popular)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def lift_at(
    scores: np.ndarray,
    outcomes: np.ndarray,
    popularity: np.ndarray,
    share: float = 0.01,
    resamples: int = 1000,
    seed: int = 0,
) -> Lift:
    """``scores`` (C campaigns x U users) the model's targeting scores, ``outcomes`` (C x U) whether the user
    converted on the campaign in the hold-out, ``popularity`` (U,) the baseline's score (e.g. past orders).
    The intervals resample users and campaigns with replacement (percentile bootstrap)."""
    scores, outcomes = np.asarray(scores, float), np.asarray(outcomes, float)
    popularity = np.asarray(popularity, float)
    if scores.shape != outcomes.shape or scores.shape[1] != len(popularity):
        raise ValueError(
            f"shapes disagree: scores {scores.shape}, outcomes {outcomes.shape}, popularity {popularity.shape}"
        )
    c, u = scores.shape
    n = max(1, int(round(share * u)))
    hits, random, popular = _pooled(scores, outcomes, popularity, n)
    rng = np.random.default_rng(seed)
    over_random, over_popular = [], []
    for _ in range(resamples):
        cols, rows = rng.integers(0, u, u), rng.integers(0, c, c)
        h, r, p = _pooled(scores[rows][:, cols], outcomes[rows][:, cols], popularity[cols], n)
        over_random.append(_ratio(h, r))
        over_popular.append(_ratio(h, p))

    def interval(values: list[float]) -> tuple[float, float]:
        finite = np.asarray(values)[np.isfinite(values)]
        if len(finite) == 0:
            return (float("nan"), float("nan"))
        return (float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975)))

    return Lift(
        share=share,
        n=n,
        campaigns=c,
        hits=hits,
        hits_random=random,
        hits_popular=popular,
        over_random=_ratio(hits, random),
        over_random_ci=interval(over_random),
        over_popular=_ratio(hits, popular),
        over_popular_ci=interval(over_popular),
    )
