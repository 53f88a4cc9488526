"""How users respond to items: the true utility and the click, watch and conversion models.

Pure functions over numpy arrays; both the simulator and the `Oracle` call these, so there is one source of truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

_HERMITE_X, _HERMITE_W = np.polynomial.hermite_e.hermegauss(12)
_HERMITE_W = _HERMITE_W / _HERMITE_W.sum()


@dataclass(frozen=True)
class BehaviourParams:
    """Coefficients of the response models (tuned for CTR ~10% and product conversion ~20%)."""

    category_scale: float = 1.0
    style_match: float = 1.0
    style_mismatch: float = -0.3
    energy_scale: float = 2.0
    click_a: float = -1.6
    click_b: float = 1.0
    examination_decay: float = 0.8
    watch_a: float = -0.3
    watch_b: float = 0.6
    watch_quality: float = 1.5
    watch_noise: float = 0.7
    conversion_a: float = -2.0
    conversion_b: float = 0.5
    conversion_price: float = 0.6
    # Commerce (vidrec.world.commerce): the user's favourite brand, their price sensitivity around the
    # median price, and their affinity to a creator who is live at that moment.
    brand_match: float = 1.0
    brand_mismatch: float = -0.3
    price_scale: float = 1.0
    live_boost: float = 0.5
    # Logging policy: pi = uniform_mix * uniform + (1 - uniform_mix) * softmax(beta * noisy score).
    policy_uniform_mix: float = 0.3
    policy_beta: float = 1.0
    policy_user_noise: float = 0.7
    policy_item_noise: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def category_affinity(theta: np.ndarray, p: BehaviourParams) -> np.ndarray:
    """Utility from category preference theta in [0, 1]; log so a 0-weight category is strongly negative."""
    k = 6.0
    return p.category_scale * np.log(k * theta + 0.2)


def style_affinity(
    pref_style: np.ndarray, style_weight: np.ndarray, style: np.ndarray, p: BehaviourParams
) -> np.ndarray:
    return style_weight * np.where(pref_style == style, p.style_match, p.style_mismatch)


def utility(
    theta: np.ndarray,
    pref_style: np.ndarray,
    style_weight: np.ndarray,
    pref_energy: np.ndarray,
    quality_sensitivity: np.ndarray,
    bias: np.ndarray,
    style: np.ndarray,
    energy: np.ndarray,
    quality: np.ndarray,
    p: BehaviourParams,
) -> np.ndarray:
    """True utility of an item for a user, elementwise over aligned arrays (theta = user's weight on the
    item's category)."""
    return (
        category_affinity(theta, p)
        + style_affinity(pref_style, style_weight, style, p)
        - p.energy_scale * np.abs(energy - pref_energy)
        + quality_sensitivity * 2.0 * (quality - 0.5)
        + bias
    )


def examination_prob(position: np.ndarray | int | None, p: BehaviourParams) -> np.ndarray | float:
    """Chance a user looks at slot `position` (0-based); None means no position bias."""
    if position is None:
        return 1.0
    return (1.0 + np.asarray(position, dtype=np.float64)) ** -p.examination_decay


def click_prob(u: np.ndarray, position: np.ndarray | int | None, p: BehaviourParams) -> np.ndarray:
    return examination_prob(position, p) * sigmoid(p.click_a + p.click_b * u)


def watch_logit(u: np.ndarray, quality: np.ndarray, p: BehaviourParams) -> np.ndarray:
    """Centre of the logit of the watched fraction of the video, given a click."""
    return p.watch_a + p.watch_b * u + p.watch_quality * (quality - 0.5)


def expected_watch_fraction(u: np.ndarray, quality: np.ndarray, p: BehaviourParams) -> np.ndarray:
    """E[sigmoid(logit + N(0, noise))] by Gauss-Hermite quadrature: the exact mean the simulator samples from."""
    centre = np.asarray(watch_logit(u, quality, p))[..., None]
    return (sigmoid(centre + p.watch_noise * _HERMITE_X) * _HERMITE_W).sum(axis=-1)


def sample_watch_fraction(
    u: np.ndarray, quality: np.ndarray, p: BehaviourParams, rng: np.random.Generator
) -> np.ndarray:
    return sigmoid(watch_logit(u, quality, p) + rng.normal(0.0, p.watch_noise, np.shape(u)))


def conversion_prob(u: np.ndarray, is_product: np.ndarray, price: np.ndarray, p: BehaviourParams) -> np.ndarray:
    """Chance of a purchase given a click; zero for non-products."""
    log_price = np.log(np.where(is_product, np.nan_to_num(price, nan=1.0), 1.0) / 20.0)
    prob = sigmoid(p.conversion_a + p.conversion_b * u - p.conversion_price * log_price)
    return np.where(is_product, prob, 0.0)


def commerce_affinity(
    is_product: np.ndarray,
    brand_match: np.ndarray,
    brand_weight: np.ndarray,
    price_sensitivity: np.ndarray,
    price: np.ndarray,
    live_now: np.ndarray,
    host_affinity: np.ndarray,
    p: BehaviourParams,
) -> np.ndarray:
    """Utility a product video gains from its brand and price, and a live host's video while the host is
    live; zero for everything else, so non-commerce items keep exactly their old utility."""
    log_price = np.log(np.where(is_product, np.nan_to_num(price, nan=20.0), 20.0) / 20.0)
    brand = brand_weight * np.where(brand_match, p.brand_match, p.brand_mismatch)
    product = np.where(is_product, brand - p.price_scale * price_sensitivity * log_price, 0.0)
    return product + np.where(live_now, p.live_boost + host_affinity, 0.0)
