"""The loop's nightly off-policy judge: from day d's logged impressions (with the exact propensities the
service's ε-swap exploration logs), the SNIPS estimate of the CTR@10 of the model that serves day d+1,
to set beside the CTR@10 measured on day d+1.

The estimator is position-aware and matches how the service explores (``models/serving/exploration.py``):
  - a user examines slot j with probability θ_j and clicks an examined item with a probability of its
    own (the position-based click model; the demo world's clicks follow it exactly, with θ_j = the
    world's examination curve);
  - under the ε-swap policy, the ranked item of slot r is shown at r with probability 1 − ε (1 when the
    slot cannot swap), and a tail item at each swappable slot with probability ε / |tail|;
  - so an item's expected examination under a policy is E_π(i) = Σ_j π(i, j) θ_j, and a logged click on
    item i is reweighted by w_i = E_target(i) / E_logger(i). The logger's side comes from the logged row
    alone: its propensity says whether the item was the slot's ranked item (all its mass at its logged
    position) or a swapped-in tail item (spread over the swappable slots).
  - SNIPS normalises by the weighted examination, whose expectation is known (Σ_j θ_j per full slate):
        CTR@K ≈ (Σ_j θ_j / K) · Σ w_i c_i / Σ w_i θ_pos(i).
When the target is the logger, every weight is exactly 1 and the estimate is the logged CTR. The 95%
interval is a bootstrap over sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 500


@dataclass(frozen=True)
class LoggedSlate:
    """One served slate: what was shown, at which position, with which logged propensity, and the clicks."""

    videos: list[str]
    propensity: np.ndarray
    clicked: np.ndarray


@dataclass(frozen=True)
class Estimate:
    snips: float
    low: float
    high: float
    sessions: int
    weight_one_share: float  # share of logged impressions whose weight is exactly 1 (1.0 when target == logger)


def swappable(n_head: int, n_tail: int) -> np.ndarray:
    """(n_head,) bool: the slots that may show a tail item (the last |tail| when the tail is short)."""
    out = np.zeros(n_head, dtype=bool)
    if n_tail > 0:
        out[max(0, n_head - n_tail) :] = True
    return out


def target_exposure(ranked: list[str], k: int, epsilon: float, tail: int, theta: np.ndarray) -> dict[str, float]:
    """E_target(i) = Σ_j π(i, j) θ_j for every item the ε-swap policy can show from ``ranked`` (best first)."""
    head, rest = ranked[:k], ranked[k : k + tail] if epsilon > 0 else []
    swap = swappable(len(head), len(rest))
    out = {v: float((1.0 - epsilon if swap[r] else 1.0) * theta[r]) for r, v in enumerate(head)}
    if rest:
        spread = epsilon / len(rest) * float(theta[: len(head)][swap].sum())
        out.update({v: spread for v in rest if v not in out})
    return out


def logger_exposure(slate: LoggedSlate, epsilon: float, theta: np.ndarray) -> np.ndarray:
    """E_logger(i) of each shown item from its logged row: a ranked item (propensity 1 or 1 − ε) has its
    mass at its position; a swapped-in tail item (propensity ε / |tail|) over the swappable slots."""
    p = np.asarray(slate.propensity, dtype=np.float64)
    n = len(p)
    ranked = (p == 1.0) | np.isclose(p, 1.0 - epsilon, rtol=0, atol=1e-9)
    out = p * theta[:n]
    if (~ranked).any():
        n_tail = int(round(epsilon / p[~ranked][0]))  # the request's tail length, from ε / |tail|
        out[~ranked] = p[~ranked] * float(theta[:n][swappable(n, n_tail)].sum())
    return out


def session_terms(
    slate: LoggedSlate, target: dict[str, float], epsilon: float, theta: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """(Σ w c, Σ w θ_pos, w) of one logged slate."""
    weights = np.array([target.get(v, 0.0) for v in slate.videos]) / logger_exposure(slate, epsilon, theta)
    n = len(slate.videos)
    return float((weights * slate.clicked).sum()), float((weights * theta[:n]).sum()), weights


def snips_ctr(
    slates: list[LoggedSlate], targets: list[dict[str, float]], epsilon: float, theta: np.ndarray, k: int, seed: int
) -> Estimate:
    """The target's CTR@k from the logged ``slates`` (``targets[s]``: its exposure on session s)."""
    if not slates:
        raise ValueError("no logged slates to estimate from")
    terms = [session_terms(s, t, epsilon, theta) for s, t in zip(slates, targets, strict=True)]
    num = np.array([t[0] for t in terms])
    den = np.array([t[1] for t in terms])
    weights = np.concatenate([t[2] for t in terms])
    scale = float(theta[:k].sum()) / k
    point = scale * num.sum() / den.sum()
    picks = np.random.default_rng(seed).integers(0, len(slates), size=(RESAMPLES, len(slates)))
    with np.errstate(divide="ignore", invalid="ignore"):
        samples = scale * num[picks].sum(axis=1) / den[picks].sum(axis=1)
    low, high = np.nanpercentile(samples, [2.5, 97.5])
    return Estimate(float(point), float(low), float(high), len(slates), float(np.mean(weights == 1.0)))
