"""Simulate sessions: who shows up when, which slate the logging policy shows, and how users respond."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vidrec.world import behaviour as bh
from vidrec.world.catalogue import parse_utc
from vidrec.world.oracle import Oracle
from vidrec.world.policy import LoggingPolicy
from vidrec.world.spec import WorldSpec

SURFACES = ("home", "related")
HOME_SHARE = 0.7
SLOT_GAP_NS = 1_000_000  # impressions of one session are logged 1 ms apart, in slot order


def simulate_events(spec: WorldSpec, oracle: Oracle, policy: LoggingPolicy, rng: np.random.Generator) -> pd.DataFrame:
    """The event log in its contract columns, sorted by ts; outcomes come from the oracle's response model."""
    p, s, n = oracle.params, spec.slate_size, spec.n_sessions
    activity = oracle.users["activity"].to_numpy()
    session_user = rng.choice(len(activity), size=n, p=activity / activity.sum())
    start_ns = pd.Timestamp(parse_utc(spec.start)).value
    session_ts = np.sort(start_ns + (rng.random(n) * spec.n_days * 86400e9).astype(np.int64))
    surface = np.where(rng.random(n) < HOME_SHARE, SURFACES[0], SURFACES[1])
    slates = policy.sample(session_user, session_ts, s, rng)

    ui = np.repeat(session_user, s)
    ii = slates.items.ravel()
    position = np.tile(np.arange(s), n)
    # A live host's video gets its boost only while the host is live (the session's start time decides).
    u = oracle.utility_idx(ui, ii, np.repeat(session_ts, s))
    clicked = rng.random(len(ii)) < bh.click_prob(u, position, p)
    quality = oracle.items["quality"].to_numpy()[ii]
    duration = oracle.items["duration_s"].to_numpy()[ii]
    fraction = bh.sample_watch_fraction(u, quality, p, rng)
    # Millisecond precision, kept inside (0, duration] after rounding.
    watch = np.clip(np.round(fraction * duration, 3), 0.001, duration)
    is_product = oracle.items["is_product"].to_numpy()[ii]
    price = oracle.items["price"].to_numpy()[ii]
    converted = clicked & (rng.random(len(ii)) < bh.conversion_prob(u, is_product, price, p))

    ts = np.repeat(session_ts, s) + position * SLOT_GAP_NS
    order = np.argsort(ts, kind="stable")
    width_e, width_s = len(str(len(ii))), len(str(n))
    session_idx = np.repeat(np.arange(n), s)[order]
    events = pd.DataFrame(
        {
            "event_id": [f"e{k:0{width_e}d}" for k in range(len(ii))],
            "ts": pd.to_datetime(ts[order], unit="ns", utc=True).astype("datetime64[us, UTC]"),
            "user_id": oracle.users["user_id"].to_numpy()[ui[order]],
            "video_id": oracle.items["video_id"].to_numpy()[ii[order]],
            "session_id": np.array([f"s{k:0{width_s}d}" for k in range(n)], dtype=object)[session_idx],
            "position": position[order].astype(np.int64),
            "surface": np.repeat(surface, s)[order],
            "propensity": slates.propensity.ravel()[order],
            "clicked": clicked[order],
            "watch_s": np.where(clicked, watch, 0.0)[order],
            "converted": converted[order],
        }
    )
    return events
