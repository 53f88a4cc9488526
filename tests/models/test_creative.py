"""ε-greedy creative choice: exact propensities (checked against sampled frequencies) and IPS values
that recover a known policy value."""

from __future__ import annotations

import numpy as np
import pytest

from models.marketing.creative import choose_creative, creative_probabilities, policy_value, value_ratio


def test_propensities_are_exact() -> None:
    probs = creative_probabilities(np.array([0.1, 0.5, 0.2, 0.5]), 0.2)
    assert probs.tolist() == pytest.approx([0.05, 0.85, 0.05, 0.05])  # ties: the first best is greedy
    rng = np.random.default_rng(0)
    picks = [choose_creative(np.array([0.1, 0.5, 0.2, 0.5]), 0.2, rng) for _ in range(20_000)]
    frequencies = np.bincount([p[0] for p in picks], minlength=4) / len(picks)
    assert frequencies == pytest.approx(probs, abs=0.01)
    assert all(p[1] == pytest.approx(probs[p[0]]) for p in picks[:100])
    assert creative_probabilities(np.array([3.0, 1.0]), 0.0).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        creative_probabilities(np.array([1.0]), 1.5)


def test_ips_recovers_the_value_of_a_policy_from_uniform_logs() -> None:
    rng = np.random.default_rng(1)
    true_rate = np.array([0.02, 0.10, 0.05])
    n = 60_000
    chosen = rng.integers(0, 3, n)
    reward = rng.random(n) < true_rate[chosen]
    logged = np.full(n, 1 / 3)
    always_best = (chosen == 1).astype(float)
    always_first = (chosen == 0).astype(float)
    value = policy_value(reward, logged, always_best, resamples=200)
    assert value.ips == pytest.approx(0.10, abs=0.01) and value.ips_ci[0] < 0.10 < value.ips_ci[1]
    assert value.snips == pytest.approx(0.10, abs=0.01)
    ratio, (low, high) = value_ratio(reward, logged, always_best, always_first, resamples=200)
    assert ratio == pytest.approx(5.0, rel=0.25) and low < ratio < high
    with pytest.raises(ValueError, match="propensities"):
        policy_value(reward[:2], np.array([0.0, 0.5]), always_best[:2])
