"""Exploration's logged propensities are exact: over 100k sampled slates the frequency of every item at
every position matches the propensity logged with it, within 1% absolute."""

import numpy as np
import pytest

from models.serving.exploration import ExplorationSettings, explore

SLATES = 100_000


@pytest.mark.parametrize(
    ("k", "n_ranked", "settings"),
    [
        (10, 40, ExplorationSettings(epsilon=0.1, tail=20)),
        (10, 14, ExplorationSettings(epsilon=0.3, tail=20)),  # a short tail: only the last 4 slots may swap
        (5, 30, ExplorationSettings(epsilon=0.05, tail=3)),
    ],
)
def test_empirical_frequencies_match_the_logged_propensities(
    k: int, n_ranked: int, settings: ExplorationSettings
) -> None:
    rng = np.random.default_rng(7)
    ranked = np.arange(100, 100 + n_ranked)
    counts = np.zeros((k, n_ranked))
    logged: dict[tuple[int, int], float] = {}
    for _ in range(SLATES):
        slate = explore(ranked, k, settings, rng)
        assert len(set(slate.rows.tolist())) == len(slate.rows) == k  # never an item twice
        for position, (row, p) in enumerate(zip(slate.rows.tolist(), slate.propensity.tolist())):
            counts[position, row - 100] += 1
            assert logged.setdefault((position, row), p) == p  # one propensity per (position, item)
    for (position, row), p in logged.items():
        assert abs(counts[position, row - 100] / SLATES - p) <= 0.01, (position, row, p)
    # Every (position, item) the policy can produce was seen, and the propensities per position sum to 1.
    for position in range(k):
        assert sum(p for (pos, _), p in logged.items() if pos == position) == pytest.approx(1.0)


def test_epsilon_zero_is_the_deterministic_path() -> None:
    slate = explore(np.arange(30), 10, ExplorationSettings(epsilon=0.0), np.random.default_rng(0))
    assert slate.rows.tolist() == list(range(10)) and (slate.propensity == 1).all() and not slate.explored.any()
    assert ExplorationSettings(epsilon=0.0).policy == "deterministic"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        ExplorationSettings(epsilon=1.0)
    with pytest.raises(ValueError, match="tail"):
        ExplorationSettings(tail=-1)
