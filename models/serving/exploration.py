"""Exploration with exact propensities: ε-swaps of the served top K with the next-best candidates.

Each slot of the top K independently, with probability ε, shows a candidate from the next ``tail`` ranks
instead of its own; the swapped slots get distinct tail items drawn uniformly. Every logged item then has
an exact marginal probability of having been shown at its position (what the IPS/SNIPS estimators in
``vidrec/evaluation/sql/off_policy.sql`` consume):
  - the ranked item of a swappable slot: 1 − ε (of a slot that cannot swap: 1);
  - a tail item at a swappable slot: ε / |tail| (given the slot swapped, its item is uniform over the
    tail, by symmetry of the uniform injection of swapped slots into tail items).
When the tail is shorter than the top K, only the last |tail| slots may swap, so a swapped slot always has
a tail item of its own. ε = 0 is the deterministic path. (Plackett-Luce sampling over the top M was the
other option; its marginal probability of an item at a position has no closed form, only the slot's
conditional one, which is why swaps were chosen.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ExplorationSettings:
    epsilon: float = 0.05  # the default: 1 slot in 20 explores, so ~0.4 of 10 slots per response
    tail: int = 20

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon < 1.0:
            raise ValueError(f"exploration epsilon must be in [0, 1), got {self.epsilon}")
        if self.tail < 0:
            raise ValueError(f"exploration tail must be >= 0, got {self.tail}")

    @property
    def policy(self) -> str:
        """The policy name logged with every impression."""
        return (
            "deterministic" if self.epsilon == 0 or self.tail == 0 else f"eps_swap(eps={self.epsilon},tail={self.tail})"
        )


@dataclass
class Slate:
    rows: np.ndarray  # item rows in display order
    propensity: np.ndarray  # P(this item at this position) under the policy
    explored: np.ndarray  # bool: the slot showed a tail item


def explore(ranked: np.ndarray, k: int, settings: ExplorationSettings, rng: np.random.Generator) -> Slate:
    """The slate for one request from ``ranked`` (item rows best first, at least the top ``k``)."""
    head = np.asarray(ranked[:k])
    tail = np.asarray(ranked[k : k + settings.tail])
    n = len(head)
    propensity = np.ones(n)
    explored = np.zeros(n, dtype=bool)
    if settings.epsilon == 0 or len(tail) == 0 or n == 0:
        return Slate(head.copy(), propensity, explored)
    swappable = np.zeros(n, dtype=bool)
    swappable[max(0, n - len(tail)) :] = True
    explored = swappable & (rng.random(n) < settings.epsilon)
    rows = head.copy()
    picks = rng.choice(len(tail), size=int(explored.sum()), replace=False)
    rows[explored] = tail[picks]
    propensity[swappable] = 1.0 - settings.epsilon
    propensity[explored] = settings.epsilon / len(tail)
    return Slate(rows, propensity, explored)
