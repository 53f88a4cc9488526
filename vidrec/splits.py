"""Temporal splits of the event log: train, validation (last training day) and hold-out."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class TemporalSplit:
    """Day boundaries (UTC midnight): train < val_start <= val < holdout_start <= holdout."""

    val_start: pd.Timestamp
    holdout_start: pd.Timestamp

    def part(self, events: pd.DataFrame, name: str) -> pd.DataFrame:
        ts = events["ts"]
        if name == "train":
            return events[ts < self.val_start]
        if name == "val":
            return events[(ts >= self.val_start) & (ts < self.holdout_start)]
        if name == "fit":
            return events[ts < self.holdout_start]
        if name == "holdout":
            return events[ts >= self.holdout_start]
        raise ValueError(f"unknown split part {name!r}; use train, val, fit or holdout")


def temporal_split(events: pd.DataFrame, holdout_fraction: float = 0.25) -> TemporalSplit:
    """Hold out the last ``holdout_fraction`` of days; validate on the last training day."""
    days = sorted(events["ts"].dt.floor("D").unique())
    if len(days) < 3:
        raise ValueError(
            f"the event log spans {len(days)} day(s); a temporal split needs at least 3 "
            "(train, validation, hold-out) — generate or import more days of events"
        )
    n_holdout = max(1, round(len(days) * holdout_fraction))
    holdout_start = pd.Timestamp(days[-n_holdout])
    val_start = pd.Timestamp(days[-n_holdout - 1])
    return TemporalSplit(val_start=val_start, holdout_start=holdout_start)
