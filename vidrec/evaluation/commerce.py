"""Commerce metrics: GMV@k of a ranking policy from logged impressions (IPS and SNIPS on the logged
propensities), revenue per session, conversion per impression, and the GMV non-inferiority gate rule
(skipped with its reason when the hold-out has no orders or no propensities).

GMV of an impression is quantity x unit price of the orders it led to (``orders.video_id`` and
``session_id`` attribute an order to the impression); an impression without an order has GMV 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


class MetricUnavailable(ValueError):
    """The data lacks a signal the metric needs; the message is the reason a report shows."""


def impression_gmv(events: pd.DataFrame, orders: pd.DataFrame) -> pd.Series:
    """GMV per event row (aligned with ``events``), from orders matched on (session_id, video_id)."""
    if orders.empty:
        return pd.Series(0.0, index=events.index)
    amount = (orders["quantity"] * orders["unit_price"]).groupby([orders["session_id"], orders["video_id"]]).sum()
    keys = pd.MultiIndex.from_frame(events[["session_id", "video_id"]])
    return pd.Series(amount.reindex(keys).fillna(0.0).to_numpy(), index=events.index)


@dataclass(frozen=True)
class OffPolicy:
    ips: float
    snips: float
    matched: int  # logged impressions whose item the target policy also puts in its top k
    sessions: int


def gmv_at_k(logged: pd.DataFrame, gmv: pd.Series, top_k: pd.DataFrame, k: int = 10) -> OffPolicy:
    """GMV@k of the target policy's top-k lists (``top_k``: session_id, video_id) from ``logged``
    impressions (session_id, video_id, propensity). An impression whose item the target also lists
    counts with weight 1/propensity (the item-level estimator of vidrec/evaluation/sql/off_policy.sql):
    IPS = Σ w·gmv / sessions; SNIPS = k · Σ w·gmv / Σ w."""
    if "propensity" not in logged or logged["propensity"].isna().all():
        raise MetricUnavailable("skipped: source has no propensities (GMV@k needs IPS weights)")
    target = set(zip(top_k["session_id"], top_k["video_id"]))
    hit = np.fromiter((pair in target for pair in zip(logged["session_id"], logged["video_id"])), bool, len(logged))
    w = 1.0 / logged["propensity"].to_numpy(float)[hit]
    r = gmv.to_numpy(float)[hit]
    sessions = logged["session_id"].nunique()
    ips = float((w * r).sum() / max(1, sessions))
    snips = float(k * (w * r).sum() / w.sum()) if w.sum() > 0 else float("nan")
    return OffPolicy(ips, snips, int(hit.sum()), int(sessions))


def revenue_per_session(events: pd.DataFrame, orders: pd.DataFrame) -> float:
    """Total GMV of the orders over the sessions of the log."""
    sessions = events["session_id"].nunique()
    if sessions == 0:
        raise MetricUnavailable("skipped: no sessions")
    return float((orders["quantity"] * orders["unit_price"]).sum() / sessions)


def conversion_per_impression(events: pd.DataFrame) -> float:
    if "converted" not in events or events["converted"].isna().all():
        raise MetricUnavailable("skipped: source has no converted column")
    return float(events["converted"].astype(bool).mean())


@dataclass(frozen=True)
class GateOutcome:
    name: str
    passed: bool | None  # None: skipped
    reason: str


def gmv_non_inferiority(
    ratio_ci_low: float | None, margin: float = 0.05, has_orders: bool = True, has_propensities: bool = True
) -> GateOutcome:
    """Pass when the lower 95% bound of candidate GMV@10 / champion GMV@10 is at least 1 − margin; skipped
    (passed None) with the reason when the hold-out has no orders or no propensities."""
    name = f"GMV@10 (SNIPS) not worse than the champion by more than {margin:.0%} at 95%"
    if not has_orders:
        return GateOutcome(name, None, "skipped: the hold-out has no orders (no GMV to compare)")
    if not has_propensities:
        return GateOutcome(name, None, "skipped: source has no propensities")
    if ratio_ci_low is None or not np.isfinite(ratio_ci_low):
        return GateOutcome(name, None, "skipped: no champion GMV to compare against")
    passed = ratio_ci_low >= 1.0 - margin
    return GateOutcome(name, passed, f"lower bound {ratio_ci_low:.3f} {'>=' if passed else '<'} {1 - margin:.3f}")
