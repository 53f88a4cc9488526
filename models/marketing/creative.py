"""Which of a product's videos (creatives) to show a user: ε-greedy over the ranker's predicted
conversion per impression, with the exact probability of every choice logged, so the policy can be
evaluated off-policy (IPS / SNIPS) and learned from its own logs.

With m creatives, the greedy one is shown with probability 1 − ε + ε/m and every other with ε/m
(the single-slot case of models/serving/exploration.py's ε-swaps: exploration is uniform).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def creative_probabilities(scores: np.ndarray, epsilon: float) -> np.ndarray:
    """π(a) for each creative: ε-greedy around the best score (ties: the first)."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"creative epsilon must be in [0, 1], got {epsilon}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) == 0:
        raise ValueError("a creative choice needs at least one scored video")
    m = len(scores)
    probs = np.full(m, epsilon / m)
    probs[int(np.argmax(scores))] += 1.0 - epsilon
    return probs


def choose_creative(scores: np.ndarray, epsilon: float, rng: np.random.Generator) -> tuple[int, float, np.ndarray]:
    """(chosen index, its propensity, every creative's probability)."""
    probs = creative_probabilities(scores, epsilon)
    chosen = int(rng.choice(len(probs), p=probs))
    return chosen, float(probs[chosen]), probs


@dataclass(frozen=True)
class PolicyValue:
    """Off-policy value of a target policy from logs of another (IPS and self-normalised IPS)."""

    ips: float
    snips: float
    ips_ci: tuple[float, float]
    logged: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _interval(values: np.ndarray) -> tuple[float, float]:
    return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))


def policy_value(
    rewards: np.ndarray,
    logged_propensity: np.ndarray,
    target_probability: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
) -> PolicyValue:
    """IPS = mean(r · π_target(a) / π_log(a)) over logged choices a; SNIPS divides by the mean weight."""
    r = np.asarray(rewards, dtype=np.float64)
    w = np.asarray(target_probability, dtype=np.float64) / np.asarray(logged_propensity, dtype=np.float64)
    if np.any(~np.isfinite(w)) or np.any(np.asarray(logged_propensity) <= 0):
        raise ValueError("logged propensities must be in (0, 1]")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(r), (resamples, len(r)))
    boot = (r[idx] * w[idx]).mean(axis=1)
    return PolicyValue(float((r * w).mean()), float((r * w).sum() / w.sum()), _interval(boot), len(r))


def value_ratio(
    rewards: np.ndarray,
    logged_propensity: np.ndarray,
    target_a: np.ndarray,
    target_b: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, tuple[float, float]]:
    """IPS value of policy a over policy b on the same logs, with a paired bootstrap 95% interval."""
    r = np.asarray(rewards, dtype=np.float64)
    p = np.asarray(logged_propensity, dtype=np.float64)
    wa, wb = np.asarray(target_a) / p, np.asarray(target_b) / p
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(r), (resamples, len(r)))
    num, den = (r[idx] * wa[idx]).sum(axis=1), (r[idx] * wb[idx]).sum(axis=1)
    ratios = num[den > 0] / den[den > 0]
    total_b = float((r * wb).sum())
    ratio = float((r * wa).sum() / total_b) if total_b > 0 else float("nan")
    return ratio, (_interval(ratios) if len(ratios) else (float("nan"), float("nan")))
