"""The world's users in the loop: who comes each day, and how they answer any slate.

Answers come from the world's own behaviour model (the oracle), never from a model's predictions. Every
policy compared on a day (the live service, the frozen day-0 model, the oracle) is shown to the same
sessions and answered with the same random numbers per (session, position): common random numbers, so
the day's differences between policies are the policies', not the draw's.

Satiation: the generated world has no notion of repeat views (its logged history is one slate per session,
drawn by the logging policy, and ``vidrec.world.behaviour`` prices every impression as a first view). Over
a multi-day loop that matters: a policy that re-shows a video the user clicked yesterday would be paid as
if it were new. Short-video users rarely rewatch, so the loop's users answer a video they already watched
(clicked during the loop) with its click probability times ``REWATCH_FACTOR``. Each policy compared keeps
its own record (``Watched``) of what the user watched on *its* slates, its counterfactual world; the oracle
knows the factor and the record (it knows the truth). The factor lives here, not in the world generator,
because only the loop shows one user slates day after day; the world's history is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from vidrec.world import behaviour as bh
from vidrec.world.oracle import Oracle


@dataclass(frozen=True)
class Session:
    index: int
    user_id: str
    draws: np.ndarray  # (3, slots) uniforms: click, conversion, and the watch noise's normal quantile


REWATCH_FACTOR = 0.1  # a watched video is clicked again at a tenth of its first-view probability


class Watched:
    """What each user clicked on one policy's slates during the loop (world video ids)."""

    def __init__(self) -> None:
        self._by_user: dict[str, set[str]] = {}

    def of(self, user_id: str) -> frozenset[str]:
        return frozenset(self._by_user.get(user_id, ()))

    def add(self, user_id: str, world_ids: list[str], clicked: np.ndarray) -> None:
        self._by_user.setdefault(user_id, set()).update(v for v, c in zip(world_ids, clicked) if c)


@dataclass(frozen=True)
class Answer:
    clicked: np.ndarray
    watch_s: np.ndarray
    converted: np.ndarray


def day_sessions(oracle: Oracle, day: int, n: int, slots: int, seed: int) -> list[Session]:
    """``n`` sessions for ``day``: users drawn by their activity, each with its random numbers."""
    rng = np.random.default_rng([seed, day])
    activity = oracle.users["activity"].to_numpy(np.float64)
    users = rng.choice(len(activity), size=n, p=activity / activity.sum())
    draws = rng.random((n, 3, slots))
    ids = oracle.users["user_id"].to_numpy()
    return [Session(i, str(ids[u]), draws[i]) for i, u in enumerate(users)]


def satiation(world_ids: list[str], watched: frozenset[str], rewatch: float) -> np.ndarray:
    """Per video, the factor on its click probability: ``rewatch`` for a video already watched, else 1."""
    if not 0.0 <= rewatch <= 1.0:
        raise ValueError(f"the rewatch factor must be in [0, 1], got {rewatch}")
    return np.array([rewatch if v in watched else 1.0 for v in world_ids], dtype=np.float64)


def answer(
    oracle: Oracle,
    session: Session,
    world_ids: list[str],
    watched: frozenset[str] = frozenset(),
    rewatch: float = REWATCH_FACTOR,
) -> Answer:
    """How the session's user answers a slate of world video ids, shown in this order, having already
    watched ``watched`` (on this policy's slates)."""
    n = len(world_ids)
    if n == 0:
        empty = np.zeros(0)
        return Answer(empty.astype(bool), empty, empty.astype(bool))
    ui = np.full(n, oracle.user_index([session.user_id])[0])
    ii = oracle.item_index(world_ids)
    p = oracle.params
    u = oracle.utility_idx(ui, ii)
    click_u, conversion_u, watch_u = session.draws[:, :n]
    clicked = click_u < bh.click_prob(u, np.arange(n), p) * satiation(world_ids, watched, rewatch)
    quality = oracle.items["quality"].to_numpy()[ii]
    duration = oracle.items["duration_s"].to_numpy()[ii]
    noise = p.watch_noise * _normal_quantile(watch_u)
    fraction = bh.sigmoid(bh.watch_logit(u, quality, p) + noise)
    watch = np.where(clicked, np.clip(np.round(fraction * duration, 3), 0.001, duration), 0.0)
    is_product = oracle.items["is_product"].to_numpy()[ii]
    price = oracle.items["price"].to_numpy()[ii]
    converted = clicked & (conversion_u < bh.conversion_prob(u, is_product, price, p))
    return Answer(clicked, watch, converted)


def oracle_slate(
    oracle: Oracle,
    user_id: str,
    available: list[str],
    k: int,
    watched: frozenset[str] = frozenset(),
    rewatch: float = REWATCH_FACTOR,
) -> list[str]:
    """The oracle policy: the ``k`` available videos with the highest expected watch seconds per impression
    (the platform's objective), best first, knowing what the user already watched on its slates."""
    if not available:
        return []
    value = oracle.expected_watch_s([user_id] * len(available), available) * satiation(available, watched, rewatch)
    order = np.argsort(-value, kind="stable")[:k]
    return [available[i] for i in order]


def _normal_quantile(u: np.ndarray) -> np.ndarray:
    """Φ⁻¹(u), clipped away from 0 and 1: the watch noise's normal draw from a shared uniform."""
    return ndtri(np.clip(u, 1e-9, 1 - 1e-9))
