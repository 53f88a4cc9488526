"""Where hold-out scoring puts its rows, batch by batch, so its memory follows a batch and not the log.

``holdout_tables`` (holdout.py) scores the hold-out impressions ``Chunking.impressions`` at a time and answers
the top-K sessions ``Chunking.sessions`` at a time; each batch's rows go to a sink as soon as they are made.
``FrameSink`` keeps them as pandas frames (notebooks, the quality benchmark); ``DuckDBSink`` appends them to
the evaluation tables of a DuckDB connection (offline evaluation), whose buffer manager holds them under its
``memory_limit`` and spills the rest, so no frame of the whole hold-out is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import duckdb
import pandas as pd

from vidrec.evaluation.tables import TABLES, append_table

SIGNALS = ("position", "propensity", "watch_s", "converted")


@dataclass(frozen=True)
class Chunking:
    """Batch sizes of hold-out scoring. A scoring batch holds (impressions, history length) item rows and one
    score per impression and model; a session batch holds (sessions, catalogue) masks and scores, which is why
    it is the smaller: 500 sessions of a 10,000-item catalogue are 40 MB per float64 array."""

    impressions: int = 20_000
    sessions: int = 500

    def __post_init__(self) -> None:
        if self.impressions < 1 or self.sessions < 1:
            raise ValueError(f"chunk sizes must be positive, got {self}")


class TableSink(Protocol):
    def append(self, name: str, frame: pd.DataFrame) -> None:
        """Add ``frame``'s rows to evaluation table ``name`` (one of vidrec.evaluation.tables.TABLES)."""


@dataclass
class FrameSink:
    """Keeps every batch; ``frame(name)`` concatenates them (an empty frame with the table's columns if none)."""

    parts: dict[str, list[pd.DataFrame]] = field(default_factory=dict)

    def append(self, name: str, frame: pd.DataFrame) -> None:
        self.parts.setdefault(name, []).append(frame)

    def frame(self, name: str) -> pd.DataFrame:
        parts = self.parts.get(name)
        if not parts:
            return pd.DataFrame(columns=list(TABLES[name]))
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


class DuckDBSink:
    """Appends each batch to the table of the same name in ``con``'s current schema, replacing on first use."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self._started = con, set()

    def append(self, name: str, frame: pd.DataFrame) -> None:
        append_table(self.con, name, frame, replace=name not in self._started)
        self._started.add(name)


@dataclass
class SignalCounts:
    """Running counts for ``Availability``: impressions, non-clicked ones, and how many carry each signal."""

    rows: int = 0
    not_clicked: int = 0
    present: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIGNALS, 0))

    def add(self, impressions: pd.DataFrame) -> None:
        self.rows += len(impressions)
        self.not_clicked += int((~impressions["clicked"].astype(bool)).sum())
        for signal in SIGNALS:
            self.present[signal] += int(impressions[signal].notna().sum())

    def shares(self) -> dict[str, float]:
        """The shares ``Availability.from_impressions`` measures, over every batch added."""
        if self.rows == 0:
            raise ValueError("the hold-out impressions are empty; there is nothing to measure signals on")
        shares = {s: self.present[s] / self.rows for s in SIGNALS}
        shares["impressions"] = self.not_clicked / self.rows
        return shares
