"""The loop's last-day live A/B (``--ab-last-day``, issue 17): instead of promoting the night's candidate,
serve it to a sticky half of the users beside production, then compare the day's per-arm CTR@10 with the
ordering the night's simulated A/B predicted. Also the loop's reads of the night's warehouse."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import httpx
import pandas as pd

from vidrec.config import Paths
from vidrec.registry import ProductionPointer

SHARE = 0.5


def evaluated(home: Path, model: str, metric: str) -> tuple[float | None, float | None, float | None]:
    """Tonight's evaluation row (value and 95% interval) of ``model`` on ``metric``, over all sessions."""
    with duckdb.connect(str(Paths(home).warehouse), read_only=True) as connection:
        found = connection.execute(
            "select value, ci_low, ci_high from vidrec.offline_evaluation "
            "where model = ? and metric = ? and slice = 'all'",
            [model, metric],
        ).fetchone()
    return tuple(found) if found else (None, None, None)


def uploads_in_catalogue(home: Path) -> int:
    """Uploaded videos among tonight's trained item embeddings: catalogue now, not cold additions."""
    with duckdb.connect(str(Paths(home).warehouse), read_only=True) as connection:
        query = "select count(*) from vidrec.item_embeddings where starts_with(video_id, 'up_')"
        (count,) = connection.execute(query).fetchone()
    return int(count)


def start_ab(home: Path, client: httpx.Client, production: str, candidate: str, salt: str, k: int) -> dict:
    """Production back to the champion and the candidate at ``SHARE``; waits until the service serves it.
    Returns what the report needs (the arms' tags and the night's simulated A/B relative CTR@k)."""
    pointer = ProductionPointer(Paths(home).registry)
    pointer.rollback()  # production back to the champion...
    pointer.start_challenger(candidate, SHARE, salt=salt)  # ...and the candidate at 50%
    found = evaluated(home, "candidate_vs_champion", f"ab_ctr_at_{k}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        experiment = client.get("/model").json().get("experiment")
        if experiment and experiment["challenger_serving"]:
            return {"production": production, "challenger": candidate, "simulated_ab_relative_ctr": found}
        time.sleep(0.25)
    raise RuntimeError("the service did not start serving the challenger within 120 s")


def ab_report(ab: dict, shown: pd.DataFrame, day: int, requested: bool) -> dict | None:
    """Per-arm CTR@10 of the A/B ``day`` and whether its ordering matches the simulated A/B's."""
    if not ab:
        # A candidate the gate blocks is never saved, so it cannot serve even half the users.
        return {"skipped": "the gate blocked the last night's candidate: no challenger to serve"} if requested else None
    rows = shown[(shown["policy"] == "vidrec") & (shown["day"] == day)]
    arms = rows.groupby("arm").agg(impressions=("clicked", "size"), ctr_at_10=("clicked", "mean"))
    online = float(arms.loc["challenger", "ctr_at_10"] / arms.loc["production", "ctr_at_10"] - 1)
    simulated = ab["simulated_ab_relative_ctr"]
    return {
        **{k: v for k, v in ab.items() if k != "simulated_ab_relative_ctr"},
        "arms": arms.reset_index().to_dict(orient="records"),
        "online_relative_ctr": online,
        "simulated_relative_ctr": list(simulated),
        "same_ordering": None if simulated[0] is None else (online > 0) == (simulated[0] > 0),
    }
