"""Commerce metrics against hand-worked numbers, and the GMV gate rule's skips."""

from __future__ import annotations

import pandas as pd
import pytest

from vidrec.evaluation.commerce import (
    MetricUnavailable,
    conversion_per_impression,
    gmv_at_k,
    gmv_non_inferiority,
    impression_gmv,
    revenue_per_session,
)


def _log() -> tuple[pd.DataFrame, pd.DataFrame]:
    events = pd.DataFrame(
        {
            "session_id": ["s1", "s1", "s2", "s2"],
            "video_id": ["a", "b", "a", "c"],
            "propensity": [0.5, 0.25, 0.5, 0.1],
            "converted": [True, False, False, True],
        }
    )
    orders = pd.DataFrame(
        {
            "session_id": ["s1", "s2", "s2"],
            "video_id": ["a", "c", "c"],
            "quantity": [2, 1, 1],
            "unit_price": [10.0, 5.0, 3.0],
        }
    )
    return events, orders


def test_gmv_at_k_by_hand() -> None:
    events, orders = _log()
    gmv = impression_gmv(events, orders)
    assert gmv.tolist() == [20.0, 0.0, 0.0, 8.0]
    # The target lists a and c in s1 and c in s2: matched rows 0 (w 2, gmv 20) and 3 (w 10, gmv 8).
    top = pd.DataFrame({"session_id": ["s1", "s1", "s2"], "video_id": ["a", "c", "c"]})
    value = gmv_at_k(events, gmv, top, k=2)
    assert value.matched == 2 and value.sessions == 2
    assert value.ips == pytest.approx((2 * 20 + 10 * 8) / 2)
    assert value.snips == pytest.approx(2 * (2 * 20 + 10 * 8) / 12)
    assert revenue_per_session(events, orders) == pytest.approx(28 / 2)
    assert conversion_per_impression(events) == pytest.approx(0.5)
    with pytest.raises(MetricUnavailable, match="no propensities"):
        gmv_at_k(events.assign(propensity=None), gmv, top)


def test_gmv_gate_rule_skips_with_a_reason() -> None:
    assert gmv_non_inferiority(0.97, margin=0.05).passed is True
    assert gmv_non_inferiority(0.90, margin=0.05).passed is False
    skipped = gmv_non_inferiority(None, has_orders=False)
    assert skipped.passed is None and "no orders" in skipped.reason
    assert "no propensities" in gmv_non_inferiority(1.0, has_propensities=False).reason
